package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/account"
	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/templates"
)

// adminUsersPage is how many accounts one page of the user list shows.
const adminUsersPage = 50

// accounts is the account manager the admin pages and password links use.
func (s *server) accounts() *account.Manager {
	return &account.Manager{Store: s.Store, Audit: s.Audit, Now: s.Now, Key: s.Secret}
}

// roleOptions are the roles for a select, with any ("" label) first when
// anyLabel is not empty.
func roleOptions(selected, anyLabel string) []templates.Option {
	var out []templates.Option
	if anyLabel != "" {
		out = append(out, templates.Option{Value: "", Label: anyLabel, Selected: selected == ""})
	}
	for _, r := range []store.Role{store.RoleScheduler, store.RolePhysician, store.RolePatient, store.RoleAdmin} {
		out = append(out, templates.Option{Value: string(r), Label: string(r), Selected: selected == string(r)})
	}
	return out
}

func adminRow(u store.User) templates.AdminUserRow {
	return templates.AdminUserRow{ID: u.ID, Name: u.Name, Email: u.Email, Role: string(u.Role), Active: u.Active(), TwoStep: len(u.TOTPSecret) > 0}
}

// handleAdminUsers lists and searches accounts by name, email and role.
// Each patient listed is recorded, as on the patient search.
func (s *server) handleAdminUsers(w http.ResponseWriter, r *http.Request, c caller) {
	in := r.URL.Query()
	q := strings.TrimSpace(in.Get("q"))
	role := in.Get("role")
	if !store.Role(role).Valid() {
		role = ""
	}
	status := in.Get("status")
	if status != store.UserActive && status != store.UserDeactivated {
		status = ""
	}
	offset, _ := strconv.Atoi(in.Get("offset"))
	offset = max(offset, 0)
	list, total, err := s.Store.SearchUsers(r.Context(), store.UserQuery{Role: store.Role(role), Text: q, Status: status, Limit: adminUsersPage, Offset: offset})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	v := templates.AdminUsersView{Page: page("Users", c), Query: q, Roles: roleOptions(role, "Any"), Total: total,
		Statuses: []templates.Option{{Value: "", Label: "Any", Selected: status == ""},
			{Value: store.UserActive, Label: "Active", Selected: status == store.UserActive},
			{Value: store.UserDeactivated, Label: "Deactivated", Selected: status == store.UserDeactivated}},
		First: offset + 1, Last: offset + len(list)}
	for _, u := range list {
		if u.Role == store.RolePatient {
			s.audited(r, c, audit.ActionSearch, u.ID, audit.Ref("User", u.ID))
		}
		v.Rows = append(v.Rows, adminRow(u))
	}
	base := "/admin/users?q=" + urlQueryEscape(q) + "&role=" + urlQueryEscape(role) + "&status=" + status + "&offset="
	if offset > 0 {
		v.PrevURL = base + strconv.Itoa(max(offset-adminUsersPage, 0))
	}
	if offset+len(list) < total {
		v.NextURL = base + strconv.Itoa(offset+adminUsersPage)
	}
	s.render(w, r, http.StatusOK, templates.AdminUsersPage(v))
}

func (s *server) handleAdminNewUser(w http.ResponseWriter, r *http.Request, c caller) {
	s.render(w, r, http.StatusOK, templates.AdminNewUserPage(templates.AdminNewUserView{
		Page: page("Add a user", c), Roles: roleOptions(string(store.RoleScheduler), ""), Zone: c.User.TimeZone}))
}

