package web

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/joinlink"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/templates"
)

// links issues and recovers join links with the server's key.
func (s *server) links() joinlink.Links {
	return joinlink.Links{Store: s.Store, Key: s.Secret, Now: s.Now}
}

// joinURL is a join link's address as this request reached us.
func (s *server) joinURL(r *http.Request, token string) string {
	return joinlink.URL(s.baseURL(r), token)
}

// notify queues the patient's email about a's new state. A failure is
// logged and reported: the change itself stands.
func (s *server) notify(ctx context.Context, a scheduling.Appointment) error {
	if s.Notifier == nil {
		return nil
	}
	if err := s.Notifier.Changed(ctx, a); err != nil {
		s.Log.ErrorContext(ctx, "could not queue the patient's email", "appointment", a.ID, "err", err)
		return err
	}
	return nil
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
	s.audited(r, c, audit.ActionRead, a.PatientID, audit.Ref("Appointment", a.ID))
	s.renderAppointment(w, r, c, a, http.StatusOK, "", "")
}

func (s *server) handleNewJoinLink(w http.ResponseWriter, r *http.Request, c caller) {
	a, ok := s.appointmentParam(w, r)
	if !ok {
		return
	}
	if !a.Status.Live() {
		s.renderAppointment(w, r, c, a, http.StatusConflict, "", "This visit was cancelled; it has no join link.")
		return
	}
	token, err := s.links().Issue(r.Context(), a)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.Log.InfoContext(r.Context(), "join link reissued", "appointment", a.ID, "by", c.User.ID)
	s.audited(r, c, audit.ActionUpdate, a.PatientID, audit.Ref("Appointment", a.ID)+"/link")
	s.renderAppointment(w, r, c, a, http.StatusOK, s.joinURL(r, token), "A new join link was issued; the previous one no longer works.")
}

// handleRescheduleForm shows the physician's week to pick the new time.
func (s *server) handleRescheduleForm(w http.ResponseWriter, r *http.Request, c caller) {
	a, ok := s.appointmentParam(w, r)
	if !ok {
		return
	}
	if a.Status != scheduling.StatusBooked {
		s.renderAppointment(w, r, c, a, http.StatusConflict, "", "Only a booked visit can be moved; this one is "+statusLabel(a.Status)+".")
		return
	}
	wr := weekRequestFrom(r.URL.Query())
	wr.physicianID, wr.reschedule = a.PhysicianID, a
	if wr.week == "" {
		wr.week = a.Start.In(viewerZone(c.User)).Format(dateLayout)
	}
	s.renderWeek(w, r, c, wr)
}

func (s *server) handleReschedule(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	a, ok := s.appointmentParam(w, r)
	if !ok || !s.readForm(w, r) {
		return
	}
	wr := weekRequestFrom(r.PostForm)
	wr.physicianID, wr.reschedule, wr.visitType = a.PhysicianID, a, a.VisitType
	bad := func(status int, msg string) {
		wr.status, wr.flash = status, msg
		s.renderWeek(w, r, c, wr)
	}
	start, err := time.Parse(time.RFC3339, r.PostFormValue("start"))
	if err != nil {
		bad(http.StatusUnprocessableEntity, "Choose the new time from the week below.")
		return
	}
	end, problem := s.checkStart(ctx, a.PhysicianID, start, a.VisitType)
	if problem != "" {
		bad(http.StatusUnprocessableEntity, problem)
		return
	}
	moved, err := s.Store.RescheduleAppointment(ctx, a.ID, start.UTC(), end.UTC(), store.Change{ActorID: c.User.ID, At: s.Now()})
	switch {
	case errors.Is(err, scheduling.ErrSlotTaken):
		wr.alternatives = s.alternativesTo(ctx, a.PhysicianID, a.VisitType, start, a.ID)
		bad(http.StatusConflict, "That time was just taken. Please choose another; the nearest free times are below.")
		return
	case errors.Is(err, scheduling.ErrTransition):
		s.renderAppointment(w, r, c, a, http.StatusConflict, "", "This visit can no longer be moved: it is "+statusLabel(a.Status)+".")
		return
	case err != nil:
		s.serverError(w, r, err)
		return
	}
	s.Log.InfoContext(ctx, "appointment rescheduled", "appointment", a.ID, "by", c.User.ID)
	s.audited(r, c, audit.ActionUpdate, a.PatientID, audit.Ref("Appointment", a.ID))
	token, err := s.links().Issue(ctx, moved)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	flash := "Moved. The old join link no longer works; the patient is being emailed the new time and link."
	if !s.MailConfigured {
		flash = "Moved. The old join link no longer works. " + outboxNote + ": tell the patient the new time and send this link yourself."
	}
	if err := s.notify(ctx, moved); err != nil {
		flash = "Moved, but the email could not be queued: please tell the patient the new time and send this link."
	}
	s.renderAppointment(w, r, c, moved, http.StatusOK, s.joinURL(r, token), flash)
}

