package web

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/cluster"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/templates"
	"github.com/bedside-health/bedside/vitals"
)

// handleJoinLink exchanges a patient's join link for a session bound to that
// visit, then redirects so the token leaves the address bar.
func (s *server) handleJoinLink(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	cred, err := s.Store.CredentialByHash(ctx, store.CredentialJoin, auth.HashToken(r.PathValue("token")))
	if err != nil {
		s.message(w, r, http.StatusNotFound, "This link does not work",
			"The link may be mistyped or replaced by a newer one. Please use the latest invitation, or contact the clinic.")
		return
	}
	now := s.Now()
	if !cred.RevokedAt.IsZero() {
		s.message(w, r, http.StatusGone, "This link was replaced",
			"The clinic issued a newer link for this visit. Please use the latest invitation.")
		return
	}
	if !cred.ExpiresAt.IsZero() && !now.Before(cred.ExpiresAt) {
		s.message(w, r, http.StatusGone, "This link has expired",
			"The visit it was for is over. Contact the clinic to book another.")
		return
	}
	a, err := s.Store.AppointmentByID(ctx, cred.AppointmentID)
	if err != nil || a.PatientID != cred.UserID {
		s.message(w, r, http.StatusNotFound, "This link does not work", "The visit no longer exists. Please contact the clinic.")
		return
	}
	if !a.Status.Live() {
		s.message(w, r, http.StatusGone, "This visit was cancelled", "Please contact the clinic to book another time.")
		return
	}
	// A join link opens only around its visit: from a day before, so the
	// patient can check camera, microphone and devices ahead of time.
	if opens := a.Start.Add(-joinOpensBefore); now.Before(opens) {
		s.message(w, r, http.StatusForbidden, "This link is not open yet",
			"It opens on "+formatWhen(opens, zoneOf(s.userZone(r, a.PatientID)))+", a day before your visit. Please come back then.")
		return
	}
	ttl := joinSession
	if left := cred.ExpiresAt.Sub(now); !cred.ExpiresAt.IsZero() && left < ttl {
		ttl = left
	}
	if err := s.startSession(w, r, cred.UserID, a.ID, ttl); err != nil {
		s.serverError(w, r, err)
		return
	}
	s.Log.InfoContext(ctx, "join link used", "appointment", a.ID)
	http.Redirect(w, r, "/visit/"+strconv.FormatInt(a.ID, 10), http.StatusSeeOther)
}

// handleVisit is the patient's pre-call check, waiting room and call.
func (s *server) handleVisit(w http.ResponseWriter, r *http.Request, c caller) {
	a, ok := s.participantVisit(w, r, c)
	if !ok {
		return
	}
	if c.User.Role == store.RolePhysician {
		http.Redirect(w, r, "/consult/"+strconv.FormatInt(a.ID, 10), http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, templates.JoinPage(templates.JoinView{
		Page:          page("Your visit", c),
		AppointmentID: a.ID,
		PatientName:   c.User.Name,
		PhysicianName: s.userName(r, a.PhysicianID),
		StartsAt:      formatWhen(a.Start, viewerZone(c.User)),
		// As handleCallWS names participants.
		PhysicianParticipant: "u" + strconv.FormatInt(a.PhysicianID, 10),
		TimeZone:             viewerZone(c.User).String(),
	}))
}

// handleToday lists a physician's visits from yesterday to a week ahead.
func (s *server) handleToday(w http.ResponseWriter, r *http.Request, c caller) {
	loc := viewerZone(c.User)
	now := s.Now().In(loc)
	from := time.Date(now.Year(), now.Month(), now.Day()-1, 0, 0, 0, 0, loc)
	list, err := s.Store.AppointmentsBetween(r.Context(), c.User.ID, 0, from, from.AddDate(0, 0, 8))
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	v := templates.TodayView{Page: page("Your visits", c), Zone: loc.String(), PhysicianID: c.User.ID}
	elsewhere := s.presenceElsewhere(r, list)
	for _, a := range list {
		v.Visits = append(v.Visits, templates.TodayVisit{
			ID: a.ID, When: a.Start.In(loc).Format("Mon 2 Jan 15:04"), PatientName: s.userName(r, a.PatientID),
			Status: statusLabel(a.Status), Waiting: len(s.Calls.Waiting(a.ID)) > 0 || elsewhere[a.ID].Waiting > 0,
			Held: a.Status == scheduling.StatusArrived || a.Status == scheduling.StatusFulfilled,
		})
	}
	s.render(w, r, http.StatusOK, templates.TodayPage(v))
}

// presenceElsewhere is who is in the calls of those visits held by other
// nodes (several nodes: pin.go), as their nodes last published it; this
// node's hub answers for the others. Unknown (Redis away) is empty: the
// list then shows what this node knows.
func (s *server) presenceElsewhere(r *http.Request, list []scheduling.Appointment) map[int64]cluster.Presence {
	p, ok := s.Rooms.(interface {
		Presence(context.Context, []int64) (map[int64]cluster.Presence, error)
	})
	if !ok || len(list) == 0 {
		return nil
	}
	ids := make([]int64, len(list))
	for i, a := range list {
		ids[i] = a.ID
	}
	m, err := p.Presence(r.Context(), ids)
	if err != nil {
		s.Log.WarnContext(r.Context(), "presence on other nodes unknown; showing this node's", "err", err)
	}
	return m
}

// handleConsult is the physician's call page with the vitals overlay.
func (s *server) handleConsult(w http.ResponseWriter, r *http.Request, c caller) {
	a, ok := s.participantVisit(w, r, c)
	if !ok {
		return
	}
	guests, err := s.guestsView(r.Context(), r, c, a, "/consult/"+strconv.FormatInt(a.ID, 10)+"/guests", viewerZone(c.User), issuedGuest{})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, templates.ConsultPage(templates.ConsultView{
		Page:          page("Visit", c),
		AppointmentID: a.ID,
		PatientName:   s.userName(r, a.PatientID),
		StartsAt:      formatWhen(a.Start, viewerZone(c.User)),
		StaleMs:       overlayStaleMs(),
		Guests:        guests,
		// As handleCallWS names participants.
		PatientParticipant: "u" + strconv.FormatInt(a.PatientID, 10),
		VitalsFrom:         a.Start.Add(-vitalsOpenBefore).UTC().Format(time.RFC3339),
		TimeZone:           viewerZone(c.User).String(),
	}))
}

// overlayStaleMs is how long each numeric on the vitals overlay stays
// current: the catalogue's window for its code, in milliseconds.
func overlayStaleMs() map[string]int64 {
	codes := []string{vitals.CodeHeartRate, vitals.CodeSpO2, vitals.CodeSystolic, vitals.CodeTemperature, vitals.CodeRespRate}
	m := make(map[string]int64, len(codes))
	for _, c := range codes {
		m[c] = vitals.DefaultStaleAfter(c).Milliseconds()
	}
	return m
}
