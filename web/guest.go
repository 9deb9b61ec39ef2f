package web

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/joinlink"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/templates"
	"github.com/bedside-health/bedside/vitals/live"
	"github.com/bedside-health/bedside/wsconn"
)

// Guests (an interpreter, a family member, a second physician) come by a
// guest link: GET /guest/{token} checks it and puts it in a cookie sent to
// /guest/ only, so the token leaves the address bar and no other route
// ever sees a guest's credential. Each guest request checks the link again
// in the store, so a revocation takes effect at once. A guest reaches the
// visit's call and nothing else: no chart, no record, no devices; a guest
// physician alone also sees the live vitals overlay, in the same window as
// the visit's physician (docs/security.md).

// guestCookie holds a guest's link token, for the paths under /guest/.
const guestCookie = "bedside_guest"

// guestBrowserCookie holds a random secret of the browser that opened a
// guest link: a link forwarded to someone else opens in another browser,
// so their connection is not taken for the admitted guest's reload.
const guestBrowserCookie = "bedside_guest_browser"

// auditRoleGuest is a guest's actor role in the audit trail; a guest has
// no account, so the event names the link as its resource and the link's
// issuer as its actor id.
const auditRoleGuest = "guest"

// Why a guest link does not open.
var (
	errGuestUnknown   = errors.New("unknown guest link")
	errGuestRevoked   = errors.New("guest link revoked")
	errGuestExpired   = errors.New("guest link expired")
	errGuestCancelled = errors.New("visit cancelled")
	errGuestEarly     = errors.New("guest link not open yet")
)

func (s *server) guestLinks() joinlink.Guests {
	return joinlink.Guests{Store: s.Store, Key: s.Secret, Now: s.Now}
}

// guestResource is a guest link's name in the audit trail.
func guestResource(l store.GuestLink) string {
	return audit.Ref("Appointment", l.AppointmentID) + "/guest/" + strconv.FormatInt(l.ID, 10)
}

// guestWho is the guest of link l in the audit trail: the role "guest"
// with the id of the user who issued the link, who answers for the guest.
func guestWho(r *http.Request, l store.GuestLink) audit.Who {
	return audit.Who{ID: l.IssuedBy, Role: auditRoleGuest, Address: audit.Address(r)}
}

// checkGuestToken finds the link of token and its visit, and says why it
// does not open now, if it does not.
func (s *server) checkGuestToken(ctx context.Context, token string) (store.GuestLink, scheduling.Appointment, error) {
	token, ok := joinlink.ParseToken(token)
	if !ok {
		return store.GuestLink{}, scheduling.Appointment{}, errGuestUnknown
	}
	l, err := s.Store.GuestLinkByHash(ctx, auth.HashToken(token))
	if errors.Is(err, store.ErrNotFound) {
		return l, scheduling.Appointment{}, errGuestUnknown
	}
	if err != nil {
		return l, scheduling.Appointment{}, err
	}
	a, err := s.Store.AppointmentByID(ctx, l.AppointmentID)
	if err != nil {
		return l, a, err
	}
	now := s.Now()
	switch {
	case !l.RevokedAt.IsZero():
		return l, a, errGuestRevoked
	case !now.Before(l.ExpiresAt), !now.Before(a.End.Add(joinlink.DefaultGrace)):
		// Its own expiry, or the visit's if the visit was moved earlier.
		return l, a, errGuestExpired
	case !a.Status.Live():
		return l, a, errGuestCancelled
	case now.Before(a.Start.Add(-joinOpensBefore)):
		return l, a, errGuestEarly
	}
	return l, a, nil
}

// guestFrom checks the guest cookie of r.
func (s *server) guestFrom(r *http.Request) (store.GuestLink, scheduling.Appointment, error) {
	ck, err := r.Cookie(guestCookie)
	if err != nil || ck.Value == "" {
		return store.GuestLink{}, scheduling.Appointment{}, errGuestUnknown
	}
	return s.checkGuestToken(r.Context(), ck.Value)
}