// maxReason bounds a cancellation reason.
const maxReason = 500

func (s *server) handleCancel(w http.ResponseWriter, r *http.Request, c caller) {
	s.changeStatus(w, r, c, scheduling.StatusCancelled)
}

func (s *server) handleStatus(w http.ResponseWriter, r *http.Request, c caller) {
	if !s.readForm(w, r) {
		return
	}
	st := scheduling.Status(r.PostFormValue("status"))
	if st == scheduling.StatusCancelled || !st.Valid() {
		http.Error(w, "unknown status; to cancel, use the cancel form", http.StatusBadRequest)
		return
	}
	s.changeStatus(w, r, c, st)
}

// changeStatus applies a status change from a form with an optional reason
// (required to cancel or to mark entered-in-error).
func (s *server) changeStatus(w http.ResponseWriter, r *http.Request, c caller, st scheduling.Status) {
	ctx := r.Context()
	a, ok := s.appointmentParam(w, r)
	if !ok || !s.readForm(w, r) {
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if len(reason) > maxReason {
		s.renderAppointment(w, r, c, a, http.StatusUnprocessableEntity, "", "Please keep the reason under 500 characters.")
		return
	}
	if !st.Live() && reason == "" {
		s.renderAppointment(w, r, c, a, http.StatusUnprocessableEntity, "", "Please give a reason.")
		return
	}
	changed, err := s.Store.SetAppointmentStatus(ctx, a.ID, st, store.Change{ActorID: c.User.ID, At: s.Now(), Reason: reason})
	if errors.Is(err, scheduling.ErrTransition) {
		s.renderAppointment(w, r, c, a, http.StatusConflict, "", "A visit that is "+statusLabel(a.Status)+" cannot become "+statusLabel(st)+".")
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.Log.InfoContext(ctx, "appointment status changed", "appointment", a.ID, "status", st, "by", c.User.ID)
	s.audited(r, c, audit.ActionUpdate, a.PatientID, audit.Ref("Appointment", a.ID))
	flash := "The visit is now " + statusLabel(st) + "."
	if st == scheduling.StatusCancelled {
		flash = "Cancelled. The join link no longer works, and the patient is being emailed the cancellation."
		if !s.MailConfigured {
			flash = "Cancelled. The join link no longer works. " + outboxNote + ": tell the patient yourself."
		}
		if err := s.notify(ctx, changed); err != nil {
			flash = "Cancelled, but the email could not be queued: please tell the patient."
		}
	}
	s.renderAppointment(w, r, c, changed, http.StatusOK, "", flash)
}

// outboxNote says, in a flash, that an email to the patient was kept on the
// Outbox page rather than sent: without a mail server nobody is emailed, and
// a scheduler told otherwise would wait for a patient who never heard.
const outboxNote = "No mail server is configured, so the email waits in the Outbox"

// statusLabel says a status as people do.
func statusLabel(st scheduling.Status) string {
	switch st {
	case scheduling.StatusBooked:
		return "booked"
	case scheduling.StatusArrived:
		return "checked in"
	case scheduling.StatusFulfilled:
		return "completed"
	case scheduling.StatusCancelled:
		return "cancelled"
	case scheduling.StatusNoShow:
		return "a no-show"
	case scheduling.StatusEnteredInError:
		return "entered in error"
	}
	return string(st)
}

func (s *server) renderAppointment(w http.ResponseWriter, r *http.Request, c caller, a scheduling.Appointment, status int, link, flash string) {
	s.renderAppointmentWith(w, r, c, a, status, link, flash, "", issuedGuest{})
}

// renderAppointmentWith is renderAppointment with a problem to show, and
// a guest link just issued to show this once.
func (s *server) renderAppointmentWith(w http.ResponseWriter, r *http.Request, c caller, a scheduling.Appointment, status int, link, flash, problem string, issued issuedGuest) {
	ctx := r.Context()
	loc := viewerZone(c.User)
	patient, _ := s.Store.UserByID(ctx, a.PatientID)
	physician, _ := s.Store.UserByID(ctx, a.PhysicianID)
	v := templates.AppointmentView{
		Page:          page("Visit", c),
		ID:            a.ID,
		PatientName:   patient.Name,
		PatientID:     patient.ID,
		PhysicianName: physician.Name,
		When:          formatWhen(a.Start, loc),
		Length:        strconv.Itoa(int(a.End.Sub(a.Start)/time.Minute)) + " minutes",
		Status:        statusLabel(a.Status),
		StatusCode:    string(a.Status),
		CancelReason:  a.CancelReason,
		VisitType:     a.VisitType,
		JoinLink:      link,
		Flash:         flash,
		CanMove:       a.Status == scheduling.StatusBooked,
		CanCancel:     a.Status.CanBecome(scheduling.StatusCancelled),
		Live:          a.Status.Live(),
		Problem:       problem,
	}
	guests, err := s.guestsView(ctx, r, c, a, "/appointments/"+strconv.FormatInt(a.ID, 10)+"/guests", loc, issued)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	v.Guests = guests
	if zl := zoneOf(physician.TimeZone); zl.String() != loc.String() {
		v.PhysicianWhen = formatWhen(a.Start, zl)
	}
	if zl := zoneOf(patient.TimeZone); zl.String() != loc.String() {
		v.PatientWhen = formatWhen(a.Start, zl)
	}
	// The physician has changed zone since: show the clock it was agreed on.
	if zl := zoneOf(a.Zone); a.Zone != "" && zl.String() != loc.String() && zl.String() != zoneOf(physician.TimeZone).String() {
		v.BookedWhen = formatWhen(a.Start, zl)
	}
	for _, st := range []scheduling.Status{scheduling.StatusArrived, scheduling.StatusFulfilled, scheduling.StatusNoShow, scheduling.StatusEnteredInError} {
		if a.Status.CanBecome(st) {
			v.Transitions = append(v.Transitions, templates.Option{Value: string(st), Label: "Mark " + statusLabel(st)})
		}
	}
	history, err := s.Store.AppointmentHistory(ctx, a.ID)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	for _, e := range history {
		v.History = append(v.History, templates.HistoryRow{
			When: formatWhen(e.At, loc), Who: s.actorName(ctx, e.ActorID), What: describeEvent(e, loc), Reason: e.Reason})
	}
	msgs, err := s.Store.ListMessages(ctx, a.ID, 20, 0)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	for _, m := range msgs {
		v.Messages = append(v.Messages, messageRow(m, loc))
	}
	if r.Header.Get("HX-Request") == "true" {
		// Booked or moved without a page load: the address shows the visit.
		w.Header().Set("HX-Push-Url", "/appointments/"+strconv.FormatInt(a.ID, 10))
	}
	s.render(w, r, status, templates.AppointmentPage(v))
}

func (s *server) actorName(ctx context.Context, id int64) string {
	if id == 0 {
		return "Bedside"
	}
	u, err := s.Store.UserByID(ctx, id)
	if err != nil {
		return "unknown"
	}
	return u.Name
}

func describeEvent(e store.AppointmentEvent, loc *time.Location) string {
	switch e.Kind {
	case store.EventBooked:
		return "Booked for " + formatWhen(e.NewStart, loc)
	case store.EventRescheduled:
		return "Moved from " + formatWhen(e.OldStart, loc) + " to " + formatWhen(e.NewStart, loc)
	}
	return "Changed from " + statusLabel(e.FromStatus) + " to " + statusLabel(e.ToStatus)
}

// zoneOf loads a zone name, UTC if it is unknown.
func zoneOf(name string) *time.Location {
	if loc, err := time.LoadLocation(name); err == nil && name != "" {
		return loc
	}
	return time.UTC
}
