package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/bedside-health/bedside/audit"
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

// slotsFor computes a physician's slots for a visit type that start in
// [from, to), with the time of live appointments busy, except's own.
func (s *server) slotsFor(ctx context.Context, physicianID int64, visitType string, from, to time.Time, except int64) (scheduling.Availability, []scheduling.Slot, error) {
	avail, err := s.Store.Availability(ctx, physicianID)
	if errors.Is(err, store.ErrNotFound) {
		return avail, nil, nil
	}
	if err != nil {
		return avail, nil, err
	}
	// Visits starting up to a day before from may still be running, and
	// buffers reach past both ends.
	booked, err := s.Store.AppointmentsBetween(ctx, physicianID, 0, from.Add(-24*time.Hour), to.Add(24*time.Hour))
	if err != nil {
		return avail, nil, err
	}
	busy := make([]scheduling.Interval, 0, len(booked))
	for _, a := range booked {
		if a.ID != except {
			busy = append(busy, scheduling.Interval{Start: a.Start, End: a.End})
		}
	}
	return avail, scheduling.Slots(avail, scheduling.Query{From: from, To: to, Now: s.Now(), VisitType: visitType, Busy: busy}), nil
}

// weekRequest is what the week view shows: whose week, which week, for
// which visit type and patient, and what choosing a slot does.
type weekRequest struct {
	physicianID  int64
	patientID    int64
	visitType    string
	week         string // yyyy-mm-dd in the viewer's zone; "" for this week
	query        string // patient search text
	reschedule   scheduling.Appointment
	status       int
	flash        string
	alternatives []scheduling.Slot
}

func weekRequestFrom(q url.Values) weekRequest {
	phys, _ := strconv.ParseInt(q.Get("physician"), 10, 64)
	pat, _ := strconv.ParseInt(q.Get("patient"), 10, 64)
	return weekRequest{physicianID: phys, patientID: pat, visitType: q.Get("visit_type"), week: q.Get("week"), query: q.Get("q"), status: http.StatusOK}
}

func (s *server) handleSchedule(w http.ResponseWriter, r *http.Request, c caller) {
	s.renderWeek(w, r, c, weekRequestFrom(r.URL.Query()))
}

// renderWeek renders a physician's week: to book for a patient, or to
// move an appointment (wr.reschedule.ID != 0).
func (s *server) renderWeek(w http.ResponseWriter, r *http.Request, c caller, wr weekRequest) {
	ctx := r.Context()
	loc := viewerZone(c.User)
	physicians, err := s.Store.ListUsers(ctx, store.RolePhysician)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if len(physicians) == 0 {
		s.message(w, r, http.StatusOK, "No physicians yet", "Add a physician with `bedside user add --role physician` first.")
		return
	}
	phys := physicians[0]
	for _, p := range physicians {
		if p.ID == wr.physicianID {
			phys = p
		}
	}
	monday := weekStart(s.Now(), loc)
	if wr.week != "" {
		if d, err := time.ParseInLocation(dateLayout, wr.week, loc); err == nil {
			monday = weekStart(d, loc)
		}
	}
	end := monday.AddDate(0, 0, 7)
	avail, slots, err := s.slotsFor(ctx, phys.ID, wr.visitType, monday, end, wr.reschedule.ID)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	v := templates.ScheduleView{
		Page:        page("Schedule", c),
		PhysicianID: phys.ID,
		ViewerZone:  loc.String(),
		WeekLabel:   "Week of " + monday.Format("Mon 2 Jan 2006"),
		Week:        monday.Format(dateLayout),
		PrevWeek:    monday.AddDate(0, 0, -7).Format(dateLayout),
		NextWeek:    end.Format(dateLayout),
		Today:       s.Now().In(loc).Format(dateLayout),
		VisitType:   wr.visitType,
		Error:       wr.flash,
		Action:      "/appointments",
	}
	if avail.Zone != nil {
		v.PhysicianZone = avail.Zone.String()
	}
	for _, p := range physicians {
		v.Physicians = append(v.Physicians, templates.Option{Value: strconv.FormatInt(p.ID, 10), Label: p.Name, Selected: p.ID == phys.ID})
	}
	v.VisitTypes = append(v.VisitTypes, templates.Option{Value: "", Label: fmt.Sprintf("Standard visit (%d min)", int(avail.SlotLength/time.Minute)), Selected: wr.visitType == ""})
	for _, t := range avail.VisitTypes {
		v.VisitTypes = append(v.VisitTypes, templates.Option{Value: t.Code, Label: fmt.Sprintf("%s (%d min)", t.Name, int(t.Duration/time.Minute)), Selected: t.Code == wr.visitType})
	}
	if wr.reschedule.ID != 0 {
		a := wr.reschedule
		v.Page.Title = "Move a visit"
		v.Action = "/appointments/" + strconv.FormatInt(a.ID, 10) + "/reschedule"
		v.Rescheduling = fmt.Sprintf("Moving %s's visit of %s", s.userName(r, a.PatientID), formatWhen(a.Start, loc))
		v.BaseURL = "/appointments/" + strconv.FormatInt(a.ID, 10) + "/reschedule?"
		v.VisitType = a.VisitType
		v.VisitTypes = nil // a moved visit keeps its type
		v.PatientID = a.PatientID
	} else {
		v.BaseURL = "/schedule?"
		var err error
		if v.PatientChoice, err = s.choosePatient(r, c, wr.patientID, wr.query); err != nil {
			s.serverError(w, r, err)
			return
		}
	}
	for d := 0; d < 7; d++ {
		day := monday.AddDate(0, 0, d)
		next := monday.AddDate(0, 0, d+1)
		dv := templates.DayView{Label: day.Format("Mon 2 Jan"), Empty: "No hours"}
		switch now := s.Now(); {
		case !next.After(now):
			dv.Empty = "Past"
		case !day.After(now):
			dv.Empty = "No more times today" // its hours may have passed, not be missing
		}
		for _, sl := range slots {
			if st := sl.Start.In(loc); !st.Before(day) && st.Before(next) {
				dv.Slots = append(dv.Slots, slotView(sl, loc))
			}
		}
		v.Days = append(v.Days, dv)
	}
	for _, sl := range wr.alternatives {
		v.Alternatives = append(v.Alternatives, templates.SlotView{Value: sl.Start.UTC().Format(time.RFC3339), Label: formatWhen(sl.Start, loc), Free: true})
	}
	status := wr.status
	if status == 0 {
		status = http.StatusOK
	}
	s.render(w, r, status, templates.SchedulePage(v))
}