// handleGuestLink exchanges a guest link for the guest cookie, then
// redirects to the guest's call page.
func (s *server) handleGuestLink(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s.tooManyRefusals(w, r, "guest-link") {
		return
	}
	token := r.PathValue("token")
	l, a, err := s.checkGuestToken(r.Context(), token)
	if err != nil {
		if l.ID != 0 {
			s.guestLinkRefused(r, "guest-link", l, audit.ActionLogin, a.PatientID, guestResource(l))
		}
		s.guestRefused(w, r, a, err, false)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: guestCookie, Value: token, Path: "/guest/", HttpOnly: true,
		Secure: s.Secure, SameSite: http.SameSiteLaxMode, MaxAge: int(l.ExpiresAt.Sub(s.Now()) / time.Second),
	})
	// Refreshed on every open, so it lasts as long as the link's cookie.
	s.setBrowserCookie(w, r, guestBrowserCookie, "/guest/", l.ExpiresAt.Sub(s.Now()))
	s.Audit.Success(r.Context(), guestWho(r, l), audit.ActionLogin, a.PatientID, guestResource(l))
	s.Log.InfoContext(r.Context(), "guest link used", "appointment", a.ID, "guest", l.ID)
	http.Redirect(w, r, "/guest/call", http.StatusSeeOther)
}

// guestRefused tells a guest why their link does not open: with the status
// that says so, or 403 (forbid) on the pages behind the link.
func (s *server) guestRefused(w http.ResponseWriter, r *http.Request, a scheduling.Appointment, err error, forbid bool) {
	status := func(code int) int {
		if forbid {
			return http.StatusForbidden
		}
		return code
	}
	switch {
	case errors.Is(err, errGuestUnknown):
		s.message(w, r, status(http.StatusNotFound), "This link does not work",
			"The link may be mistyped or incomplete. Please ask the clinic for a new one.")
	case errors.Is(err, errGuestRevoked):
		s.message(w, r, status(http.StatusGone), "This link was withdrawn", "The clinic withdrew this guest link. Please ask them for a new one if you should join.")
	case errors.Is(err, errGuestExpired):
		s.message(w, r, status(http.StatusGone), "This link has expired", "The visit it was for is over.")
	case errors.Is(err, errGuestCancelled):
		s.message(w, r, status(http.StatusGone), "This visit was cancelled", "Please contact the clinic.")
	case errors.Is(err, errGuestEarly):
		s.message(w, r, status(http.StatusForbidden), "This link is not open yet",
			"It opens on "+formatWhen(a.Start.Add(-joinOpensBefore), time.UTC)+", a day before the visit. Please come back then.")
	default:
		s.serverError(w, r, err)
	}
}

// handleGuestCall is a guest's pre-call check, waiting room and call.
func (s *server) handleGuestCall(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s.tooManyRefusals(w, r, "guest-call") {
		return
	}
	l, a, err := s.guestFrom(r)
	if err != nil {
		if errors.Is(err, errGuestUnknown) {
			s.message(w, r, http.StatusUnauthorized, "Open your guest link",
				"This page opens from the personal link the clinic sent you. Please open that link again.")
			return
		}
		if l.ID != 0 {
			s.guestLinkRefused(r, "guest-call", l, audit.ActionRead, a.PatientID, guestResource(l))
		}
		s.guestRefused(w, r, a, err, true)
		return
	}
	v := templates.GuestView{
		Page:          templates.Page{Title: "Your visit"},
		AppointmentID: a.ID,
		GuestName:     l.Name,
		PhysicianName: s.userName(r, a.PhysicianID),
		StartsAt:      formatWhen(a.Start, time.UTC),
		// As handleCallWS names participants.
		MainParticipant: "u" + strconv.FormatInt(a.PhysicianID, 10),
	}
	if l.Role == store.GuestPhysician {
		// A second physician watches the patient, with the overlay.
		v.Vitals, v.StaleMs = true, overlayStaleMs()
		v.PatientName = s.userName(r, a.PatientID)
		v.TimeZone = time.UTC.String() // as StartsAt: a guest has no zone of their own
		v.MainParticipant = "u" + strconv.FormatInt(a.PatientID, 10)
		// The page names the patient: a read of the visit by the guest.
		s.Audit.Success(r.Context(), guestWho(r, l), audit.ActionRead, a.PatientID, guestResource(l))
	}
	s.render(w, r, http.StatusOK, templates.GuestPage(v))
}

