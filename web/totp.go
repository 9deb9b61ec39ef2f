package web

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/templates"
)

// Two-step sign-in: staff may add a TOTP second factor (RFC 6238, as
// authenticator apps make). Signing in then takes two steps. The password
// step (handleLogin) starts no session but a pending one: a store.Session
// marked with AppointmentID pendingSecondFactor, for secondFactorTTL,
// whose token is in its own cookie (mfaCookie, sent to /login/code only).
// lookupSession refuses such a session whatever cookie carries it, so it
// grants nothing but the code step; the code step (handleLoginCode) ends
// it and starts the real session.
const (
	mfaCookie           = "bedside_mfa"
	mfaPath             = "/login/code"
	pendingSecondFactor = -1
	secondFactorTTL     = 5 * time.Minute
	// totpIssuer names Bedside in authenticator apps.
	totpIssuer = "Bedside"
	// enrolTTL bounds how long a set-up page's key may be confirmed.
	enrolTTL = 30 * time.Minute
)

// askSecondFactor follows a right password for u, who has a second factor:
// it starts the pending session and sends the browser to the code step.
// Failed sign-ins are not cleared until the code is right, so the password
// does not reset the count of wrong codes.
func (s *server) askSecondFactor(w http.ResponseWriter, r *http.Request, u store.User, next string) {
	if old, err := r.Cookie(mfaCookie); err == nil {
		_ = s.Store.DeleteSession(r.Context(), auth.HashToken(old.Value))
	}
	token, hash := auth.NewToken()
	now := s.Now()
	if err := s.Store.CreateSession(r.Context(), store.Session{
		TokenHash: hash, UserID: u.ID, AppointmentID: pendingSecondFactor,
		CreatedAt: now, ExpiresAt: now.Add(secondFactorTTL),
	}); err != nil {
		s.serverError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: mfaCookie, Value: token, Path: mfaPath, HttpOnly: true,
		Secure: s.Secure, SameSite: http.SameSiteLaxMode, MaxAge: int(secondFactorTTL.Seconds()),
	})
	s.Log.InfoContext(r.Context(), "password accepted, code needed", "user", u.ID)
	http.Redirect(w, r, mfaPath+"?next="+urlQueryEscape(next), http.StatusSeeOther)
}

var errNoPending = errors.New("no pending second factor")

// pendingUser resolves the pending cookie to the user whose code is
// awaited and the pending session's hash. Only a pending session, unexpired,
// of a user who still has a second factor, will do.
func (s *server) pendingUser(r *http.Request) (store.User, []byte, error) {
	ck, err := r.Cookie(mfaCookie)
	if err != nil || ck.Value == "" {
		return store.User{}, nil, errNoPending
	}
	hash := auth.HashToken(ck.Value)
	sess, err := s.Store.SessionByHash(r.Context(), hash)
	if err != nil || sess.AppointmentID != pendingSecondFactor {
		return store.User{}, nil, errNoPending
	}
	if !s.Now().Before(sess.ExpiresAt) {
		_ = s.Store.DeleteSession(r.Context(), hash)
		return store.User{}, nil, errNoPending
	}
	u, err := s.Store.UserByID(r.Context(), sess.UserID)
	if err != nil || len(u.TOTPSecret) == 0 || !u.Active() {
		return store.User{}, nil, errNoPending
	}
	return u, hash, nil
}

func (s *server) clearMFACookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: mfaCookie, Value: "", Path: mfaPath, HttpOnly: true,
		Secure: s.Secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// handleLoginCodePage asks for the code; without a pending sign-in it
// sends the browser to sign in.
func (s *server) handleLoginCodePage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if _, _, err := s.pendingUser(r); err != nil {
		http.Redirect(w, r, "/login?next="+urlQueryEscape(next), http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, templates.TOTPCodePage(templates.TOTPCodeView{
		Page: templates.Page{Title: "Enter your code"}, Next: next}))
}