func slotView(sl scheduling.Slot, loc *time.Location) templates.SlotView {
	return templates.SlotView{Value: sl.Start.UTC().Format(time.RFC3339), Label: sl.Start.In(loc).Format("15:04"), Free: sl.Free}
}

// patientLabel names a patient so that namesakes can be told apart.
func patientLabel(p store.User) string {
	l := p.Name
	if p.BirthDate != "" {
		l += ", born " + p.BirthDate
	}
	return l + " <" + p.Email + ">"
}

// alternativesTo lists up to three free slots of the physician nearest to
// want, looking a week either side, for a "that time was just taken" answer.
func (s *server) alternativesTo(ctx context.Context, physicianID int64, visitType string, want time.Time, except int64) []scheduling.Slot {
	_, slots, err := s.slotsFor(ctx, physicianID, visitType, want.AddDate(0, 0, -7), want.AddDate(0, 0, 7), except)
	if err != nil {
		return nil
	}
	return scheduling.Alternatives(slots, want, 3)
}

// checkStart checks that a visit of the physician may start at start and
// returns its end, or what to tell the scheduler. Busy time is the store's
// to check, atomically, as it books.
func (s *server) checkStart(ctx context.Context, physicianID int64, start time.Time, visitType string) (time.Time, string) {
	avail, err := s.Store.Availability(ctx, physicianID)
	if err != nil || avail.Zone == nil {
		return time.Time{}, "That physician has no working hours set."
	}
	if !start.After(s.Now()) {
		return time.Time{}, "That time has already passed. Choose a later one."
	}
	end, err := avail.Check(start, visitType, s.Now())
	if err != nil {
		return time.Time{}, checkSlotMessage(err)
	}
	return end, ""
}

// checkSlotMessage explains, for a form, why a start cannot be booked.
func checkSlotMessage(err error) string {
	switch {
	case errors.Is(err, scheduling.ErrTooSoon):
		return "That time is too soon to book: the physician needs more notice. Choose a later one."
	case errors.Is(err, scheduling.ErrTooFar):
		return "That time is too far ahead: the physician's diary is not open that far yet."
	case errors.Is(err, scheduling.ErrTimeOff):
		return "The physician is away at that time. Choose another."
	}
	return "That time is not one of the physician's slots. Choose a time from the week below."
}

