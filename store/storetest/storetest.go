// Package storetest is the contract every store.Store implementation must
// meet; each adapter's tests call Run with a function opening a fresh store.
package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// Run runs the whole contract against stores made by open.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Users", func(t *testing.T) { testUsers(t, open(t)) })
	t.Run("SessionsAndCredentials", func(t *testing.T) { testSessionsAndCredentials(t, open(t)) })
	t.Run("Availability", func(t *testing.T) { testAvailability(t, open(t)) })
	t.Run("BookingRefusesOverlaps", func(t *testing.T) { testOverlaps(t, open(t)) })
	t.Run("ConcurrentBookingOfOneSlot", func(t *testing.T) { testConcurrentBooking(t, open(t)) })
	t.Run("Observations", func(t *testing.T) { testObservations(t, open(t)) })
}

func user(t *testing.T, st store.Store, email string, role store.Role) store.User {
	t.Helper()
	u, err := st.CreateUser(context.Background(), store.User{Email: email, Name: "N " + email, Role: role, TimeZone: "Europe/London"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func testUsers(t *testing.T, st store.Store) {
	ctx := context.Background()
	u := user(t, st, "a@example.org", store.RolePhysician)
	user(t, st, "b@example.org", store.RolePatient)
	if _, err := st.CreateUser(ctx, store.User{Email: "a@example.org", Name: "dup", Role: store.RolePatient}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate email: %v, want ErrConflict", err)
	}
	got, err := st.UserByEmail(ctx, "a@example.org")
	if err != nil || got.ID != u.ID || got.Role != store.RolePhysician || got.TimeZone != "Europe/London" {
		t.Fatalf("UserByEmail = %+v, %v", got, err)
	}
	if _, err := st.UserByID(ctx, 9999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing user: %v, want ErrNotFound", err)
	}
	if err := st.SetPassword(ctx, u.ID, "hash"); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.UserByID(ctx, u.ID); got.PasswordHash != "hash" {
		t.Fatalf("password hash %q not stored", got.PasswordHash)
	}
	phys, _ := st.ListUsers(ctx, store.RolePhysician)
	all, _ := st.ListUsers(ctx, "")
	if len(phys) != 1 || len(all) != 2 {
		t.Fatalf("ListUsers: %d physicians, %d in all; want 1 and 2", len(phys), len(all))
	}
}

func testSessionsAndCredentials(t *testing.T, st store.Store) {
	ctx := context.Background()
	u := user(t, st, "p@example.org", store.RolePatient)
	now := time.Now().UTC().Truncate(time.Millisecond)
	se := store.Session{TokenHash: []byte("h1"), UserID: u.ID, AppointmentID: 7, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := st.CreateSession(ctx, se); err != nil {
		t.Fatal(err)
	}
	got, err := st.SessionByHash(ctx, []byte("h1"))
	if err != nil || got.UserID != u.ID || got.AppointmentID != 7 || !got.ExpiresAt.Equal(se.ExpiresAt) {
		t.Fatalf("SessionByHash = %+v, %v", got, err)
	}
	if err := st.DeleteSession(ctx, []byte("h1")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SessionByHash(ctx, []byte("h1")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted session: %v", err)
	}
	c, err := st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte("d1"), UserID: u.ID, Name: "Oximeter", CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CredentialByHash(ctx, store.CredentialAPI, []byte("d1")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("credential found under the wrong kind: %v", err)
	}
	if err := st.RevokeCredential(ctx, c.ID, now); err != nil {
		t.Fatal(err)
	}
	got2, err := st.CredentialByHash(ctx, store.CredentialDevice, []byte("d1"))
	if err != nil || !got2.RevokedAt.Equal(now) || got2.Name != "Oximeter" {
		t.Fatalf("revoked credential = %+v, %v", got2, err)
	}
	list, _ := st.ListCredentials(ctx, store.CredentialDevice, u.ID)
	if len(list) != 1 {
		t.Fatalf("ListCredentials: %d, want 1", len(list))
	}
}

func testAvailability(t *testing.T, st store.Store) {
	ctx := context.Background()
	d := user(t, st, "d@example.org", store.RolePhysician)
	if _, err := st.Availability(ctx, d.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no hours yet: %v, want ErrNotFound", err)
	}
	hours := []scheduling.WeeklyHours{{Weekday: time.Monday, Start: 540, End: 720}, {Weekday: time.Friday, Start: 780, End: 1020}}
	if err := st.SetWeeklyHours(ctx, d.ID, hours, 20*time.Minute); err != nil {
		t.Fatal(err)
	}
	a, err := st.Availability(ctx, d.ID)
	if err != nil || a.Zone.String() != "Europe/London" || a.SlotLength != 20*time.Minute || len(a.Weekly) != 2 || a.Weekly[1] != hours[1] {
		t.Fatalf("Availability = %+v, %v", a, err)
	}
}

func slotAt(h int) time.Time { return time.Date(2030, 1, 7, h, 0, 0, 0, time.UTC) }

func testOverlaps(t *testing.T, st store.Store) {
	ctx := context.Background()
	d := user(t, st, "d@example.org", store.RolePhysician)
	d2 := user(t, st, "d2@example.org", store.RolePhysician)
	p := user(t, st, "p@example.org", store.RolePatient)
	book := func(doc int64, start time.Time, dur time.Duration) (scheduling.Appointment, error) {
		return st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: doc, PatientID: p.ID, Start: start, End: start.Add(dur), Status: scheduling.StatusBooked})
	}
	first, err := book(d.ID, slotAt(10), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		start time.Time
		dur   time.Duration
	}{
		{"same start", slotAt(10), 30 * time.Minute},
		{"starts inside", slotAt(10).Add(45 * time.Minute), time.Hour},
		{"ends inside", slotAt(9).Add(30 * time.Minute), time.Hour},
		{"encloses", slotAt(9), 3 * time.Hour},
	} {
		if _, err := book(d.ID, c.start, c.dur); !errors.Is(err, scheduling.ErrSlotTaken) {
			t.Errorf("%s: %v, want ErrSlotTaken", c.name, err)
		}
	}
	if _, err := book(d.ID, slotAt(11), 30*time.Minute); err != nil {
		t.Errorf("back-to-back booking refused: %v", err)
	}
	if _, err := book(d2.ID, slotAt(10), time.Hour); err != nil {
		t.Errorf("another physician at the same time refused: %v", err)
	}
	got, err := st.AppointmentByID(ctx, first.ID)
	if err != nil || !got.Start.Equal(slotAt(10)) || !got.End.Equal(slotAt(11)) || got.Status != scheduling.StatusBooked {
		t.Fatalf("AppointmentByID = %+v, %v", got, err)
	}
	// Cancelling frees the time; reviving it then clashes.
	if err := st.SetAppointmentStatus(ctx, first.ID, scheduling.StatusCancelled); err != nil {
		t.Fatal(err)
	}
	second, err := book(d.ID, slotAt(10), 30*time.Minute)
	if err != nil {
		t.Fatalf("booking a cancelled time: %v", err)
	}
	if err := st.SetAppointmentStatus(ctx, first.ID, scheduling.StatusBooked); !errors.Is(err, scheduling.ErrSlotTaken) {
		t.Fatalf("reviving into a taken time: %v, want ErrSlotTaken", err)
	}
	list, _ := st.AppointmentsBetween(ctx, d.ID, 0, slotAt(0), slotAt(23))
	if len(list) != 2 || list[0].ID != second.ID {
		t.Fatalf("AppointmentsBetween: %+v", list)
	}
}

func testConcurrentBooking(t *testing.T, st store.Store) {
	ctx := context.Background()
	d := user(t, st, "d@example.org", store.RolePhysician)
	p := user(t, st, "p@example.org", store.RolePatient)
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// Every other attempt uses a longer, overlapping duration.
			dur := 30 * time.Minute
			if i%2 == 1 {
				dur = 45 * time.Minute
			}
			s := slotAt(14).Add(time.Duration(i%3) * 10 * time.Minute)
			_, errs[i] = st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: d.ID, PatientID: p.ID, Start: s, End: s.Add(dur), Status: scheduling.StatusBooked})
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, scheduling.ErrSlotTaken):
			t.Errorf("attempt %d: %v, want ErrSlotTaken", i, err)
		}
	}
	list, _ := st.AppointmentsBetween(ctx, d.ID, 0, slotAt(0), slotAt(23))
	if ok != 1 || len(list) != 1 {
		t.Fatalf("%d bookings succeeded and %d are stored; want exactly 1 of each", ok, len(list))
	}
}

