package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

// Run runs the whole contract against stores made by open, which must return
// a fresh, empty store for each call and close it when t ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	for _, c := range []struct {
		name string
		test func(*testing.T, store.Store)
	}{
		{"Ping", testPing},
		{"Users", testUsers},
		{"Sessions", testSessions},
		{"Throttle", testThrottle},
		{"Credentials", testCredentials},
		{"OneLiveBrowserDevice", testOneLiveBrowserDevice},
		{"Availability", testAvailability},
		{"BookingRefusesOverlaps", testOverlaps},
		{"CancelFreesTime", testCancel},
		{"AppointmentsBetween", testAppointmentsBetween},
		{"ConcurrentBookingOfOneSlot", testConcurrentSameSlot},
		{"ConcurrentOverlappingBookings", testConcurrentOverlapping},
		{"Reschedule", testReschedule},
		{"AppointmentZone", testAppointmentZone},
		{"History", testHistory},
		{"SearchUsers", testSearchUsers},
		{"SearchAppointments", testSearchAppointments},
		{"Outbox", testOutbox},
		{"Observations", testObservations},
		{"ObservationsOfUnknownDevice", testUnknownDevice},
		{"ConcurrentDevices", testConcurrentDevices},
		{"DeviceEvents", testDeviceEvents},
		{"RelayedDevices", testRelayedDevices},
		{"RelayedDevicesBounded", testRelayedDevicesBounded},
		{"NEWS2Records", testNEWS2Records},
		{"SearchObservations", testSearchObservations},
		{"VisitNotes", testVisitNotes},
		{"SampleObservations", testSampleObservations},
		{"Audit", testAudit},
		{"TOTP", testTOTP},
		{"Deactivation", testDeactivation},
		{"DeactivationRevokesGuestLinks", testDeactivationRevokesGuestLinks},
		{"GuestLinks", testGuestLinks},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, open(t)) })
	}
}

// sameInstant reports whether a store returned b for a: the same instant to
// the millisecond (an adapter may keep more), and in UTC.
func sameInstant(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() && b.IsZero()
	}
	return b.Location() == time.UTC && a.Sub(b).Abs() < time.Millisecond
}

// odd is an instant with sub-millisecond digits in a zone that is not UTC,
// to show that stores keep the instant and return it in UTC.
func odd(t *testing.T) time.Time {
	loc, err := time.LoadLocation("Australia/Adelaide")
	if err != nil {
		t.Fatal(err)
	}
	return time.Date(2031, 2, 3, 4, 5, 6, 789_654_321, loc)
}

