package web

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/store"
)

// adminFixture is the fixture with an admin who can sign in, and open
// sockets re-checked every few milliseconds.
func adminFixture(t *testing.T) (*fixture, store.User, *http.Client) {
	t.Helper()
	f := newFixtureWith(t, func(d *Deps) {
		d.Recheck = 5 * time.Millisecond
		d.Audit = &audit.Recorder{Store: d.Store, Log: d.Log}
	})
	hash, _ := auth.HashPassword(testPassword)
	a, err := f.st.CreateUser(t.Context(), store.User{Email: "admin@example.org", Name: "Admin", Role: store.RoleAdmin, PasswordHash: hash})
	if err != nil {
		t.Fatal(err)
	}
	return f, a, f.signIn(t, a.Email)
}

// adminPost sends a form as c and returns the status and body.
func adminPost(t *testing.T, c *http.Client, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// shownSecret is the token or link a page shows once.
func shownSecret(t *testing.T, body string) string {
	t.Helper()
	m := regexp.MustCompile(`id="secret"[^>]*value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no secret on the page:\n%s", body)
	}
	return m[1]
}

// TestAdminAddsStaffWithPasswordLink: a new staff account gets a password
// link, never a password; the link sets one that meets the policy, once.
func TestAdminAddsStaffWithPasswordLink(t *testing.T) {
	f, _, adm := adminFixture(t)
	ctx := t.Context()
	status, body := adminPost(t, adm, f.srv.URL+"/admin/users", url.Values{"role": {"wizard"}, "email": {"Someone <x@example.org>"}, "name": {""}, "time_zone": {"Mars/Olympus"}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, `id="email-error"`) || !strings.Contains(body, `id="role-error"`) {
		t.Fatalf("a bad form: %d, want 422 naming the role and email", status)
	}
	if _, total, _ := f.st.SearchUsers(ctx, store.UserQuery{Text: "x@example.org"}); total != 0 {
		t.Fatal("a refused form stored a user")
	}
	resp, err := adm.PostForm(f.srv.URL+"/admin/users", url.Values{"role": {"scheduler"}, "email": {"New.Sched@Example.org"}, "name": {"New Scheduler"}, "time_zone": {"Europe/Paris"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("adding a scheduler: %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	link := shownSecret(t, string(b))
	if !strings.HasPrefix(link, f.srv.URL+"/account/password/") {
		t.Fatalf("the shown secret is not a password link: %q", link)
	}
	u, err := f.st.UserByEmail(ctx, "new.sched@example.org")
	if err != nil || u.PasswordHash != "" || u.TimeZone != "Europe/Paris" {
		t.Fatalf("the stored account: %+v, %v; want no password yet", u, err)
	}
	status, body = adminPost(t, adm, f.srv.URL+"/admin/users", url.Values{"role": {"physician"}, "email": {"new.sched@example.org"}, "name": {"Twice"}, "time_zone": {"UTC"}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, "already uses that email") {
		t.Errorf("an email in use: %d", status)
	}

	anon := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = anon.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "new.sched@example.org") {
		t.Fatalf("opening the link: %d", resp.StatusCode)
	}
	const pw = "tangerine submarine lighthouse"
	if status, _ := adminPost(t, anon, link, url.Values{"password": {pw}, "confirm": {pw + "x"}}); status != http.StatusUnprocessableEntity {
		t.Errorf("passwords that differ: %d, want 422", status)
	}
	if status, body := adminPost(t, anon, link, url.Values{"password": {"password123"}, "confirm": {"password123"}}); status != http.StatusUnprocessableEntity || !strings.Contains(body, "common") {
		t.Errorf("a common password: %d, want 422 saying why", status)
	}
	if status, _ := adminPost(t, anon, link+"x", url.Values{"password": {pw}, "confirm": {pw}}); status != http.StatusGone {
		t.Errorf("an altered link: %d, want 410", status)
	}
	if status, _ := adminPost(t, anon, link, url.Values{"password": {pw}, "confirm": {pw}}); status != http.StatusSeeOther {
		t.Fatalf("setting the password: %d, want 303", status)
	}
	if _, resp := tryLogin(t, f, "new.sched@example.org", pw); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("signing in with the chosen password: %d", resp.StatusCode)
	}
	if status, _ := adminPost(t, anon, link, url.Values{"password": {"another long passphrase"}, "confirm": {"another long passphrase"}}); status != http.StatusGone {
		t.Errorf("the link used twice: %d, want 410", status)
	}
	events, _, _ := f.st.AuditEvents(ctx, store.AuditQuery{ActorID: u.ID, Action: audit.ActionUpdate})
	if len(events) != 1 || events[0].Resource != audit.Ref("User", u.ID)+"/password" {
		t.Errorf("setting the password was recorded as %+v", events)
	}
}

// TestDeactivatedUserLosesAccess: deactivating an account ends its open
// session and its API token and refuses its sign-in, even with the right
// password; a session that slipped past is refused too. Reactivating lets
// it sign in again but revives nothing.
func TestDeactivatedUserLosesAccess(t *testing.T) {
	f, a, adm := adminFixture(t)
	ctx := t.Context()
	sched, _ := f.st.UserByEmail(ctx, "sched@example.org")
	old := f.signIn(t, sched.Email)
	userURL := fmt.Sprintf("%s/admin/users/%d", f.srv.URL, sched.ID)
	status, body := adminPost(t, adm, userURL+"/tokens", url.Values{"days": {"30"}})
	if status != http.StatusOK {
		t.Fatalf("issuing an API token: %d", status)
	}
	token := shownSecret(t, body)
	fhirStatus := func() int {
		req, _ := http.NewRequest("GET", f.srv.URL+"/fhir/Patient", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := fhirStatus(); st != http.StatusOK {
		t.Fatalf("the issued token over FHIR: %d", st)
	}
	pageStatus := func(c *http.Client) int {
		resp, err := c.Get(f.srv.URL + "/schedule")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := pageStatus(old); st != http.StatusOK {
		t.Fatalf("the scheduler's page before: %d", st)
	}

	status, body = adminPost(t, adm, userURL+"/deactivate", nil)
	if status != http.StatusOK || !strings.Contains(body, "1 sessions ended and 1 tokens revoked") {
		t.Fatalf("deactivating: %d\n%s", status, body)
	}
	if st := pageStatus(old); st != http.StatusSeeOther {
		t.Errorf("the old session after deactivation: %d, want a redirect to sign in", st)
	}
	for status, want := range map[string]bool{"deactivated": true, "active": false} {
		resp, err := adm.Get(f.srv.URL + "/admin/users?status=" + status)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		listed, adminListed := strings.Contains(string(b), sched.Email), strings.Contains(string(b), "admin@example.org")
		if listed != want || adminListed == want {
			t.Errorf("the %s users list: lists the scheduler %v (want %v) and the admin %v (want %v)", status, listed, want, adminListed, !want)
		}
	}
	if _, resp := tryLogin(t, f, sched.Email, testPassword); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("signing in when deactivated: %d, want 401", resp.StatusCode)
	}
	if st := fhirStatus(); st != http.StatusUnauthorized {
		t.Errorf("the API token after deactivation: %d, want 401", st)
	}
	// A session stored alongside the deactivation (a sign-in racing it).
	raced, hash := auth.NewToken()
	if err := f.st.CreateSession(ctx, store.Session{TokenHash: hash, UserID: sched.ID, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", f.srv.URL+"/schedule", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: raced})
	if resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a session of a deactivated account: %d, want a redirect to sign in", resp.StatusCode)
	}
	if st, _ := adminPost(t, adm, userURL+"/tokens", url.Values{"days": {"30"}}); st != http.StatusConflict {
		t.Errorf("a token for a deactivated account: %d, want 409", st)
	}

	// An admin cannot lock themselves out.
	if st, _ := adminPost(t, adm, fmt.Sprintf("%s/admin/users/%d/deactivate", f.srv.URL, a.ID), nil); st != http.StatusConflict {
		t.Errorf("an admin deactivating themselves: %d, want 409", st)
	}
	if me, _ := f.st.UserByID(ctx, a.ID); !me.Active() {
		t.Error("the admin deactivated their own account")
	}

	if st, _ := adminPost(t, adm, userURL+"/reactivate", nil); st != http.StatusOK {
		t.Fatalf("reactivating: %d", st)
	}
	if _, resp := tryLogin(t, f, sched.Email, testPassword); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("signing in after reactivation: %d", resp.StatusCode)
	}
	if st := fhirStatus(); st != http.StatusUnauthorized {
		t.Errorf("the old API token after reactivation: %d, want still 401", st)
	}
	events, _, _ := f.st.AuditEvents(ctx, store.AuditQuery{ActorID: a.ID, Action: "deactivate"})
	if len(events) != 1 || events[0].Resource != audit.Ref("User", sched.ID) {
		t.Errorf("deactivation recorded as %+v", events)
	}
}

// TestAdminRevokesDevice: a device added on the admin page streams; the
// token cannot be revoked through another patient's page; revoked through
// its own, the open connection closes and the token no longer connects.
// A deactivated patient's devices stop too.
func TestAdminRevokesDevice(t *testing.T) {
	f, _, adm := adminFixture(t)
	patURL := fmt.Sprintf("%s/admin/users/%d", f.srv.URL, f.pat.ID)
	if st, _ := adminPost(t, adm, fmt.Sprintf("%s/admin/users/%d/devices", f.srv.URL, f.doc.ID), url.Values{"name": {"Cuff"}, "days": {"30"}}); st != http.StatusUnprocessableEntity {
		t.Errorf("a device for a physician: %d, want 422", st)
	}
	if st, _ := adminPost(t, adm, patURL+"/devices", url.Values{"name": {"Cuff"}, "days": {"0"}}); st != http.StatusUnprocessableEntity {
		t.Errorf("a device that never expires: %d, want 422", st)
	}
	status, body := adminPost(t, adm, patURL+"/devices", url.Values{"name": {"Cuff"}, "days": {"30"}})
	if status != http.StatusOK {
		t.Fatalf("adding a device: %d", status)
	}
	token := shownSecret(t, body)
	cred, err := f.st.CredentialByHash(t.Context(), store.CredentialDevice, auth.HashToken(token))
	if err != nil || cred.UserID != f.pat.ID || cred.Name != "Cuff" {
		t.Fatalf("the device's credential: %+v, %v", cred, err)
	}
	resp, err := adm.Get(patURL)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Contains(string(again), token) || !strings.Contains(string(again), "Cuff") {
		t.Errorf("the account page: %d; it must list the device and never show its token again", resp.StatusCode)
	}
	dev := dialDevice(t, f, token)
	if ack := lastAck(t, sendFrame(t, dev, envelope(1, "8867-4", 70, "/min", ""))); ack != 1 {
		t.Fatalf("ack %d", ack)
	}
	// Through another patient's page the token is not found, and lives on.
	if st, _ := adminPost(t, adm, fmt.Sprintf("%s/admin/users/%d/credentials/%d/revoke", f.srv.URL, f.other.ID, cred.ID), nil); st != http.StatusNotFound {
		t.Errorf("revoking the device through another patient: %d, want 404", st)
	}
	if ack := lastAck(t, sendFrame(t, dev, envelope(2, "8867-4", 71, "/min", ""))); ack != 2 {
		t.Fatalf("ack %d after the refused revocation", ack)
	}
	if st, _ := adminPost(t, adm, fmt.Sprintf("%s/credentials/%d/revoke", patURL, cred.ID), nil); st != http.StatusOK {
		t.Fatalf("revoking the device: %d", st)
	}
	awaitCloseCode(t, dev, websocket.ClosePolicyViolation, "revoked")
	_, resp, err = websocket.DefaultDialer.Dial(f.wsURL("/ws/device"), http.Header{"Authorization": {"Bearer " + token}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("reconnecting with the revoked token: %v, want 401", err)
	}

	// Deactivating the patient stops the fixture's own device too.
	live := dialDevice(t, f, f.devToken)
	if st, _ := adminPost(t, adm, patURL+"/deactivate", nil); st != http.StatusOK {
		t.Fatalf("deactivating the patient: %d", st)
	}
	awaitCloseCode(t, live, websocket.ClosePolicyViolation)
	_, resp, err = websocket.DefaultDialer.Dial(f.wsURL("/ws/device"), http.Header{"Authorization": {"Bearer " + f.devToken}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a deactivated patient's device connecting: %v, want 401", err)
	}
}

// TestAdminPagesGuessedIdentifiers walks identifiers through the admin
// URLs as every signed-in non-admin: none reaches an account, and none
// changes one.
func TestAdminPagesGuessedIdentifiers(t *testing.T) {
	f, _, _ := adminFixture(t)
	ctx := t.Context()
	for _, who := range []string{"pat@example.org", "doc@example.org", "sched@example.org"} {
		c := f.signIn(t, who)
		for id := int64(1); id <= 10; id++ {
			for _, p := range []string{"", "/deactivate", "/tokens", "/credentials/1/revoke", "/reset-2fa", "/password-link"} {
				method := "POST"
				if p == "" {
					method = "GET"
				}
				req, _ := http.NewRequest(method, fmt.Sprintf("%s/admin/users/%d%s", f.srv.URL, id, p), strings.NewReader("days=30"))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusSeeOther {
					t.Errorf("%s %s as %s: %d, want refused", method, req.URL.Path, who, resp.StatusCode)
				}
			}
		}
	}
	users, _, _ := f.st.SearchUsers(ctx, store.UserQuery{})
	for _, u := range users {
		if !u.Active() {
			t.Errorf("%s was deactivated by a non-admin", u.Email)
		}
		if creds, _ := f.st.ListCredentials(ctx, store.CredentialAPI, u.ID); len(creds) > 0 {
			t.Errorf("a non-admin issued a token for %s", u.Email)
		}
	}
	if c, err := f.st.CredentialByHash(ctx, store.CredentialDevice, auth.HashToken(f.devToken)); err != nil || !c.RevokedAt.IsZero() {
		t.Errorf("a non-admin revoked a device: %v", err)
	}
}