// guestAPI runs a handler written for signed-in callers for the guest of
// the cookie, as a caller whose user id is the negative of the guest
// link's (no account has one), so that per-person limits count each guest
// on their own. Only handlers that use nothing of the caller but that id
// may be wrapped: the pre-call connectivity check.
func (s *server) guestAPI(h func(http.ResponseWriter, *http.Request, caller)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.tooManyRefusals(w, r, "guest-api") {
			return
		}
		l, a, err := s.guestFrom(r)
		if err != nil {
			if l.ID != 0 {
				s.guestLinkRefused(r, "guest-api", l, audit.ActionRead, a.PatientID, guestResource(l))
			}
			http.Error(w, "open your guest link again", http.StatusUnauthorized)
			return
		}
		h(w, r, caller{User: store.User{ID: -l.ID}})
	})
}

// guestRoles maps a guest link's role to its call role and its label.
var guestRoles = map[string]struct{ call, label string }{
	store.GuestInterpreter: {signaling.RoleInterpreter, "interpreter"},
	store.GuestFamily:      {signaling.RoleFamily, "family"},
	store.GuestPhysician:   {signaling.RoleGuestPhysician, "physician"},
}

// guestPeerID is a guest's participant id in the call.
func guestPeerID(l store.GuestLink) string { return "g" + strconv.FormatInt(l.ID, 10) }

// handleGuestWS is a guest's call signaling socket.
func (s *server) handleGuestWS(w http.ResponseWriter, r *http.Request) {
	if s.refuseCrossOrigin(w, r) || s.tooManyRefusals(w, r, "guest-ws") {
		return
	}
	l, a, err := s.guestFrom(r)
	if err != nil {
		if l.ID != 0 {
			s.guestLinkRefused(r, "guest-ws", l, audit.ActionRead, a.PatientID, guestResource(l))
		}
		http.Error(w, "open your guest link again", http.StatusUnauthorized)
		return
	}
	ws, err := s.upgrader().Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	s.Audit.Success(r.Context(), guestWho(r, l), audit.ActionRead, a.PatientID, guestResource(l))
	conn := wsconn.New(ws, wsconn.Options{Rate: s.CallRate.socketRate(defaultCallRate)})
	defer conn.Close()
	s.metrics.sockets.Add(1, "call")
	defer s.metrics.sockets.Add(-1, "call")
	role := guestRoles[l.Role]
	peer := signaling.Peer{
		ID:          guestPeerID(l),
		Name:        l.Name + " (" + role.label + ")",
		Role:        role.call,
		Appointment: a.ID,
		Host:        s.publicHost(r),
		Browser:     browserOf(r, guestBrowserCookie),
	}
	s.keepChecking(r.Context(), conn, func(ctx context.Context) error {
		if _, _, err := s.guestFrom(r.WithContext(ctx)); guestLinkEnded(err) {
			return errVisitOver
		}
		return nil // the store is unwell: keep the call rather than cut it
	})
	s.Log.InfoContext(r.Context(), "guest call connected", "appointment", a.ID, "guest", l.ID)
	if token := r.URL.Query().Get("resume"); token != "" {
		last, _ := strconv.ParseUint(r.URL.Query().Get("last"), 10, 64)
		err = s.Calls.Resume(r.Context(), conn, peer, token, last)
	} else {
		err = s.Calls.Serve(r.Context(), conn, peer)
	}
	s.Log.InfoContext(r.Context(), "guest call disconnected", "appointment", a.ID, "guest", l.ID, "err", err)
}