// handleLoginCode checks the code of a pending sign-in. Wrong codes count
// as failed sign-ins of the account, so guessing is throttled as guessing
// passwords is; the right one ends the pending session and starts a real
// one.
func (s *server) handleLoginCode(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form could not be read", http.StatusBadRequest)
		return
	}
	next := safeNext(r.PostFormValue("next"))
	u, pending, err := s.pendingUser(r)
	if err != nil {
		s.clearMFACookie(w)
		s.render(w, r, http.StatusUnauthorized, templates.LoginPage(templates.LoginView{
			Page: templates.Page{Title: "Sign in"}, Next: next,
			Error: "Your sign-in ran out of time before the code was entered. Please sign in again."}))
		return
	}
	codePage := func(status int, msg string) {
		s.render(w, r, status, templates.TOTPCodePage(templates.TOTPCodeView{
			Page: templates.Page{Title: "Enter your code"}, Next: next, Error: msg}))
	}
	email := strings.ToLower(u.Email) // as handleLogin keys the account
	wait, err := s.signInWait(r, email)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if wait > 0 {
		s.Log.WarnContext(r.Context(), "sign-in code throttled", "user", u.ID, "address", audit.Address(r))
		s.metrics.signIns.Inc("throttled")
		s.metrics.refused.Inc("sign-in")
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())))
		codePage(http.StatusTooManyRequests, "Too many wrong codes. Please wait "+waitText(wait)+" and sign in again, or ask an administrator for help.")
		return
	}
	secret, err := auth.Open(s.Secret, u.TOTPSecret)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if ok, reused, err := s.checkCode(r.Context(), u.ID, secret, r.PostFormValue("code")); err != nil {
		s.serverError(w, r, err)
		return
	} else if !ok {
		s.Log.InfoContext(r.Context(), "sign-in code wrong", "user", u.ID, "reused", reused)
		s.Audit.Failed(r.Context(), audit.User(u, r), audit.ActionLogin, 0, "")
		s.metrics.signIns.Inc("failed")
		s.signInFailed(r, email)
		msg := "That code is not right. Enter the 6-digit code your authenticator app shows for Bedside now."
		if reused {
			msg = usedCode
		}
		codePage(http.StatusUnauthorized, msg)
		return
	}
	if err := s.Store.ClearLoginFailures(r.Context(), accountKey(email)); err != nil {
		s.Log.ErrorContext(r.Context(), "clear sign-in failures", "err", err)
	}
	if err := s.Store.DeleteSession(r.Context(), pending); err != nil {
		s.serverError(w, r, err)
		return
	}
	s.clearMFACookie(w)
	if err := s.startSession(w, r, u.ID, 0, sessionTTL); err != nil {
		s.serverError(w, r, err)
		return
	}
	s.Log.InfoContext(r.Context(), "signed in", "user", u.ID, "role", u.Role, "second_factor", true)
	s.Audit.Success(r.Context(), audit.User(u, r), audit.ActionLogin, 0, "")
	s.metrics.signIns.Inc("success")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// usedCode tells someone that a right code was refused because it was
// already used once.
const usedCode = "That code was already used. Wait for your app to show a new code, then enter that one."

// checkCode reports whether typed is secret's code now and was not used
// before (reused: it was right, but its time step's code was already
// accepted once). A code it accepts is recorded, so it never works again,
// not even on another node or tab (RFC 6238 section 5.2).
func (s *server) checkCode(ctx context.Context, userID int64, secret []byte, typed string) (ok, reused bool, err error) {
	step, ok := auth.CheckTOTP(secret, cleanCode(typed), s.Now())
	if !ok {
		return false, false, nil
	}
	switch err := s.Store.UseTOTPStep(ctx, userID, step); {
	case errors.Is(err, store.ErrConflict):
		return false, true, nil
	case err != nil:
		return false, false, fmt.Errorf("record second-factor step: %w", err)
	}
	return true, false, nil
}

