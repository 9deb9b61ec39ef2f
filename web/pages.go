package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a-h/templ"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/templates"
)

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// logPath is what the logs say of r's path: its route pattern, never the
// path itself, so a credential in a path (/guest/{token}, /join/{token},
// /account/password/{token}) never reaches the logs.
func logPath(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return r.Method + " (no route)"
}

func (s *server) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := c.Render(r.Context(), w); err != nil {
		s.Log.ErrorContext(r.Context(), "render page", "route", logPath(r), "err", err)
	}
}

func (s *server) serverError(w http.ResponseWriter, r *http.Request, err error) {
	s.Log.ErrorContext(r.Context(), "request failed", "route", logPath(r), "err", err)
	http.Error(w, "something went wrong on our side; please try again", http.StatusInternalServerError)
}

func page(title string, c caller) templates.Page {
	return templates.Page{Title: title, UserName: c.User.Name, Role: string(c.User.Role)}
}

func (s *server) message(w http.ResponseWriter, r *http.Request, status int, heading, text string) {
	s.render(w, r, status, templates.MessagePage(templates.MessageView{
		Page: templates.Page{Title: heading}, Heading: heading, Text: text}))
}

// viewerZone is the zone a user's pages are shown in.
func viewerZone(u store.User) *time.Location { return zoneOf(u.TimeZone) }

func (s *server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

func (s *server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.Store.Ping(r.Context()); err != nil {
		s.Log.ErrorContext(r.Context(), "store not ready", "err", err)
		http.Error(w, "store unreachable", http.StatusServiceUnavailable)
		return
	}
	if err := s.Bus.Ping(r.Context()); err != nil {
		s.Log.ErrorContext(r.Context(), "bus not ready", "err", err)
		http.Error(w, "bus unreachable", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

func (s *server) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, templates.LoginPage(templates.LoginView{
		Page: templates.Page{Title: "Sign in"}, Next: safeNext(r.URL.Query().Get("next"))}))
}

// safeNext keeps redirects after sign-in on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

func (s *server) handleLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form could not be read", http.StatusBadRequest)
		return
	}
	email := strings.TrimSpace(strings.ToLower(r.PostFormValue("email")))
	next := safeNext(r.PostFormValue("next"))
	fail := func() {
		s.render(w, r, http.StatusUnauthorized, templates.LoginPage(templates.LoginView{
			Page: templates.Page{Title: "Sign in"}, Email: email, Next: next,
			Error: "That email and password do not match an account."}))
	}
	wait, err := s.signInWait(r, email)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if wait > 0 {
		// Refused before the password is even looked at, so guessing
		// gains nothing while blocked.
		s.Log.WarnContext(r.Context(), "sign-in throttled", "address", audit.Address(r))
		s.metrics.signIns.Inc("throttled")
		s.metrics.refused.Inc("sign-in")
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())))
		s.render(w, r, http.StatusTooManyRequests, templates.LoginPage(templates.LoginView{
			Page: templates.Page{Title: "Sign in"}, Email: email, Next: next,
			Error: "Too many failed sign-ins. Please wait " + waitText(wait) + " and try again, or ask an administrator to reset your password."}))
		return
	}
	u, err := s.Store.UserByEmail(r.Context(), email)
	if err != nil || u.PasswordHash == "" {
		// Spend the same effort as a real check so timing does not reveal accounts.
		_ = auth.CheckPassword(dummyHash(), r.PostFormValue("password"))
		s.signInFailed(r, email)
		s.metrics.signIns.Inc("failed")
		fail()
		return
	}
	if err := auth.CheckPassword(u.PasswordHash, r.PostFormValue("password")); err != nil || !u.Active() {
		// A deactivated account is refused exactly as a wrong password
		// is, after the same work, so the page does not say which.
		s.Log.InfoContext(r.Context(), "sign-in failed", "user", u.ID)
		s.Audit.Failed(r.Context(), audit.User(u, r), audit.ActionLogin, 0, "")
		s.metrics.signIns.Inc("failed")
		s.signInFailed(r, email)
		fail()
		return
	}
	if len(u.TOTPSecret) > 0 {
		// No session yet: the code from the authenticator app comes next (totp.go).
		s.askSecondFactor(w, r, u, next)
		return
	}
	if err := s.Store.ClearLoginFailures(r.Context(), accountKey(email)); err != nil {
		s.Log.ErrorContext(r.Context(), "clear sign-in failures", "err", err)
	}
	if err := s.startSession(w, r, u.ID, 0, sessionTTL); err != nil {
		s.serverError(w, r, err)
		return
	}
	s.Log.InfoContext(r.Context(), "signed in", "user", u.ID, "role", u.Role)
	s.Audit.Success(r.Context(), audit.User(u, r), audit.ActionLogin, 0, "")
	s.metrics.signIns.Inc("success")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// dummyHash is checked against when no account matches, so an unknown