// Why a guest gets no vitals: not a physician, or not (or no longer)
// admitted to the call.
const (
	guestVitalsRefusal = "live vitals are shown to physicians only"
	guestNotAdmitted   = "live vitals are shown once you are admitted to the call"
)

// errNotInCall closes a guest's vitals socket once the guest has left the
// call or was removed from it.
var errNotInCall = errors.New("no longer in the call")

// guestLinkEnded reports whether err, from guestFrom, means the link no
// longer opens the visit now: withdrawn, expired, the visit cancelled, or
// moved more than a day later (not open yet: as good as over for now). Any
// other error is the store's.
func guestLinkEnded(err error) bool {
	return errors.Is(err, errGuestRevoked) || errors.Is(err, errGuestExpired) || errors.Is(err, errGuestCancelled) || errors.Is(err, errGuestEarly)
}

// stillGuestViewer is the re-check of a guest physician's vitals socket:
// the link still opens the visit, the visit is in its vitals window, and
// the guest is admitted to the call from browser (the socket's). Only the store being unwell keeps
// the view without an answer.
func (s *server) stillGuestViewer(r *http.Request, l store.GuestLink, browser string) error {
	_, a, err := s.guestFrom(r)
	switch {
	case guestLinkEnded(err):
		return errVisitOver
	case err != nil:
		return nil // the store is unwell: keep the view rather than cut it
	case !vitalsOpen(a, s.Now()):
		return errVisitOver
	case !s.Calls.AdmittedFrom(a.ID, guestPeerID(l), browser):
		return errNotInCall
	}
	return nil
}