// cleanCode drops the spaces and dashes people type or paste in a code.
func cleanCode(code string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\t' {
			return -1
		}
		return r
	}, code)
}

// totpResource is the audit trail's name for a user's second factor.
func totpResource(userID int64) string { return audit.Ref("User", userID) + "/totp" }

// totpPage renders the settings page. Nothing on it may be cached: it may
// show a set-up key.
func (s *server) totpPage(w http.ResponseWriter, r *http.Request, c caller, status int, v templates.TOTPView) {
	w.Header().Set("Cache-Control", "no-store")
	v.Page = page("Two-step sign-in", c)
	s.render(w, r, status, templates.TOTPPage(v))
}

// enrolView is the set-up form for a new secret, which it carries sealed
// (see sealPending), with msg as the error about the code.
func (s *server) enrolView(c caller, secret []byte, msg string) (templates.TOTPView, error) {
	pending, err := s.sealPending(c.User.ID, secret)
	if err != nil {
		return templates.TOTPView{}, err
	}
	return templates.TOTPView{
		SecretText: auth.TOTPSecretText(secret),
		URI:        auth.TOTPURI(secret, totpIssuer, c.User.Email),
		Pending:    pending,
		Error:      msg,
	}, nil
}

// sealPending seals a secret being set up, for the form to carry until
// the user confirms it with a code: bound to the user and the time it was
// made, so that it is good for that user only, for enrolTTL.
func (s *server) sealPending(userID int64, secret []byte) (string, error) {
	plain := make([]byte, 16, 16+len(secret))
	binary.BigEndian.PutUint64(plain[:8], uint64(userID))
	binary.BigEndian.PutUint64(plain[8:], uint64(s.Now().Unix()))
	sealed, err := auth.Seal(s.Secret, append(plain, secret...))
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

var errPendingSecret = errors.New("set-up key not valid")

// openPending reverses sealPending for the user, refusing another user's
// value or an expired one.
func (s *server) openPending(userID int64, pending string) ([]byte, error) {
	sealed, err := base64.RawURLEncoding.DecodeString(pending)
	if err != nil {
		return nil, errPendingSecret
	}
	plain, err := auth.Open(s.Secret, sealed)
	if err != nil || len(plain) <= 16 || int64(binary.BigEndian.Uint64(plain[:8])) != userID {
		return nil, errPendingSecret
	}
	made := time.Unix(int64(binary.BigEndian.Uint64(plain[8:16])), 0)
	if age := s.Now().Sub(made); age < -time.Minute || age > enrolTTL {
		return nil, errPendingSecret
	}
	return plain[16:], nil
}

// handleTOTPPage shows whether two-step sign-in is on; when it is off, it
// offers a fresh key to set it up with.
func (s *server) handleTOTPPage(w http.ResponseWriter, r *http.Request, c caller) {
	if len(c.User.TOTPSecret) > 0 {
		s.totpPage(w, r, c, http.StatusOK, templates.TOTPView{Enabled: true})
		return
	}
	v, err := s.enrolView(c, auth.NewTOTPSecret(), "")
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.totpPage(w, r, c, http.StatusOK, v)
}

// handleTOTPEnrol turns two-step sign-in on once a code from the new key
// is right, storing the key sealed, and signs the account out everywhere
// else (this browser gets a new session).
func (s *server) handleTOTPEnrol(w http.ResponseWriter, r *http.Request, c caller) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form could not be read", http.StatusBadRequest)
		return
	}
	if len(c.User.TOTPSecret) > 0 {
		s.totpPage(w, r, c, http.StatusConflict, templates.TOTPView{Enabled: true,
			Error: "Two-step sign-in is already on. To use a new phone or app, turn it off and set it up again."})
		return
	}
	secret, err := s.openPending(c.User.ID, r.PostFormValue("pending"))
	if err != nil {
		v, err := s.enrolView(c, auth.NewTOTPSecret(), "This set-up key has expired. Here is a new one: add it to your app in place of the old one, then enter a code.")
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		s.totpPage(w, r, c, http.StatusUnprocessableEntity, v)
		return
	}
	if ok, reused, err := s.checkCode(r.Context(), c.User.ID, secret, r.PostFormValue("code")); err != nil {
		s.serverError(w, r, err)
		return
	} else if !ok {
		msg := "That code is not right. Check that the app has the key above and enter the code it shows now."
		if reused {
			msg = usedCode
		}
		v, err := s.enrolView(c, secret, msg)
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		s.totpPage(w, r, c, http.StatusUnprocessableEntity, v)
		return
	}
	sealed, err := auth.Seal(s.Secret, secret)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if err := s.Store.SetTOTPSecret(r.Context(), c.User.ID, sealed); err != nil {
		s.serverError(w, r, err)
		return
	}
	s.Audit.Success(r.Context(), audit.User(c.User, r), audit.ActionUpdate, 0, totpResource(c.User.ID))
	// Whoever else held a session of this account (the reason, perhaps,
	// for turning this on) holds it no more.
	n, err := s.Store.DeleteUserSessions(r.Context(), c.User.ID)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if err := s.startSession(w, r, c.User.ID, 0, sessionTTL); err != nil {
		s.serverError(w, r, err)
		return
	}
	s.Log.InfoContext(r.Context(), "second factor on", "user", c.User.ID, "sessions_ended", n)
	s.totpPage(w, r, c, http.StatusOK, templates.TOTPView{Enabled: true,
		Flash: "Two-step sign-in is on. You were signed out on every other device."})
}

