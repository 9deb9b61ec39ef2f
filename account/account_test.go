package account_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/account"
	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/sqlite"
)

func newManager(t testing.TB) (*account.Manager, store.Store) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "bedside.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &account.Manager{Store: st, Audit: &audit.Recorder{Store: st}, Key: []byte(strings.Repeat("k", 32))}, st
}

var admin = audit.Who{ID: 1, Role: "admin", Address: "192.0.2.1"}

// TestCheckRefusesBadInput: each wrong field is named, and nothing is stored.
func TestCheckRefusesBadInput(t *testing.T) {
	m, st := newManager(t)
	for _, c := range []struct {
		in    account.NewUser
		field string
	}{
		{account.NewUser{Role: "root", Email: "a@example.org", Name: "A"}, "role"},
		{account.NewUser{Role: "scheduler", Email: "A <a@example.org>", Name: "A"}, "email"},
		{account.NewUser{Role: "scheduler", Email: "not-an-address", Name: "A"}, "email"},
		{account.NewUser{Role: "scheduler", Email: "a@example.org", Name: "  "}, "name"},
		{account.NewUser{Role: "scheduler", Email: "a@example.org", Name: "A", TimeZone: "Mars/Olympus"}, "time_zone"},
		{account.NewUser{Role: "scheduler", Email: "a@example.org", Name: "A", TimeZone: "posix/Europe/London"}, "time_zone"},
	} {
		_, err := m.AddUser(t.Context(), admin, c.in, "")
		var bad account.Invalid
		if !errors.As(err, &bad) || bad[c.field] == "" {
			t.Errorf("%+v: %v, want the %s field refused", c.in, err, c.field)
		}
	}
	if _, total, _ := st.SearchUsers(t.Context(), store.UserQuery{}); total != 0 {
		t.Errorf("refused input stored %d users", total)
	}
	u, err := m.AddUser(t.Context(), admin, account.NewUser{Role: "physician", Email: " Doc@Example.org ", Name: " Dr Who ", TimeZone: "Europe/London"}, "")
	if err != nil || u.Email != "doc@example.org" || u.Name != "Dr Who" {
		t.Fatalf("good input: %+v, %v", u, err)
	}
	if _, err := st.Availability(t.Context(), u.ID); err != nil {
		t.Errorf("a new physician has no default hours: %v", err)
	}
	_, err = m.AddUser(t.Context(), admin, account.NewUser{Role: "scheduler", Email: "doc@example.org", Name: "Again"}, "")
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("an email in use: %v, want ErrConflict", err)
	}
}