// handleAdminCreateUser adds an account. Staff get no password here: the
// answer shows a one-time link with which they choose their own, so no
// one else ever knows it (see account.Manager.PasswordLink).
func (s *server) handleAdminCreateUser(w http.ResponseWriter, r *http.Request, c caller) {
	if !s.readForm(w, r) {
		return
	}
	n := account.NewUser{Role: r.PostFormValue("role"), Email: r.PostFormValue("email"), Name: r.PostFormValue("name"), TimeZone: r.PostFormValue("time_zone")}
	v := templates.AdminNewUserView{Page: page("Add a user", c), Roles: roleOptions(n.Role, ""),
		Email: strings.TrimSpace(n.Email), Name: strings.TrimSpace(n.Name), Zone: strings.TrimSpace(n.TimeZone), Errors: map[string]string{}}
	u, err := s.accounts().AddUser(r.Context(), audit.User(c.User, r), n, "")
	var bad account.Invalid
	switch {
	case errors.As(err, &bad):
		v.Errors = bad
	case errors.Is(err, store.ErrConflict):
		v.Errors["email"] = "Someone already uses that email address."
	case err != nil:
		s.serverError(w, r, err)
		return
	}
	if len(v.Errors) > 0 {
		s.render(w, r, http.StatusUnprocessableEntity, templates.AdminNewUserPage(v))
		return
	}
	s.Log.InfoContext(r.Context(), "user added", "user", u.ID, "role", u.Role, "by", c.User.ID)
	if u.Role == store.RolePatient {
		s.renderAdminUser(w, r, c, u, http.StatusCreated, "Patient added. Patients join visits by the links in their invitations; they need no password.", "", nil)
		return
	}
	secret, err := s.passwordLink(r, c, u)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.renderAdminUser(w, r, c, u, http.StatusCreated, "User added.", "", secret)
}

// passwordLink makes u's password link, to be shown once.
func (s *server) passwordLink(r *http.Request, c caller, u store.User) (*templates.AdminSecret, error) {
	token, expires, err := s.accounts().PasswordLink(r.Context(), audit.User(c.User, r), u.ID)
	if err != nil {
		return nil, err
	}
	return &templates.AdminSecret{Label: "Password link", Value: s.baseURL(r) + "/account/password/" + token,
		Expires: formatWhen(expires, viewerZone(c.User)),
		Hint:    "Give it to " + u.Name + " in person or by a channel you trust; it works once, and only until then."}, nil
}

// adminUser reads the {id} path value and loads the account; 404 if none.
func (s *server) adminUser(w http.ResponseWriter, r *http.Request) (store.User, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		http.Error(w, "no such user", http.StatusNotFound)
		return store.User{}, false
	}
	u, err := s.Store.UserByID(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "no such user", http.StatusNotFound)
		return u, false
	}
	if err != nil {
		s.serverError(w, r, err)
		return u, false
	}
	return u, true
}

func (s *server) handleAdminUser(w http.ResponseWriter, r *http.Request, c caller) {
	u, ok := s.adminUser(w, r)
	if !ok {
		return
	}
	s.renderAdminUser(w, r, c, u, http.StatusOK, "", "", nil)
}