func testObservations(t *testing.T, st store.Store) {
	ctx := context.Background()
	p := user(t, st, "p@example.org", store.RolePatient)
	dev, err := st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte("dev"), UserID: p.ID, CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	obs := func(seq int64, code string, v float64) store.Observation {
		return store.Observation{PatientID: p.ID, DeviceID: dev.ID, Seq: seq, Code: code, Value: v, Unit: "/min", EffectiveAt: t0.Add(time.Duration(seq) * time.Second), ReceivedAt: t0}
	}
	if err := st.AppendObservations(ctx, dev.ID, 2, []store.Observation{obs(1, "8867-4", 70), obs(2, "8480-6", 120), obs(2, "8462-4", 80)}); err != nil {
		t.Fatal(err)
	}
	// A resend of seq 2 with seq 3 stores only seq 3; a lower lastSeq never moves it back.
	if err := st.AppendObservations(ctx, dev.ID, 3, []store.Observation{obs(2, "8480-6", 120), obs(3, "8867-4", 71)}); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendObservations(ctx, dev.ID, 1, nil); err != nil {
		t.Fatal(err)
	}
	got, err := st.ObservationsBetween(ctx, p.ID, t0, t0.Add(time.Minute))
	if err != nil || len(got) != 4 {
		t.Fatalf("stored %d observations (%v), want 4", len(got), err)
	}
	if got[3].Value != 71 || !got[3].EffectiveAt.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("last observation %+v", got[3])
	}
	c, _ := st.CredentialByHash(ctx, store.CredentialDevice, []byte("dev"))
	if c.LastSeq != 3 {
		t.Fatalf("device last seq %d, want 3", c.LastSeq)
	}
}