// TestPasswordLinkWorksOnce: the link sets a password that meets the
// policy, ends old sessions, and then no longer works; an expired or
// altered link never does.
func TestPasswordLinkWorksOnce(t *testing.T) {
	m, st := newManager(t)
	ctx := t.Context()
	now := time.Now()
	m.Now = func() time.Time { return now }
	u, err := m.AddUser(ctx, admin, account.NewUser{Role: "scheduler", Email: "new@example.org", Name: "New Person"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateSession(ctx, store.Session{TokenHash: []byte("old"), UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	tok, _, err := m.PasswordLink(ctx, admin, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.SetPasswordByLink(ctx, "192.0.2.9", tok, "short"); !errors.Is(err, auth.ErrWeakPassword) {
		t.Errorf("a weak password: %v, want ErrWeakPassword", err)
	}
	for _, bad := range []string{tok + "x", strings.Replace(tok, ".", "0.", 1), "", "1.2", "..."} {
		if _, err := m.LinkUser(ctx, bad); !errors.Is(err, account.ErrBadLink) {
			t.Errorf("altered link %q: %v, want ErrBadLink", bad, err)
		}
	}
	const pw = "correct horse battery staple"
	if _, err := m.SetPasswordByLink(ctx, "192.0.2.9", tok, pw); err != nil {
		t.Fatal(err)
	}
	got, _ := st.UserByID(ctx, u.ID)
	if auth.CheckPassword(got.PasswordHash, pw) != nil {
		t.Error("the password set by link does not sign in")
	}
	if _, err := st.SessionByHash(ctx, []byte("old")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an old session survived the new password: %v", err)
	}
	if _, err := m.SetPasswordByLink(ctx, "192.0.2.9", tok, "another fine passphrase"); !errors.Is(err, account.ErrBadLink) {
		t.Errorf("the link used a second time: %v, want ErrBadLink", err)
	}
	late, _, err := m.PasswordLink(ctx, admin, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(account.PasswordLinkTTL + time.Second)
	if _, err := m.LinkUser(ctx, late); !errors.Is(err, account.ErrBadLink) {
		t.Errorf("an expired link: %v, want ErrBadLink", err)
	}
}

// TestTokensAndDevices: tokens must expire, devices are for patients, a
// deactivated account gets nothing new, and a revocation through one
// account cannot reach another's credential.
func TestTokensAndDevices(t *testing.T) {
	m, st := newManager(t)
	ctx := t.Context()
	pat, _ := m.AddUser(ctx, admin, account.NewUser{Role: "patient", Email: "p@example.org", Name: "P"}, "")
	other, _ := m.AddUser(ctx, admin, account.NewUser{Role: "patient", Email: "q@example.org", Name: "Q"}, "")
	doc, _ := m.AddUser(ctx, admin, account.NewUser{Role: "physician", Email: "d@example.org", Name: "D"}, "")
	if _, _, err := m.IssueAPIToken(ctx, admin, doc.ID, 0); err == nil {
		t.Error("a token without expiry was issued")
	}
	if _, _, err := m.AddDevice(ctx, admin, doc.ID, "Scale", time.Hour); !errors.Is(err, account.ErrNotPatient) {
		t.Errorf("a device for a physician: %v", err)
	}
	before, _ := m.Credentials(ctx, pat.ID, store.CredentialDevice)
	for _, name := range []string{"Web browser", "  web BROWSER\t", "WEB BROWSER"} {
		_, _, err := m.AddDevice(ctx, admin, pat.ID, name, time.Hour)
		var inv account.Invalid
		if !errors.As(err, &inv) || !strings.Contains(inv["name"], "browser streams as") {
			t.Errorf("a device named %q, the browser's name: %v, want the name refused", name, err)
		}
	}
	if after, _ := m.Credentials(ctx, pat.ID, store.CredentialDevice); len(after) != len(before) {
		t.Errorf("refused names made devices: %d before, %d after", len(before), len(after))
	}
	tok, c, err := m.AddDevice(ctx, admin, pat.ID, "Pulse oximeter", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := st.CredentialByHash(ctx, store.CredentialDevice, auth.HashToken(tok))
	if err != nil || stored.ID != c.ID || stored.UserID != pat.ID {
		t.Fatalf("the device token does not find its credential: %+v %v", stored, err)
	}
	otherTok, oc, _ := m.AddDevice(ctx, admin, other.ID, "Scale", time.Hour)
	if err := m.Revoke(ctx, admin, pat.ID, oc.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoking another patient's device through this one: %v, want ErrNotFound", err)
	}
	if got, _ := st.CredentialByHash(ctx, store.CredentialDevice, auth.HashToken(otherTok)); !got.RevokedAt.IsZero() {
		t.Error("another patient's device was revoked")
	}
	if err := m.Revoke(ctx, admin, pat.ID, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Deactivate(ctx, audit.Who{ID: doc.ID}, doc.ID); !errors.Is(err, account.ErrSelf) {
		t.Errorf("deactivating oneself: %v, want ErrSelf", err)
	}
	if _, err := m.Deactivate(ctx, admin, other.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.CredentialByHash(ctx, store.CredentialDevice, auth.HashToken(otherTok)); got.RevokedAt.IsZero() {
		t.Error("deactivation left a device token live")
	}
	if _, _, err := m.AddDevice(ctx, admin, other.ID, "Scale", time.Hour); !errors.Is(err, account.ErrInactive) {
		t.Errorf("a device for a deactivated patient: %v, want ErrInactive", err)
	}
	if _, _, err := m.IssueAPIToken(ctx, admin, other.ID, time.Hour); !errors.Is(err, account.ErrInactive) {
		t.Errorf("a token for a deactivated account: %v, want ErrInactive", err)
	}
	events, _, _ := st.AuditEvents(ctx, store.AuditQuery{Action: "deactivate"})
	if len(events) != 1 || events[0].Resource != audit.Ref("User", other.ID) || events[0].ActorID != admin.ID || events[0].PatientID != other.ID {
		t.Errorf("deactivation audited as %+v", events)
	}
}
