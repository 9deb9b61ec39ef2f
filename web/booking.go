package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/templates"
)

const dateLayout = "2006-01-02"

// weekStart returns local midnight of the Monday of t's week in loc.
func weekStart(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	offset := (int(t.Weekday()) + 6) % 7
	return time.Date(t.Year(), t.Month(), t.Day()-offset, 0, 0, 0, 0, loc)
}

func (s *server) handleSchedule(w http.ResponseWriter, r *http.Request, c caller) {
	s.renderSchedule(w, r, c, http.StatusOK, "")
}

func (s *server) renderSchedule(w http.ResponseWriter, r *http.Request, c caller, status int, flash string) {
	ctx := r.Context()
	loc := viewerZone(c.User)
	physicians, err := s.Store.ListUsers(ctx, store.RolePhysician)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	patients, err := s.Store.ListUsers(ctx, store.RolePatient)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if len(physicians) == 0 {
		s.message(w, r, http.StatusOK, "No physicians yet", "Add a physician with `bedside user add --role physician` first.")
		return
	}
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		q = r.PostForm
	}
	physID, _ := strconv.ParseInt(q.Get("physician"), 10, 64)
	var phys store.User
	for _, p := range physicians {
		if p.ID == physID {
			phys = p
		}
	}
	if phys.ID == 0 {
		phys = physicians[0]
	}
	monday := weekStart(s.Now(), loc)
	if wk := q.Get("week"); wk != "" {
		if d, err := time.ParseInLocation(dateLayout, wk, loc); err == nil {
			monday = weekStart(d, loc)
		}
	}
	end := monday.AddDate(0, 0, 7)
	avail, err := s.Store.Availability(ctx, phys.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.serverError(w, r, err)
		return
	}
	booked, err := s.Store.AppointmentsBetween(ctx, phys.ID, 0, monday.Add(-24*time.Hour), end.Add(24*time.Hour))
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	busy := make([]scheduling.Interval, len(booked))
	for i, a := range booked {
		busy[i] = scheduling.Interval{Start: a.Start, End: a.End}
	}
	var slots []scheduling.Slot
	if avail.Zone != nil {
		slots = scheduling.Slots(avail, monday, end, s.Now(), busy)
	}
	v := templates.ScheduleView{
		Page:        page("Schedule", c),
		PhysicianID: phys.ID,
		ViewerZone:  loc.String(),
		WeekLabel:   "Week of " + monday.Format("Mon 2 Jan 2006"),
		Week:        monday.Format(dateLayout),
		PrevWeek:    monday.AddDate(0, 0, -7).Format(dateLayout),
		NextWeek:    end.Format(dateLayout),
		Error:       flash,
	}
	if avail.Zone != nil {
		v.PhysicianZone = avail.Zone.String()
	}
	for _, p := range physicians {
		v.Physicians = append(v.Physicians, templates.Option{ID: p.ID, Label: p.Name, Selected: p.ID == phys.ID})
	}
	selPatient, _ := strconv.ParseInt(q.Get("patient"), 10, 64)
	for _, p := range patients {
		v.Patients = append(v.Patients, templates.Option{ID: p.ID, Label: p.Name + " <" + p.Email + ">", Selected: p.ID == selPatient})
	}
	for d := 0; d < 7; d++ {
		day := monday.AddDate(0, 0, d)
		next := monday.AddDate(0, 0, d+1)
		dv := templates.DayView{Label: day.Format("Mon 2 Jan"), Empty: "No hours"}
		if !next.After(s.Now()) {
			dv.Empty = "Past"
		}
		for _, sl := range slots {
			if st := sl.Start.In(loc); !st.Before(day) && st.Before(next) {
				dv.Slots = append(dv.Slots, templates.SlotView{
					Value: sl.Start.UTC().Format(time.RFC3339), Label: st.Format("15:04"), Free: sl.Free})
			}
		}
		v.Days = append(v.Days, dv)
	}
	s.render(w, r, status, templates.SchedulePage(v))
}

