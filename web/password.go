package web

import (
	"errors"
	"net/http"

	"github.com/bedside-health/bedside/account"
	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/templates"
)

// handlePasswordLinkPage opens a password link: the link is the credential,
// and a bad one says so without saying why.
func (s *server) handlePasswordLinkPage(w http.ResponseWriter, r *http.Request) {
	if s.tooManyRefusals(w, r, "password-link") {
		return
	}
	token := r.PathValue("token")
	u, err := s.accounts().LinkUser(r.Context(), token)
	if !s.passwordLinkOK(w, r, err) {
		return
	}
	s.renderPasswordLink(w, r, http.StatusOK, token, u, "")
}

// handlePasswordLink sets the password a link allows, once, and sends the
// person to sign in with it.
func (s *server) handlePasswordLink(w http.ResponseWriter, r *http.Request) {
	if s.tooManyRefusals(w, r, "password-link") || !s.readForm(w, r) {
		return
	}
	token := r.PathValue("token")
	u, err := s.accounts().LinkUser(r.Context(), token)
	if !s.passwordLinkOK(w, r, err) {
		return
	}
	password := r.PostFormValue("password")
	if password != r.PostFormValue("confirm") {
		s.renderPasswordLink(w, r, http.StatusUnprocessableEntity, token, u, "The two passwords differ; type the same one twice.")
		return
	}
	_, err = s.accounts().SetPasswordByLink(r.Context(), audit.Address(r), token, password)
	switch {
	case errors.Is(err, auth.ErrWeakPassword):
		s.renderPasswordLink(w, r, http.StatusUnprocessableEntity, token, u, upperFirst(err.Error())+".")
		return
	case !s.passwordLinkOK(w, r, err):
		return
	}
	s.Log.InfoContext(r.Context(), "password set by link", "user", u.ID)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// passwordLinkOK answers a link that does not work (410, recorded as a
// failed attempt) or a server error, and reports whether err was nil.
func (s *server) passwordLinkOK(w http.ResponseWriter, r *http.Request, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, account.ErrBadLink):
		// Counted per address, the first written (throttle.go).
		s.refuseAttempt(r, "password-link", store.AuditEvent{ActorRole: audit.RoleAnonymous, Action: audit.ActionUpdate,
			Resource: "password-link", Outcome: audit.OutcomeFailed})
		s.message(w, r, http.StatusGone, "This link does not work",
			"A password link works once, for three days. Ask an administrator for a new one.")
	default:
		s.serverError(w, r, err)
	}
	return false
}

func (s *server) renderPasswordLink(w http.ResponseWriter, r *http.Request, status int, token string, u store.User, problem string) {
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, status, templates.PasswordLinkPage(templates.PasswordLinkView{Page: templates.Page{Title: "Choose your password"},
		Action: "/account/password/" + token, Name: u.Name, Email: u.Email, Error: problem}))
}