// renderAdminUser shows an account with the outcome of the last action;
// a secret is shown this once, so the page is never cached. Showing it is
// recorded as a read of the account.
func (s *server) renderAdminUser(w http.ResponseWriter, r *http.Request, c caller, u store.User, status int, flash, problem string, secret *templates.AdminSecret) {
	if fresh, err := s.Store.UserByID(r.Context(), u.ID); err == nil {
		u = fresh
	}
	creds, err := s.accounts().Credentials(r.Context(), u.ID)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	loc := viewerZone(c.User)
	now := s.Now()
	v := templates.AdminUserView{Page: page(u.Name, c), User: adminRow(u), Zone: u.TimeZone, Created: formatWhen(u.CreatedAt, loc),
		Self: u.ID == c.User.ID, Patient: u.Role == store.RolePatient, HasPassword: u.PasswordHash != "",
		Flash: flash, Error: problem, Secret: secret}
	var browser int64 // the newest browser's device, which the browser streams as
	for _, cr := range creds {
		if cr.Kind == store.CredentialDevice && cr.Browser {
			browser = max(browser, cr.ID)
		}
	}
	for _, cr := range creds {
		row := templates.AdminCredentialRow{ID: cr.ID, Kind: "API token", Name: cr.Name, Created: formatWhen(cr.CreatedAt, loc), Expires: "never"}
		if cr.Kind == store.CredentialDevice {
			row.Kind = "Device"
		}
		if !cr.ExpiresAt.IsZero() {
			row.Expires = formatWhen(cr.ExpiresAt, loc)
		}
		switch {
		case !cr.RevokedAt.IsZero():
			row.Status = "revoked " + formatWhen(cr.RevokedAt, loc)
			row.AllowBrowser = cr.Kind == store.CredentialDevice && cr.Browser && cr.ID == browser
		case !cr.ExpiresAt.IsZero() && !now.Before(cr.ExpiresAt):
			row.Status = "expired"
		default:
			row.Status, row.Live = "live", true
		}
		v.Credentials = append(v.Credentials, row)
	}
	var patient int64
	if u.Role == store.RolePatient {
		patient = u.ID
	}
	s.audited(r, c, audit.ActionRead, patient, audit.Ref("User", u.ID))
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, status, templates.AdminUserPage(v))
}

// adminProblem maps the account errors an admin can cause to a status
// and a sentence; ok is false for anything else (a server error).
func adminProblem(err error) (status int, msg string, ok bool) {
	var bad account.Invalid
	switch {
	case errors.As(err, &bad):
		parts := make([]string, 0, len(bad))
		for _, m := range bad {
			parts = append(parts, m)
		}
		return http.StatusUnprocessableEntity, strings.Join(parts, " "), true
	case errors.Is(err, account.ErrSelf):
		return http.StatusConflict, "You cannot deactivate your own account; ask another admin.", true
	case errors.Is(err, account.ErrInactive):
		return http.StatusConflict, "This account is deactivated: reactivate it first.", true
	case errors.Is(err, account.ErrNotPatient):
		return http.StatusUnprocessableEntity, "Devices are added for patients only.", true
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "No such token for this account.", true
	}
	return 0, "", false
}

// adminAction runs one change to the account in the URL and shows the
// account again with its outcome.
func (s *server) adminAction(do func(r *http.Request, c caller, u store.User) (flash string, secret *templates.AdminSecret, err error)) func(http.ResponseWriter, *http.Request, caller) {
	return func(w http.ResponseWriter, r *http.Request, c caller) {
		if !s.readForm(w, r) {
			return
		}
		u, ok := s.adminUser(w, r)
		if !ok {
			return
		}
		flash, secret, err := do(r, c, u)
		if err != nil {
			status, msg, known := adminProblem(err)
			if !known {
				s.serverError(w, r, err)
				return
			}
			s.renderAdminUser(w, r, c, u, status, "", msg, nil)
			return
		}
		s.Log.InfoContext(r.Context(), "account changed", "user", u.ID, "action", r.Pattern, "by", c.User.ID)
		s.renderAdminUser(w, r, c, u, http.StatusOK, flash, "", secret)
	}
}

func (s *server) adminDeactivate(r *http.Request, c caller, u store.User) (string, *templates.AdminSecret, error) {
	d, err := s.accounts().Deactivate(r.Context(), audit.User(c.User, r), u.ID)
	if err != nil {
		return "", nil, err
	}
	guests := ""
	if n := len(d.GuestLinks); n > 0 {
		guests = fmt.Sprintf(", and %d guest links they issued withdrawn", n)
	}
	return fmt.Sprintf("Deactivated: %d sessions ended and %d tokens revoked%s; sign-in is refused.", d.Sessions, d.Credentials, guests), nil, nil
}

func (s *server) adminReactivate(r *http.Request, c caller, u store.User) (string, *templates.AdminSecret, error) {
	if err := s.accounts().Reactivate(r.Context(), audit.User(c.User, r), u.ID); err != nil {
		return "", nil, err
	}
	return "Reactivated: the account may sign in again. Its earlier sessions and tokens stay ended.", nil, nil
}