func (s *server) handleBook(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form could not be read", http.StatusBadRequest)
		return
	}
	bad := func(msg string) { s.renderSchedule(w, r, c, http.StatusUnprocessableEntity, msg) }
	physID, err1 := strconv.ParseInt(r.PostFormValue("physician"), 10, 64)
	patID, err2 := strconv.ParseInt(r.PostFormValue("patient"), 10, 64)
	start, err3 := time.Parse(time.RFC3339, r.PostFormValue("start"))
	switch {
	case err1 != nil:
		bad("Choose a physician.")
		return
	case err2 != nil:
		bad("Choose a patient.")
		return
	case err3 != nil:
		bad("Choose a time from the week below.")
		return
	}
	phys, err := s.Store.UserByID(ctx, physID)
	if err != nil || phys.Role != store.RolePhysician {
		bad("That physician does not exist.")
		return
	}
	pat, err := s.Store.UserByID(ctx, patID)
	if err != nil || pat.Role != store.RolePatient {
		bad("That patient does not exist.")
		return
	}
	avail, err := s.Store.Availability(ctx, physID)
	if err != nil || avail.Zone == nil {
		bad("That physician has no working hours set.")
		return
	}
	end := start.Add(avail.SlotLength)
	if !start.After(s.Now()) {
		bad("That time has already passed. Choose a later one.")
		return
	}
	if !avail.Contains(start, end) {
		bad("That time is outside the physician's hours.")
		return
	}
	a, err := s.Store.BookAppointment(ctx, scheduling.Appointment{
		PhysicianID: physID, PatientID: patID, Start: start.UTC(), End: end.UTC(),
		Status: scheduling.StatusBooked, CreatedAt: s.Now().UTC(),
	})
	if errors.Is(err, scheduling.ErrSlotTaken) {
		s.renderSchedule(w, r, c, http.StatusConflict, "That time was just taken. Please choose another.")
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.Log.InfoContext(ctx, "appointment booked", "appointment", a.ID, "by", c.User.ID)
	link, err := s.issueJoinLink(r, a)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.renderAppointment(w, r, c, a, http.StatusCreated, link, "Booked.")
}

// issueJoinLink revokes the visit's earlier join links and issues a new one.
func (s *server) issueJoinLink(r *http.Request, a scheduling.Appointment) (string, error) {
	ctx := r.Context()
	old, err := s.Store.ListCredentials(ctx, store.CredentialJoin, a.PatientID)
	if err != nil {
		return "", fmt.Errorf("list join links: %w", err)
	}
	for _, cr := range old {
		if cr.AppointmentID == a.ID && cr.RevokedAt.IsZero() {
			if err := s.Store.RevokeCredential(ctx, cr.ID, s.Now()); err != nil {
				return "", fmt.Errorf("revoke join link: %w", err)
			}
		}
	}
	token, hash := auth.NewToken()
	if _, err := s.Store.CreateCredential(ctx, store.Credential{
		Kind: store.CredentialJoin, TokenHash: hash, UserID: a.PatientID, AppointmentID: a.ID,
		Name: "join link", CreatedAt: s.Now(), ExpiresAt: a.End.Add(joinGrace),
	}); err != nil {
		return "", fmt.Errorf("store join link: %w", err)
	}
	return s.baseURL(r) + "/join/" + token, nil
}

// baseURL is the configured public URL, or the one the request came in on.
func (s *server) baseURL(r *http.Request) string {
	if s.PublicURL != "" {
		return s.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *server) handleAppointment(w http.ResponseWriter, r *http.Request, c caller) {
	a, ok := s.appointmentParam(w, r)
	if !ok {
		return
	}
	s.renderAppointment(w, r, c, a, http.StatusOK, "", "")
}

func (s *server) handleNewJoinLink(w http.ResponseWriter, r *http.Request, c caller) {
	a, ok := s.appointmentParam(w, r)
	if !ok {
		return
	}
	if a.Status == scheduling.StatusCancelled {
		http.Error(w, "this visit was cancelled", http.StatusConflict)
		return
	}
	link, err := s.issueJoinLink(r, a)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.renderAppointment(w, r, c, a, http.StatusOK, link, "A new join link was issued; the previous one no longer works.")
}

func (s *server) renderAppointment(w http.ResponseWriter, r *http.Request, c caller, a scheduling.Appointment, status int, link, flash string) {
	s.render(w, r, status, templates.AppointmentPage(templates.AppointmentView{
		Page:          page("Visit", c),
		ID:            a.ID,
		PatientName:   s.userName(r, a.PatientID),
		PhysicianName: s.userName(r, a.PhysicianID),
		When:          formatWhen(a.Start, viewerZone(c.User)),
		Status:        string(a.Status),
		JoinLink:      link,
		Flash:         flash,
	}))
}