// email costs the same time as a wrong password; made on first use.
var dummyHash = sync.OnceValue(func() string { h, _ := auth.HashPassword("not-a-real-password"); return h })

func (s *server) handleLogout(w http.ResponseWriter, r *http.Request, c caller) {
	_ = s.Store.DeleteSession(r.Context(), c.tokenHash)
	s.clearCookie(w)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// handleLogoutEverywhere ends every session of the caller's account, on
// every device (a lost laptop, a shared computer left signed in).
func (s *server) handleLogoutEverywhere(w http.ResponseWriter, r *http.Request, c caller) {
	n, err := s.Store.DeleteUserSessions(r.Context(), c.User.ID)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.Log.InfoContext(r.Context(), "signed out everywhere", "user", c.User.ID, "sessions", n)
	s.clearCookie(w)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *server) handleHome(w http.ResponseWriter, r *http.Request, c caller) {
	if c.Appointment != 0 {
		http.Redirect(w, r, "/visit/"+strconv.FormatInt(c.Appointment, 10), http.StatusSeeOther)
		return
	}
	switch c.User.Role {
	case store.RoleScheduler, store.RoleAdmin:
		http.Redirect(w, r, "/schedule", http.StatusSeeOther)
	case store.RolePhysician:
		http.Redirect(w, r, "/today", http.StatusSeeOther)
	default:
		s.message(w, r, http.StatusOK, "Welcome", "Open the personal link from your invitation to join your visit.")
	}
}

// appointmentParam reads the {id} path value and loads the appointment.
func (s *server) appointmentParam(w http.ResponseWriter, r *http.Request) (scheduling.Appointment, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		http.Error(w, "no such visit", http.StatusNotFound)
		return scheduling.Appointment{}, false
	}
	a, err := s.Store.AppointmentByID(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "no such visit", http.StatusNotFound)
		return a, false
	}
	if err != nil {
		s.serverError(w, r, err)
		return a, false
	}
	return a, true
}

// participantVisit loads the {id} appointment and answers 403 unless c is
// one of its participants. It is the one check behind every visit URL.
func (s *server) participantVisit(w http.ResponseWriter, r *http.Request, c caller) (scheduling.Appointment, bool) {
	a, ok := s.appointmentParam(w, r)
	if !ok {
		return a, false
	}
	if !mayJoin(c, a) {
		s.auditDenied(r, c, audit.ActionRead, a.PatientID, audit.Ref("Appointment", a.ID))
		s.forbidden(w, r, "this visit is not yours")
		return a, false
	}
	s.audited(r, c, audit.ActionRead, a.PatientID, audit.Ref("Appointment", a.ID))
	return a, true
}

// Live vitals are a patient's, not a visit's: they are shown to a visit's
// physician only from shortly before the visit until a while after it, so
// having once seen a patient does not open their readings for good.
const (
	vitalsOpenBefore = 30 * time.Minute
	vitalsOpenAfter  = 2 * time.Hour
)

// vitalsOpen reports whether a's live vitals may be watched at now.
func vitalsOpen(a scheduling.Appointment, now time.Time) bool {
	return a.Status.Live() && a.Status != scheduling.StatusFulfilled &&
		!now.Before(a.Start.Add(-vitalsOpenBefore)) && now.Before(a.End.Add(vitalsOpenAfter))
}

// mayJoin reports whether c is a participant of a: its physician, or its
// patient through a session opened by that visit's join link.
func mayJoin(c caller, a scheduling.Appointment) bool {
	switch {
	case c.Appointment != 0:
		return c.Appointment == a.ID && c.User.ID == a.PatientID
	case c.User.Role == store.RolePhysician:
		return c.User.ID == a.PhysicianID
	}
	return false
}

// userZone is a user's time zone name, "" if unknown.
func (s *server) userZone(r *http.Request, id int64) string {
	u, err := s.Store.UserByID(r.Context(), id)
	if err != nil {
		return ""
	}
	return u.TimeZone
}

func (s *server) userName(r *http.Request, id int64) string {
	u, err := s.Store.UserByID(r.Context(), id)
	if err != nil {
		return "unknown"
	}
	return u.Name
}

// formatWhen shows an instant in loc with the zone named.
func formatWhen(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("Mon 2 Jan 2006, 15:04 MST") + " (" + loc.String() + ")"
}