// handleGuestVitalsWS streams a visit's live vitals to a guest physician,
// as handleVitalsWS does to the visit's physician: in the same window,
// audited, and re-checked while open (a revoked link closes it). Only
// while the guest is admitted to the call: never from the waiting room,
// and no longer once they leave or are removed.
func (s *server) handleGuestVitalsWS(w http.ResponseWriter, r *http.Request) {
	if s.refuseCrossOrigin(w, r) || s.tooManyRefusals(w, r, "guest-vitals") {
		return
	}
	l, a, err := s.guestFrom(r)
	if err != nil {
		if l.ID != 0 {
			s.guestLinkRefused(r, "guest-vitals", l, audit.ActionRead, a.PatientID, guestResource(l)+"/vitals")
		}
		http.Error(w, "open your guest link again", http.StatusUnauthorized)
		return
	}
	// Admitted from this browser: a forwarded link's other holder, who
	// never passed the lobby, sees nothing.
	browser := browserOf(r, guestBrowserCookie)
	admitted := s.Calls.AdmittedFrom(a.ID, guestPeerID(l), browser)
	if l.Role != store.GuestPhysician || !vitalsOpen(a, s.Now()) || !admitted {
		s.Audit.Denied(r.Context(), guestWho(r, l), audit.ActionRead, a.PatientID, guestResource(l)+"/vitals")
		msg := vitalsWindowRefusal
		switch {
		case l.Role != store.GuestPhysician:
			msg = guestVitalsRefusal
		case !admitted:
			msg = guestNotAdmitted
		}
		s.forbidden(w, r, msg)
		return
	}
	q := r.URL.Query()
	from, err := live.ParsePosition(q.Get("epoch"), q.Get("offset"), q.Has("epoch"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.Audit.Success(r.Context(), guestWho(r, l), audit.ActionRead, a.PatientID, guestResource(l)+"/vitals")
	s.metrics.auditable.Inc(audit.ActionRead)
	s.serveViewer(w, r, visitViewer{
		appointment: a.ID, patient: a.PatientID, from: from,
		still: func(r *http.Request) func(context.Context) error {
			// The socket keeps its browser's digest, not the cookie.
			return func(ctx context.Context) error { return s.stillGuestViewer(r.WithContext(ctx), l, browser) }
		},
		name: "guest vitals viewer", log: []any{"appointment", a.ID, "guest", l.ID},
	})
}

// issuedGuest is a guest link just issued, whose address the panel shows
// this once to its issuer; no later page shows it again.
type issuedGuest struct {
	ID    int64
	Token string
}

// mayIssueGuest reports whether c may issue links of role to visit a: a
// second physician, who sees the patient's live vitals, only by the
// visit's own physician; an interpreter or family member by the physician
// or a scheduler. Whoever may manage the visit's guests may withdraw any
// of its links: that gives nobody access.
func mayIssueGuest(c caller, a scheduling.Appointment, role string) bool {
	if role == store.GuestPhysician {
		return c.User.Role == store.RolePhysician && c.User.ID == a.PhysicianID
	}
	return true
}

// guestsView lists a visit's live guest links for the consult or the
// appointment page; action is where the panel's forms post. Only the link
// just issued (issued), if any, carries its address.
func (s *server) guestsView(ctx context.Context, r *http.Request, c caller, a scheduling.Appointment, action string, loc *time.Location, issued issuedGuest) (templates.GuestsView, error) {
	v := templates.GuestsView{Action: action, CanIssue: a.Status.Live(),
		CanIssuePhysician: mayIssueGuest(c, a, store.GuestPhysician)}
	live, err := s.guestLinks().Live(ctx, a.ID)
	if err != nil {
		return v, err
	}
	for _, l := range live {
		row := templates.GuestRow{ID: l.ID, Name: l.Name, Role: guestRoles[l.Role].label, Expires: formatWhen(l.ExpiresAt, loc)}
		if issued.Token != "" && l.ID == issued.ID {
			row.Link = joinlink.GuestURL(s.baseURL(r), issued.Token)
		}
		v.Guests = append(v.Guests, row)
	}
	return v, nil
}

// handleIssueGuest issues a guest link to a visit: the visit's physician
// from the consult page, or a scheduler from the appointment page.
func (s *server) handleIssueGuest(consult bool) func(http.ResponseWriter, *http.Request, caller) {
	return func(w http.ResponseWriter, r *http.Request, c caller) {
		// The answer shows the new link, once: no cache may keep it.
		w.Header().Set("Cache-Control", "no-store")
		a, ok := s.guestVisit(w, r, c, consult)
		if !ok || !s.readForm(w, r) {
			return
		}
		role := r.PostFormValue("role")
		if !mayIssueGuest(c, a, role) {
			s.auditDenied(r, c, audit.ActionCreate, a.PatientID, audit.Ref("Appointment", a.ID)+"/guest")
			s.forbidden(w, r, "only the visit's physician may invite a second physician")
			return
		}
		l, tok, err := s.guestLinks().Issue(r.Context(), a, role, r.PostFormValue("name"), c.User.ID)
		switch {
		case errors.Is(err, joinlink.ErrGuestName), errors.Is(err, joinlink.ErrGuestRole), errors.Is(err, joinlink.ErrTooMany), errors.Is(err, joinlink.ErrVisitEnded):
			s.auditFailedGuest(r, c, a)
			s.renderGuests(w, r, c, a, consult, http.StatusBadRequest, issuedGuest{}, "", err.Error())
			return
		case err != nil:
			s.serverError(w, r, err)
			return
		}
		s.audited(r, c, audit.ActionCreate, a.PatientID, guestResource(l))
		s.Log.InfoContext(r.Context(), "guest link issued", "appointment", a.ID, "guest", l.ID, "by", c.User.ID)
		s.renderGuests(w, r, c, a, consult, http.StatusOK, issuedGuest{ID: l.ID, Token: tok},
			"A guest link for "+l.Name+" was issued. Send it to them now: it is shown only this once, and opens this visit's call only.", "")
	}
}

// handleRevokeGuest withdraws a guest link and removes its guest from the
// call at once if the call is on this node; on another node, the guest's
// socket re-check ends it within the re-check interval.
func (s *server) handleRevokeGuest(consult bool) func(http.ResponseWriter, *http.Request, caller) {
	return func(w http.ResponseWriter, r *http.Request, c caller) {
		a, ok := s.guestVisit(w, r, c, consult)
		if !ok {
			return
		}
		gid, err := strconv.ParseInt(r.PathValue("guest"), 10, 64)
		var l store.GuestLink
		if err == nil {
			l, err = s.findGuestLink(r.Context(), a.ID, gid)
		}
		if err != nil {
			// Another visit's link, or none: the same answer either way.
			s.auditDenied(r, c, audit.ActionDelete, a.PatientID, audit.Ref("Appointment", a.ID)+"/guest")
			http.Error(w, "no such guest link on this visit", http.StatusNotFound)
			return
		}
		if err := s.Store.RevokeGuestLink(r.Context(), l.ID, s.Now()); err != nil {
			s.serverError(w, r, err)
			return
		}
		s.Calls.Remove(a.ID, guestPeerID(l), "your guest link was withdrawn")
		s.audited(r, c, audit.ActionDelete, a.PatientID, guestResource(l))
		s.Log.InfoContext(r.Context(), "guest link revoked", "appointment", a.ID, "guest", l.ID, "by", c.User.ID)
		s.renderGuests(w, r, c, a, consult, http.StatusOK, issuedGuest{}, "The guest link for "+l.Name+" was withdrawn.", "")
	}
}

// findGuestLink finds guest link id among the visit's.
func (s *server) findGuestLink(ctx context.Context, appointment, id int64) (store.GuestLink, error) {
	all, err := s.Store.GuestLinks(ctx, appointment)
	if err != nil {
		return store.GuestLink{}, err
	}
	for _, l := range all {
		if l.ID == id {
			return l, nil
		}
	}
	return store.GuestLink{}, store.ErrNotFound
}

// guestVisit is the visit of the URL, if the caller may manage its guests:
// on the consult routes its physician (schedulers and admins reach the
// appointment routes only, by role).
func (s *server) guestVisit(w http.ResponseWriter, r *http.Request, c caller, consult bool) (scheduling.Appointment, bool) {
	if consult {
		a, ok := s.appointmentParam(w, r)
		if !ok {
			return a, false
		}
		if !mayJoin(c, a) {
			s.auditDenied(r, c, audit.ActionUpdate, a.PatientID, audit.Ref("Appointment", a.ID)+"/guest")
			s.forbidden(w, r, "this visit is not yours")
			return a, false
		}
		return a, true
	}
	return s.appointmentParam(w, r)
}

func (s *server) auditFailedGuest(r *http.Request, c caller, a scheduling.Appointment) {
	s.Audit.Failed(r.Context(), audit.User(c.User, r), audit.ActionCreate, a.PatientID, audit.Ref("Appointment", a.ID)+"/guest")
}

// renderGuests answers a guest panel form: the consult page's panel alone,
// or the whole appointment page; issued is the link to show this once.
func (s *server) renderGuests(w http.ResponseWriter, r *http.Request, c caller, a scheduling.Appointment, consult bool, status int, issued issuedGuest, flash, problem string) {
	if !consult {
		if problem != "" {
			flash = ""
		}
		s.renderAppointmentWith(w, r, c, a, status, "", flash, problem, issued)
		return
	}
	v, err := s.guestsView(r.Context(), r, c, a, "/consult/"+strconv.FormatInt(a.ID, 10)+"/guests", viewerZone(c.User), issued)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	v.Flash, v.Error = flash, problem
	s.render(w, r, status, templates.GuestsPanel(v))
}