func (s *server) adminResetSecondFactor(r *http.Request, c caller, u store.User) (string, *templates.AdminSecret, error) {
	had, n, err := s.accounts().ResetSecondFactor(r.Context(), audit.User(c.User, r), u.ID)
	switch {
	case err != nil:
		return "", nil, err
	case !had:
		return "This account has no two-step sign-in; nothing changed.", nil, nil
	}
	return fmt.Sprintf("Two-step sign-in turned off and %d sessions ended; the person signs in with their password and may set it up again.", n), nil, nil
}

func (s *server) adminPasswordLink(r *http.Request, c caller, u store.User) (string, *templates.AdminSecret, error) {
	if u.Role == store.RolePatient {
		return "", nil, account.Invalid{"role": "Patients join visits by their invitation links; they have no password."}
	}
	if !u.Active() {
		return "", nil, account.ErrInactive
	}
	secret, err := s.passwordLink(r, c, u)
	if err != nil {
		return "", nil, err
	}
	return "Password link made. The current password keeps working until the link is used.", secret, nil
}

// formDays reads a lifetime in whole days from the form field "days".
func formDays(r *http.Request) (time.Duration, error) {
	days, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("days")))
	if err != nil || days <= 0 || time.Duration(days)*24*time.Hour > account.MaxTTL {
		return 0, account.Invalid{"days": fmt.Sprintf("Enter how many days it is valid: 1 to %d.", account.MaxTTL/(24*time.Hour))}
	}
	return time.Duration(days) * 24 * time.Hour, nil
}

func (s *server) adminIssueToken(r *http.Request, c caller, u store.User) (string, *templates.AdminSecret, error) {
	ttl, err := formDays(r)
	if err != nil {
		return "", nil, err
	}
	token, cred, err := s.accounts().IssueAPIToken(r.Context(), audit.User(c.User, r), u.ID, ttl)
	if err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("API token %d issued.", cred.ID), &templates.AdminSecret{Label: "API token", Value: token,
		Expires: formatWhen(cred.ExpiresAt, viewerZone(c.User)), Hint: "Send it as Authorization: Bearer; it acts as " + u.Name + "."}, nil
}

func (s *server) adminAddDevice(r *http.Request, c caller, u store.User) (string, *templates.AdminSecret, error) {
	ttl, err := formDays(r)
	if err != nil {
		return "", nil, err
	}
	token, cred, err := s.accounts().AddDevice(r.Context(), audit.User(c.User, r), u.ID, r.PostFormValue("name"), ttl)
	if err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("Device %d added.", cred.ID), &templates.AdminSecret{Label: "Device token", Value: token,
		Expires: formatWhen(cred.ExpiresAt, viewerZone(c.User)), Hint: "Enter it in the device or hub; it posts readings for " + u.Name + " only."}, nil
}

// adminRevoke revokes one of the account's tokens; a token of anyone else
// is "no such token", whatever its number.
func (s *server) adminRevoke(r *http.Request, c caller, u store.User) (string, *templates.AdminSecret, error) {
	id, err := strconv.ParseInt(r.PathValue("cred"), 10, 64)
	if err != nil || id <= 0 {
		return "", nil, store.ErrNotFound
	}
	if err := s.accounts().Revoke(r.Context(), audit.User(c.User, r), u.ID, id); err != nil {
		return "", nil, err
	}
	cred, _ := s.Store.CredentialByID(r.Context(), store.CredentialDevice, id)
	cred.ID = id
	return s.revokedFlash(cred), nil, nil
}

// recheckEvery is how often open sockets re-check their credential.
func (s *server) recheckEvery() time.Duration {
	if s.Recheck > 0 {
		return s.Recheck
	}
	return defaultRecheck
}
