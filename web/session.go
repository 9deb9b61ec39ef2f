package web

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/store"
)

const sessionCookie = "bedside_session"

// browserCookie holds a random secret of the browser a session was started
// in. Unlike the session cookie, a new session (rotation: signing in again,
// reopening a join link) keeps it, so the call hub knows the same browser
// coming back (signaling.Peer.Browser, browserOf); it grants nothing.
const browserCookie = "bedside_browser"

// caller is who is asking: a signed-in user, optionally confined to one visit.
type caller struct {
	User store.User
	// Appointment is non-zero for a join-link session: it may use that visit only.
	Appointment int64
	tokenHash   []byte
	seen        time.Time // the session's last activity
}

type callerKey struct{}

func callerFrom(ctx context.Context) (caller, bool) {
	c, ok := ctx.Value(callerKey{}).(caller)
	return c, ok
}

// lookupSession resolves the session cookie of a request, if any, to a
// caller. A request is its person's activity, which keeps the session
// from idling out, unless it is a socket's re-check (socketPeer.request).
func (s *server) lookupSession(r *http.Request) (caller, error) {
	return s.session(r, r.Context().Value(recheckKey{}) == nil)
}

// recheckKey marks, in a request's context, the request a socket's
// re-check rebuilt from the one that opened it.
type recheckKey struct{}

// recheckSession is lookupSession for a socket's re-check of the request
// that opened it: both timeouts apply, but a re-check is not activity, so
// a page left open idles out as one closed does (see touchSession for a
// call under way).
func (s *server) recheckSession(r *http.Request) (caller, error) {
	return s.session(r, false)
}

// session resolves the session cookie of r; active says whether r counts
// as its person's activity.
func (s *server) session(r *http.Request, active bool) (caller, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return caller{}, errNoSession
	}
	hash := auth.HashToken(ck.Value)
	sess, err := s.Store.SessionByHash(r.Context(), hash)
	if err != nil {
		return caller{}, errNoSession
	}
	// A sign-in still waiting for its code (AppointmentID
	// pendingSecondFactor, see totp.go) grants nothing here, whatever
	// cookie carries its token; no negative ID is a real session.
	if sess.AppointmentID < 0 {
		return caller{}, errNoSession
	}
	now := s.Now()
	// Absolute timeout, then idle timeout: a session left alone for
	// idleTimeout ends, as on a shared clinic computer it should.
	if !now.Before(sess.ExpiresAt) || !now.Before(sess.LastSeenAt.Add(idleTimeout)) {
		_ = s.Store.DeleteSession(r.Context(), hash)
		return caller{}, errNoSession
	}
	seen := sess.LastSeenAt
	if active {
		seen = s.touchSession(r.Context(), hash, seen)
	}
	u, err := s.Store.UserByID(r.Context(), sess.UserID)
	if err != nil {
		return caller{}, errNoSession
	}
	// Deactivation deletes the account's sessions; this refuses one that
	// slipped in alongside it (a sign-in racing the admin's click).
	if !u.Active() {
		_ = s.Store.DeleteSession(r.Context(), hash)
		return caller{}, errNoSession
	}
	return caller{User: u, Appointment: sess.AppointmentID, tokenHash: hash, seen: seen}, nil
}

// touchSession records activity of the session hash last seen at seen,
// at most once a minute (not a write per request), and returns when it
// was last seen now.
func (s *server) touchSession(ctx context.Context, hash []byte, seen time.Time) time.Time {
	now := s.Now()
	if now.Sub(seen) < time.Minute {
		return seen
	}
	if err := s.Store.TouchSession(ctx, hash, now); err != nil {
		s.Log.WarnContext(ctx, "touch session", "err", err)
		return seen
	}
	return now
}

var errNoSession = errors.New("no valid session")

// startSession stores a new session and sets its cookie.
func (s *server) startSession(w http.ResponseWriter, r *http.Request, userID, appointment int64, ttl time.Duration) error {
	// A new sign-in replaces whatever session the browser had (rotation).
	if old, err := r.Cookie(sessionCookie); err == nil {
		_ = s.Store.DeleteSession(r.Context(), auth.HashToken(old.Value))
	}
	token, hash := auth.NewToken()
	now := s.Now()
	if err := s.Store.CreateSession(r.Context(), store.Session{
		TokenHash: hash, UserID: userID, AppointmentID: appointment,
		CreatedAt: now, ExpiresAt: now.Add(ttl),
	}); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: token, Path: "/", HttpOnly: true,
		Secure: s.Secure, SameSite: http.SameSiteLaxMode, MaxAge: int(ttl.Seconds()),
	})
	s.setBrowserCookie(w, r, browserCookie, "/", ttl)
	return nil
}

// setBrowserCookie sets r's per-browser cookie named name (browserCookie,
// guestBrowserCookie) for another ttl: its secret when r has one, so the
// browser stays the same one, else a new secret.
func (s *server) setBrowserCookie(w http.ResponseWriter, r *http.Request, name, path string, ttl time.Duration) {
	secret := ""
	if ck, err := r.Cookie(name); err == nil && ck.Value != "" && len(ck.Value) <= 128 {
		secret = ck.Value
	} else {
		secret, _ = auth.NewToken()
	}
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: secret, Path: path, HttpOnly: true,
		Secure: s.Secure, SameSite: http.SameSiteLaxMode, MaxAge: int(ttl.Seconds()),
	})
}

func (s *server) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true,
		Secure: s.Secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// signedIn admits any valid session; others are sent to sign in (pages) or
// refused with 401 (WebSockets and other non-page requests).
func (s *server) signedIn(h func(http.ResponseWriter, *http.Request, caller)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.lookupSession(r)
		if err != nil {
			s.unauthenticated(w, r)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)), c)
	})
}

// staff admits signed-in users (not join-link sessions) of the given roles.
func (s *server) staff(h func(http.ResponseWriter, *http.Request, caller), roles ...store.Role) http.Handler {
	return s.signedIn(func(w http.ResponseWriter, r *http.Request, c caller) {
		if c.Appointment != 0 || !slices.Contains(roles, c.User.Role) {
			s.auditRefusal(r, c)
			s.forbidden(w, r, "your account may not open this page")
			return
		}
		h(w, r, c)
	})
}

func (s *server) unauthenticated(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.Header.Get("Upgrade") == "" {
		http.Redirect(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	http.Error(w, "sign in first", http.StatusUnauthorized)
}

func (s *server) forbidden(w http.ResponseWriter, r *http.Request, msg string) {
	s.Log.WarnContext(r.Context(), "access refused", "route", logPath(r), "reason", msg)
	http.Error(w, msg, http.StatusForbidden)
}

// signedInAPI is signedIn for requests made by scripts rather than page
// loads: without a valid session they get 401, not the sign-in page.
func (s *server) signedInAPI(h func(http.ResponseWriter, *http.Request, caller)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.lookupSession(r)
		if err != nil {
			http.Error(w, "sign in first", http.StatusUnauthorized)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)), c)
	})
}
