package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/bedside-health/bedside/account"
	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/templates"
)

// patientsPage is how many patients one page of search results lists.
const patientsPage = 25

func (s *server) handlePatients(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
	offset = max(offset, 0)
	list, total, err := s.Store.SearchUsers(ctx, store.UserQuery{Role: store.RolePatient, Text: q, Limit: patientsPage, Offset: offset})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	v := templates.PatientsView{Page: page("Patients", c), Query: q, Total: total, From: offset + 1, To: offset + len(list)}
	for _, p := range list {
		s.audited(r, c, audit.ActionSearch, p.ID, audit.Ref("Patient", p.ID))
		v.Patients = append(v.Patients, templates.PatientRow{ID: p.ID, Name: p.Name, BirthDate: p.BirthDate, Email: p.Email, Phone: p.Phone, Zone: p.TimeZone})
	}
	base := "/patients?q=" + urlQueryEscape(q) + "&offset="
	if offset > 0 {
		v.PrevURL = base + strconv.Itoa(max(offset-patientsPage, 0))
	}
	if offset+len(list) < total {
		v.NextURL = base + strconv.Itoa(offset+patientsPage)
	}
	s.render(w, r, http.StatusOK, templates.PatientsPage(v))
}

func (s *server) handleNewPatient(w http.ResponseWriter, r *http.Request, c caller) {
	s.render(w, r, http.StatusOK, templates.NewPatientPage(templates.NewPatientView{Page: page("New patient", c), Zone: c.User.TimeZone}))
}

// patientForm is a new patient as entered, with what is wrong with it.
type patientForm struct {
	templates.NewPatientView
	user store.User
}

// readPatientForm validates the new-patient form.
func readPatientForm(r *http.Request, now time.Time) patientForm {
	f := patientForm{NewPatientView: templates.NewPatientView{
		Name:      strings.TrimSpace(r.PostFormValue("name")),
		Email:     strings.ToLower(strings.TrimSpace(r.PostFormValue("email"))),
		BirthDate: strings.TrimSpace(r.PostFormValue("birth_date")),
		Phone:     strings.TrimSpace(r.PostFormValue("phone")),
		Zone:      strings.TrimSpace(r.PostFormValue("time_zone")),
		Errors:    map[string]string{},
	}}
	if f.Name == "" || len(f.Name) > 200 {
		f.Errors["name"] = "Enter the patient's full name (up to 200 characters)."
	}
	if account.CheckEmail(f.Email) != "" {
		f.Errors["email"] = "Enter an email address such as name@example.org: invitations are sent there."
	}
	if f.BirthDate != "" {
		d, err := time.Parse(dateLayout, f.BirthDate)
		switch {
		case err != nil:
			f.Errors["birth_date"] = "Enter the date of birth as YYYY-MM-DD, e.g. 1961-04-12."
		case d.After(now) || d.Year() < 1880:
			f.Errors["birth_date"] = "That date of birth cannot be right."
		}
	}
	if f.Phone != "" && (len(f.Phone) > 32 || strings.IndexFunc(f.Phone, func(r rune) bool {
		return !unicode.IsDigit(r) && !strings.ContainsRune("+-() .", r)
	}) >= 0) {
		f.Errors["phone"] = "Enter a phone number with digits, spaces and + - ( ) only."
	}
	if !account.ValidZone(f.Zone) {
		f.Errors["time_zone"] = "Enter a time zone such as Europe/London or America/New_York."
	}
	f.user = store.User{Name: f.Name, Email: f.Email, Role: store.RolePatient, TimeZone: f.Zone, BirthDate: f.BirthDate, Phone: f.Phone}
	return f
}

func (s *server) handleCreatePatient(w http.ResponseWriter, r *http.Request, c caller) {
	if !s.readForm(w, r) {
		return
	}
	f := readPatientForm(r, s.Now())
	f.Page = page("New patient", c)
	if len(f.Errors) == 0 {
		u, err := s.Store.CreateUser(r.Context(), f.user)
		switch {
		case errors.Is(err, store.ErrConflict):
			f.Errors["email"] = "Someone already uses that email address. Search for them instead."
		case err != nil:
			s.serverError(w, r, err)
			return
		default:
			s.Log.InfoContext(r.Context(), "patient created", "patient", u.ID, "by", c.User.ID)
			s.audited(r, c, audit.ActionCreate, u.ID, audit.Ref("Patient", u.ID))
			http.Redirect(w, r, "/schedule?patient="+strconv.FormatInt(u.ID, 10), http.StatusSeeOther)
			return
		}
	}
	s.render(w, r, http.StatusUnprocessableEntity, templates.NewPatientPage(f.NewPatientView))
}

// handlePatient shows one patient's details and visits.
func (s *server) handlePatient(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "no such patient", http.StatusNotFound)
		return
	}
	p, err := s.Store.UserByID(ctx, id)
	if err != nil || p.Role != store.RolePatient {
		http.Error(w, "no such patient", http.StatusNotFound)
		return
	}
	visits, _, err := s.Store.SearchAppointments(ctx, store.AppointmentQuery{PatientID: p.ID, Limit: 200})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.audited(r, c, audit.ActionRead, p.ID, audit.Ref("Patient", p.ID))
	loc := viewerZone(c.User)
	v := templates.PatientView{Page: page(p.Name, c), Patient: templates.PatientRow{
		ID: p.ID, Name: p.Name, BirthDate: p.BirthDate, Email: p.Email, Phone: p.Phone, Zone: p.TimeZone}}
	for _, a := range visits {
		v.Visits = append(v.Visits, templates.VisitRow{ID: a.ID, When: formatWhen(a.Start, loc), With: s.userName(r, a.PhysicianID),
			Status: statusLabel(a.Status), Upcoming: a.Status == scheduling.StatusBooked && a.Start.After(s.Now())})
	}
	s.render(w, r, http.StatusOK, templates.PatientPage(v))
}