// handleTOTPOff turns two-step sign-in off after a right code. Wrong codes
// count as failed sign-ins, so a session alone cannot guess its way to
// turning it off.
func (s *server) handleTOTPOff(w http.ResponseWriter, r *http.Request, c caller) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form could not be read", http.StatusBadRequest)
		return
	}
	if len(c.User.TOTPSecret) == 0 {
		s.message(w, r, http.StatusConflict, "Two-step sign-in is off", "There is nothing to turn off.")
		return
	}
	email := strings.ToLower(c.User.Email)
	wait, err := s.signInWait(r, email)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if wait > 0 {
		s.metrics.refused.Inc("sign-in")
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())))
		s.totpPage(w, r, c, http.StatusTooManyRequests, templates.TOTPView{Enabled: true,
			Error: "Too many wrong codes. Please wait " + waitText(wait) + " and try again."})
		return
	}
	secret, err := auth.Open(s.Secret, c.User.TOTPSecret)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if ok, reused, err := s.checkCode(r.Context(), c.User.ID, secret, r.PostFormValue("code")); err != nil {
		s.serverError(w, r, err)
		return
	} else if !ok {
		s.Audit.Failed(r.Context(), audit.User(c.User, r), audit.ActionDelete, 0, totpResource(c.User.ID))
		s.signInFailed(r, email)
		msg := "That code is not right, so two-step sign-in is still on. Enter the code your app shows now."
		if reused {
			msg = "Two-step sign-in is still on. " + usedCode
		}
		s.totpPage(w, r, c, http.StatusUnprocessableEntity, templates.TOTPView{Enabled: true, Error: msg})
		return
	}
	if err := s.Store.SetTOTPSecret(r.Context(), c.User.ID, nil); err != nil {
		s.serverError(w, r, err)
		return
	}
	s.Audit.Success(r.Context(), audit.User(c.User, r), audit.ActionDelete, 0, totpResource(c.User.ID))
	s.Log.InfoContext(r.Context(), "second factor off", "user", c.User.ID)
	v, err := s.enrolView(c, auth.NewTOTPSecret(), "")
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	v.Flash = "Two-step sign-in is off: your password alone now signs you in. To turn it on again, use the new key below."
	s.totpPage(w, r, c, http.StatusOK, v)
}