// maxForm bounds every form's body.
const maxForm = 16 << 10

// readForm parses a small urlencoded form; false means an answer was sent.
func (s *server) readForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "the form is larger than 16 KiB", http.StatusRequestEntityTooLarge)
			return false
		}
		http.Error(w, "the form could not be read", http.StatusBadRequest)
		return false
	}
	return true
}

func (s *server) handleBook(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	if !s.readForm(w, r) {
		return
	}
	wr := weekRequestFrom(r.PostForm)
	bad := func(status int, msg string) {
		wr.status, wr.flash = status, msg
		s.renderWeek(w, r, c, wr)
	}
	start, err := time.Parse(time.RFC3339, r.PostFormValue("start"))
	switch {
	case wr.physicianID == 0:
		bad(http.StatusUnprocessableEntity, "Choose a physician.")
		return
	case wr.patientID == 0:
		bad(http.StatusUnprocessableEntity, "Choose a patient first: search for them above, or add a new patient.")
		return
	case err != nil:
		bad(http.StatusUnprocessableEntity, "Choose a time from the week below.")
		return
	}
	phys, err := s.Store.UserByID(ctx, wr.physicianID)
	if err != nil || phys.Role != store.RolePhysician {
		bad(http.StatusUnprocessableEntity, "That physician does not exist.")
		return
	}
	pat, err := s.Store.UserByID(ctx, wr.patientID)
	if err != nil || pat.Role != store.RolePatient {
		wr.patientID = 0
		bad(http.StatusUnprocessableEntity, "That patient does not exist.")
		return
	}
	end, problem := s.checkStart(ctx, phys.ID, start, wr.visitType)
	if problem != "" {
		bad(http.StatusUnprocessableEntity, problem)
		return
	}
	a, err := s.Store.BookAppointment(ctx, scheduling.Appointment{
		PhysicianID: phys.ID, PatientID: pat.ID, Start: start.UTC(), End: end.UTC(),
		Status: scheduling.StatusBooked, VisitType: wr.visitType,
	}, store.Change{ActorID: c.User.ID, At: s.Now()})
	if errors.Is(err, scheduling.ErrSlotTaken) {
		s.metrics.bookings.Inc("taken")
		wr.alternatives = s.alternativesTo(ctx, phys.ID, wr.visitType, start, 0)
		bad(http.StatusConflict, "That time was just taken. Please choose another; the nearest free times are below.")
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.Log.InfoContext(ctx, "appointment booked", "appointment", a.ID, "by", c.User.ID)
	s.metrics.bookings.Inc("booked")
	s.audited(r, c, audit.ActionCreate, a.PatientID, audit.Ref("Appointment", a.ID))
	link, err := s.links().Issue(ctx, a)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	flash := "Booked. The patient is being emailed an invitation with this link."
	if !s.MailConfigured {
		flash = "Booked. " + outboxNote + ": send the patient this link yourself."
	}
	if err := s.notify(ctx, a); err != nil {
		flash = "Booked, but the invitation could not be queued: please send the patient this link yourself."
	}
	s.renderAppointment(w, r, c, a, http.StatusCreated, s.joinURL(r, link), flash)
}

// choosePatient is the patient a booking page books for: patientID if that
// is a patient, or else the patients matching query (none for ""). Each
// patient shown is recorded in the audit trail.
func (s *server) choosePatient(r *http.Request, c caller, patientID int64, query string) (templates.PatientChoice, error) {
	ctx := r.Context()
	pc := templates.PatientChoice{Query: query}
	if patientID > 0 {
		if p, err := s.Store.UserByID(ctx, patientID); err == nil && p.Role == store.RolePatient {
			pc.PatientID, pc.PatientLabel = p.ID, patientLabel(p)
			s.audited(r, c, audit.ActionRead, p.ID, audit.Ref("Patient", p.ID))
			return pc, nil
		}
	}
	if query == "" {
		return pc, nil
	}
	found, total, err := s.Store.SearchUsers(ctx, store.UserQuery{Role: store.RolePatient, Text: query, Limit: 10})
	if err != nil {
		return pc, err
	}
	pc.Searched, pc.Found = true, total
	for _, p := range found {
		pc.Matches = append(pc.Matches, templates.Option{Value: strconv.FormatInt(p.ID, 10), Label: patientLabel(p)})
		s.audited(r, c, audit.ActionSearch, p.ID, audit.Ref("Patient", p.ID))
	}
	return pc, nil
}