func user(t *testing.T, st store.Store, email string, role store.Role) store.User {
	t.Helper()
	u, err := st.CreateUser(context.Background(), store.User{Email: email, Name: "N " + email, Role: role, TimeZone: "Europe/London"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}

func testPing(t *testing.T, st store.Store) {
	if err := st.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func testUsers(t *testing.T, st store.Store) {
	ctx := context.Background()
	created := odd(t)
	in := store.User{Email: "zed@example.org", Name: "Zed", Role: store.RolePhysician, TimeZone: "America/New_York", PasswordHash: "h0", CreatedAt: created}
	u, err := st.CreateUser(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if u.ID == 0 || !sameInstant(created, u.CreatedAt) {
		t.Fatalf("CreateUser returned %+v", u)
	}
	b := user(t, st, "b@example.org", store.RolePatient)
	a := user(t, st, "a@example.org", store.RolePatient)
	_, err = st.CreateUser(ctx, store.User{Email: "zed@example.org", Name: "dup", Role: store.RolePatient})
	wantErr(t, "duplicate email", err, store.ErrConflict)

	got, err := st.UserByEmail(ctx, "zed@example.org")
	if err != nil || got.ID != u.ID || got.Name != "Zed" || got.Role != store.RolePhysician ||
		got.TimeZone != "America/New_York" || got.PasswordHash != "h0" || !sameInstant(created, got.CreatedAt) {
		t.Fatalf("UserByEmail = %+v, %v", got, err)
	}
	if got, err := st.UserByID(ctx, b.ID); err != nil || got.Email != "b@example.org" {
		t.Fatalf("UserByID = %+v, %v", got, err)
	}
	_, err = st.UserByID(ctx, 9999)
	wantErr(t, "missing user by ID", err, store.ErrNotFound)
	_, err = st.UserByEmail(ctx, "nobody@example.org")
	wantErr(t, "missing user by email", err, store.ErrNotFound)

	if err := st.SetPassword(ctx, u.ID, "h1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.UserByID(ctx, u.ID); got.PasswordHash != "h1" {
		t.Fatalf("password hash %q not stored", got.PasswordHash)
	}
	wantErr(t, "password of a missing user", st.SetPassword(ctx, 9999, "x"), store.ErrNotFound)

	patients, err := st.ListUsers(ctx, store.RolePatient)
	if err != nil || len(patients) != 2 || patients[0].ID != a.ID || patients[1].ID != b.ID {
		t.Fatalf("ListUsers(patient) = %+v, %v; want a then b, by name", patients, err)
	}
	if all, _ := st.ListUsers(ctx, ""); len(all) != 3 {
		t.Fatalf("ListUsers(\"\") = %d users, want 3", len(all))
	}
	if none, err := st.ListUsers(ctx, store.RoleAdmin); err != nil || len(none) != 0 {
		t.Fatalf("ListUsers(admin) = %+v, %v", none, err)
	}
}

func testSessions(t *testing.T, st store.Store) {
	ctx := context.Background()
	u := user(t, st, "p@example.org", store.RolePatient)
	now := odd(t)
	se := store.Session{TokenHash: []byte("h1"), UserID: u.ID, AppointmentID: 7, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := st.CreateSession(ctx, se); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "duplicate session", st.CreateSession(ctx, se), store.ErrConflict)
	wantErr(t, "session of a missing user", st.CreateSession(ctx, store.Session{TokenHash: []byte("h2"), UserID: 9999, CreatedAt: now, ExpiresAt: now}), store.ErrNotFound)

	got, err := st.SessionByHash(ctx, []byte("h1"))
	if err != nil || string(got.TokenHash) != "h1" || got.UserID != u.ID || got.AppointmentID != 7 ||
		!sameInstant(se.CreatedAt, got.CreatedAt) || !sameInstant(se.ExpiresAt, got.ExpiresAt) || !sameInstant(se.CreatedAt, got.LastSeenAt) {
		t.Fatalf("SessionByHash = %+v, %v; want LastSeenAt = CreatedAt until touched", got, err)
	}
	if err := st.TouchSession(ctx, []byte("h1"), now.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.SessionByHash(ctx, []byte("h1")); !sameInstant(now.Add(10*time.Minute), got.LastSeenAt) {
		t.Fatalf("after TouchSession, LastSeenAt = %v", got.LastSeenAt)
	}
	wantErr(t, "touching a missing session", st.TouchSession(ctx, []byte("nope"), now), store.ErrNotFound)
	if err := st.DeleteSession(ctx, []byte("h1")); err != nil {
		t.Fatal(err)
	}
	_, err = st.SessionByHash(ctx, []byte("h1"))
	wantErr(t, "deleted session", err, store.ErrNotFound)
	if err := st.DeleteSession(ctx, []byte("h1")); err != nil {
		t.Fatalf("deleting a missing session: %v", err)
	}

	// Sign out everywhere ends that user's sessions and nobody else's.
	other := user(t, st, "q@example.org", store.RolePatient)
	for i, owner := range []int64{u.ID, u.ID, u.ID, other.ID} {
		if err := st.CreateSession(ctx, store.Session{TokenHash: []byte{byte(i)}, UserID: owner, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := st.DeleteUserSessions(ctx, u.ID); err != nil || n != 3 {
		t.Fatalf("DeleteUserSessions = %d, %v; want 3", n, err)
	}
	if _, err := st.SessionByHash(ctx, []byte{3}); err != nil {
		t.Errorf("another user's session went too: %v", err)
	}
}

func testThrottle(t *testing.T, st store.Store) {
	ctx := context.Background()
	t0 := odd(t)
	for i := range 3 {
		n, err := st.RecordLoginFailure(ctx, "account:a@example.org", t0.Add(time.Duration(i)*time.Minute), t0)
		if err != nil || n != i+1 {
			t.Fatalf("failure %d: count %d, %v", i+1, n, err)
		}
	}
	if n, _ := st.RecordLoginFailure(ctx, "addr:192.0.2.1", t0, t0); n != 1 {
		t.Errorf("another key counts %d, want 1", n)
	}
	// Only failures since the window's start count.
	if n, err := st.LoginFailures(ctx, "account:a@example.org", t0.Add(time.Minute)); err != nil || n != 2 {
		t.Errorf("LoginFailures since t0+1m = %d, %v; want 2", n, err)
	}
	if n, _ := st.RecordLoginFailure(ctx, "account:a@example.org", t0.Add(10*time.Minute), t0.Add(5*time.Minute)); n != 1 {
		t.Errorf("a failure after a quiet window counts %d, want 1", n)
	}
	if err := st.ClearLoginFailures(ctx, "account:a@example.org"); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.LoginFailures(ctx, "account:a@example.org", t0); n != 0 {
		t.Errorf("after clearing: %d", n)
	}
	if n, _ := st.LoginFailures(ctx, "addr:192.0.2.1", t0); n != 1 {
		t.Errorf("clearing one key cleared another: %d", n)
	}
}

func testCredentials(t *testing.T, st store.Store) {
	ctx := context.Background()
	u := user(t, st, "p@example.org", store.RolePatient)
	other := user(t, st, "q@example.org", store.RolePatient)
	now := odd(t)
	in := store.Credential{Kind: store.CredentialJoin, TokenHash: []byte("j1"), UserID: u.ID, AppointmentID: 42, Name: "visit", CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
	j, err := st.CreateCredential(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if j.ID == 0 || !sameInstant(in.ExpiresAt, j.ExpiresAt) || !j.RevokedAt.IsZero() {
		t.Fatalf("CreateCredential returned %+v", j)
	}
	_, err = st.CreateCredential(ctx, store.Credential{Kind: store.CredentialAPI, TokenHash: []byte("j1"), UserID: u.ID, CreatedAt: now})
	wantErr(t, "duplicate token hash", err, store.ErrConflict)
	_, err = st.CreateCredential(ctx, store.Credential{Kind: store.CredentialAPI, TokenHash: []byte("x"), UserID: 9999, CreatedAt: now})
	wantErr(t, "credential of a missing user", err, store.ErrNotFound)

	got, err := st.CredentialByHash(ctx, store.CredentialJoin, []byte("j1"))
	if err != nil || got.ID != j.ID || got.UserID != u.ID || got.AppointmentID != 42 || got.Name != "visit" ||
		!sameInstant(in.CreatedAt, got.CreatedAt) || !sameInstant(in.ExpiresAt, got.ExpiresAt) || !got.RevokedAt.IsZero() || got.LastSeq != 0 {
		t.Fatalf("CredentialByHash = %+v, %v", got, err)
	}
	_, err = st.CredentialByHash(ctx, store.CredentialAPI, []byte("j1"))
	wantErr(t, "credential under the wrong kind", err, store.ErrNotFound)

	d1, err := st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte("d1"), UserID: u.ID, Name: "Oximeter", CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte("d2"), UserID: u.ID, Name: "Cuff", CreatedAt: now})
	st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte("d3"), UserID: other.ID, Name: "Scale", CreatedAt: now})
	list, err := st.ListCredentials(ctx, store.CredentialDevice, u.ID)
	if err != nil || len(list) != 2 || list[0].ID != d1.ID || list[1].ID != d2.ID {
		t.Fatalf("ListCredentials = %+v, %v; want d1 then d2", list, err)
	}
	if list[0].Browser || list[1].Browser {
		t.Fatalf("devices made without the browser mark read back with it: %+v", list)
	}

	// The device a patient's browser streams as is marked, whatever its
	// name, and only a device may be.
	b, err := st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte("b1"), UserID: other.ID, Name: "Scale", CreatedAt: now, Browser: true})
	if err != nil || !b.Browser {
		t.Fatalf("CreateCredential of a browser's device = %+v, %v", b, err)
	}
	if got, err := st.CredentialByID(ctx, store.CredentialDevice, b.ID); err != nil || !got.Browser {
		t.Fatalf("CredentialByID of a browser's device = %+v, %v; want it marked", got, err)
	}
	if others, err := st.ListCredentials(ctx, store.CredentialDevice, other.ID); err != nil || len(others) != 2 || others[0].Browser || !others[1].Browser {
		t.Fatalf("ListCredentials = %+v, %v; want the hub unmarked, then the browser's device marked", others, err)
	}
	if _, err := st.CreateCredential(ctx, store.Credential{Kind: store.CredentialAPI, TokenHash: []byte("b2"), UserID: u.ID, CreatedAt: now, Browser: true}); err == nil {
		t.Fatal("an API token was stored marked as a browser's device")
	}
	if _, err := st.CredentialByHash(ctx, store.CredentialAPI, []byte("b2")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused API token was stored: %v", err)
	}

	revoked := now.Add(time.Minute)
	if err := st.RevokeCredential(ctx, d1.ID, revoked); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeCredential(ctx, d1.ID, revoked.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err = st.CredentialByHash(ctx, store.CredentialDevice, []byte("d1"))
	if err != nil || !sameInstant(revoked, got.RevokedAt) {
		t.Fatalf("revoked credential = %+v, %v; want the first revocation time kept", got, err)
	}
	wantErr(t, "revoking a missing credential", st.RevokeCredential(ctx, 9999, now), store.ErrNotFound)

	// Revoking a join link ends the sessions it opened (its patient's, for
	// its visit), and no other: a staff session and another visit's stay.
	session := func(hash string, userID, visit int64) {
		t.Helper()
		if err := st.CreateSession(ctx, store.Session{TokenHash: []byte(hash), UserID: userID, AppointmentID: visit,
			CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	session("s-visit", u.ID, 42)
	session("s-other-visit", u.ID, 43)
	session("s-other-patient", other.ID, 42)
	if err := st.RevokeCredential(ctx, d2.ID, now); err != nil { // a device's: sessions untouched
		t.Fatal(err)
	}
	if _, err := st.SessionByHash(ctx, []byte("s-visit")); err != nil {
		t.Fatalf("revoking a device token ended a visit session: %v", err)
	}
	if err := st.RevokeCredential(ctx, j.ID, now); err != nil {
		t.Fatal(err)
	}
	_, err = st.SessionByHash(ctx, []byte("s-visit"))
	wantErr(t, "the revoked join link's session", err, store.ErrNotFound)
	for _, h := range []string{"s-other-visit", "s-other-patient"} {
		if _, err := st.SessionByHash(ctx, []byte(h)); err != nil {
			t.Errorf("revoking one join link ended session %s: %v", h, err)
		}
	}
}
