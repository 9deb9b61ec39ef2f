package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

// testDeactivation checks that deactivating an account marks it, ends its
// sessions and revokes its live credentials in one step, touching no one
// else's; that a second deactivation keeps the first time; and that
// reactivation clears the mark but revives nothing.
func testDeactivation(t *testing.T, st store.Store) {
	ctx := context.Background()
	u := user(t, st, "leaving@example.org", store.RolePatient)
	other := user(t, st, "staying@example.org", store.RolePatient)
	if !u.Active() {
		t.Fatalf("a new user is not active: %+v", u)
	}
	now := time.Now()
	session := func(owner int64, tok string) []byte {
		h := []byte("session " + tok)
		if err := st.CreateSession(ctx, store.Session{TokenHash: h, UserID: owner, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		return h
	}
	cred := func(owner int64, kind, tok string, revoked time.Time) store.Credential {
		c, err := st.CreateCredential(ctx, store.Credential{Kind: kind, TokenHash: []byte("cred " + tok), UserID: owner,
			CreatedAt: now, ExpiresAt: now.Add(time.Hour), RevokedAt: revoked})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	s1, s2 := session(u.ID, "a"), session(u.ID, "b")
	keep := session(other.ID, "c")
	api := cred(u.ID, store.CredentialAPI, "api", time.Time{})
	dev := cred(u.ID, store.CredentialDevice, "dev", time.Time{})
	earlier := odd(t)
	old := cred(u.ID, store.CredentialAPI, "old", earlier)
	otherDev := cred(other.ID, store.CredentialDevice, "otherdev", time.Time{})

	when := odd(t).Add(time.Hour)
	d, err := st.DeactivateUser(ctx, u.ID, when)
	if err != nil {
		t.Fatal(err)
	}
	if d.Sessions != 2 || d.Credentials != 2 {
		t.Errorf("deactivation ended %+v, want 2 sessions and 2 credentials", d)
	}
	got, err := st.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Active() || !sameInstant(when, got.DeactivatedAt) {
		t.Errorf("deactivated user reads back with DeactivatedAt %v, want %v", got.DeactivatedAt, when)
	}
	if byEmail, err := st.UserByEmail(ctx, u.Email); err != nil || byEmail.Active() {
		t.Errorf("by email, the deactivated user is active (%v)", err)
	}
	for _, h := range [][]byte{s1, s2} {
		_, err := st.SessionByHash(ctx, h)
		wantErr(t, "a session of a deactivated user", err, store.ErrNotFound)
	}
	if _, err := st.SessionByHash(ctx, keep); err != nil {
		t.Errorf("another user's session ended: %v", err)
	}
	for _, c := range []store.Credential{api, dev} {
		got, err := st.CredentialByHash(ctx, c.Kind, c.TokenHash)
		if err != nil || !sameInstant(when, got.RevokedAt) {
			t.Errorf("%s credential after deactivation: revoked %v (%v), want %v", c.Kind, got.RevokedAt, err, when)
		}
	}
	if got, err := st.CredentialByHash(ctx, old.Kind, old.TokenHash); err != nil || !sameInstant(earlier, got.RevokedAt) {
		t.Errorf("a credential revoked earlier: revoked %v (%v), want it kept at %v", got.RevokedAt, err, earlier)
	}
	if got, err := st.CredentialByHash(ctx, otherDev.Kind, otherDev.TokenHash); err != nil || !got.RevokedAt.IsZero() {
		t.Errorf("another user's device was revoked: %v (%v)", got.RevokedAt, err)
	}
	if o, err := st.UserByID(ctx, other.ID); err != nil || !o.Active() {
		t.Errorf("another user was deactivated: %+v (%v)", o, err)
	}

	for status, want := range map[string][]int64{store.UserActive: {other.ID}, store.UserDeactivated: {u.ID}, "": {u.ID, other.ID}} {
		page, total, err := st.SearchUsers(ctx, store.UserQuery{Status: status, Role: store.RolePatient})
		var got []int64
		for _, p := range page {
			got = append(got, p.ID)
		}
		if err != nil || total != len(want) || !slices.Equal(got, want) {
			t.Errorf("users of status %q: %v (total %d, %v), want %v", status, got, total, err, want)
		}
	}

	// Again: the first time stays, and what was issued since ends too.
	late := cred(u.ID, store.CredentialAPI, "late", time.Time{})
	d, err = st.DeactivateUser(ctx, u.ID, when.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if d.Credentials != 1 || d.Sessions != 0 {
		t.Errorf("second deactivation ended %+v, want just the one new credential", d)
	}
	if got, _ := st.UserByID(ctx, u.ID); !sameInstant(when, got.DeactivatedAt) {
		t.Errorf("second deactivation moved the time to %v, want %v", got.DeactivatedAt, when)
	}
	if got, _ := st.CredentialByHash(ctx, late.Kind, late.TokenHash); got.RevokedAt.IsZero() {
		t.Error("a credential issued after deactivation survived a second one")
	}

	if err := st.ReactivateUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.UserByID(ctx, u.ID); !got.Active() {
		t.Errorf("reactivated user is not active: %v", got.DeactivatedAt)
	}
	if got, _ := st.CredentialByHash(ctx, api.Kind, api.TokenHash); got.RevokedAt.IsZero() {
		t.Error("reactivation revived a revoked API token")
	}

	_, err = st.DeactivateUser(ctx, 9999, when)
	wantErr(t, "deactivating a missing user", err, store.ErrNotFound)
	wantErr(t, "reactivating a missing user", st.ReactivateUser(ctx, 9999), store.ErrNotFound)
}

// testDeactivationRevokesGuestLinks checks that deactivating a physician
// revokes, in the same step, the live guest links they issued (a guest
// answers to their link's issuer) and names each with its visit's patient
// for the audit trail; links already revoked or expired, and other
// issuers' links, are left alone.
func testDeactivationRevokesGuestLinks(t *testing.T, st store.Store) {
	ctx := context.Background()
	doc := user(t, st, "doc-leaving@example.org", store.RolePhysician)
	other := user(t, st, "doc-staying@example.org", store.RolePhysician)
	p := user(t, st, "guest-patient@example.org", store.RolePatient)
	a, err := booker{st, p.ID}.book(doc.ID, slotAt(9), 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	when := odd(t)
	link := func(issuer int64, tok string, expires, revoked time.Time) store.GuestLink {
		g, err := st.CreateGuestLink(ctx, store.GuestLink{AppointmentID: a.ID, TokenHash: []byte("guest " + tok), Role: store.GuestPhysician,
			Name: "Dr " + tok, IssuedBy: issuer, CreatedAt: when.Add(-time.Hour), ExpiresAt: expires, RevokedAt: revoked})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	live := link(doc.ID, "live", when.Add(3*time.Hour), time.Time{})
	earlier := when.Add(-time.Minute)
	revoked := link(doc.ID, "revoked", when.Add(3*time.Hour), earlier)
	expired := link(doc.ID, "expired", when.Add(-time.Minute), time.Time{})
	others := link(other.ID, "others", when.Add(3*time.Hour), time.Time{})

	d, err := st.DeactivateUser(ctx, doc.ID, when)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.RevokedGuestLink{{ID: live.ID, AppointmentID: a.ID, PatientID: p.ID}}
	if !slices.Equal(d.GuestLinks, want) {
		t.Errorf("deactivation revoked guest links %+v, want %+v", d.GuestLinks, want)
	}
	for _, c := range []struct {
		g    store.GuestLink
		want time.Time
	}{{live, when}, {revoked, earlier}, {expired, time.Time{}}, {others, time.Time{}}} {
		got, err := st.GuestLinkByHash(ctx, c.g.TokenHash)
		if err != nil || !sameInstant(c.want, got.RevokedAt) {
			t.Errorf("guest link %q after deactivation: revoked %v (%v), want %v", c.g.Name, got.RevokedAt, err, c.want)
		}
	}
}
