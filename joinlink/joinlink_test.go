package joinlink

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/sqlite"
)

func TestIssueAndRecover(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d, _ := st.CreateUser(ctx, store.User{Email: "d@example.org", Name: "D", Role: store.RolePhysician})
	p, _ := st.CreateUser(ctx, store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient})
	start := time.Date(2030, 1, 7, 10, 0, 0, 0, time.UTC)
	a, err := st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: d.ID, PatientID: p.ID, Start: start, End: start.Add(30 * time.Minute)}, store.Change{})
	if err != nil {
		t.Fatal(err)
	}
	now := start.Add(-48 * time.Hour)
	l := Links{Store: st, Key: []byte("a server key of thirty-two bytes or more"), Now: func() time.Time { return now }}

	if _, err := l.Current(ctx, a); !errors.Is(err, ErrNone) {
		t.Fatalf("Current before any link: %v, want ErrNone", err)
	}
	first, err := l.Issue(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := l.Current(ctx, a); err != nil || got != first {
		t.Fatalf("Current = %q, %v; want the issued %q", got, err, first)
	}
	// Issued twice in the same millisecond: still two different links, the old one revoked.
	second, err := l.Issue(ctx, a)
	if err != nil || second == first {
		t.Fatalf("second Issue = %q, %v; want a new token", second, err)
	}
	c, err := st.CredentialByHash(ctx, store.CredentialJoin, auth.HashToken(first))
	if err != nil || c.RevokedAt.IsZero() {
		t.Fatalf("first link after the second: %+v, %v; want revoked", c, err)
	}
	c, err = st.CredentialByHash(ctx, store.CredentialJoin, auth.HashToken(second))
	if err != nil || !c.ExpiresAt.Equal(a.End.Add(DefaultGrace)) || c.AppointmentID != a.ID || c.UserID != p.ID {
		t.Fatalf("second link = %+v, %v", c, err)
	}
	if got, _ := l.Current(ctx, a); got != second {
		t.Fatalf("Current = %q, want the newest %q", got, second)
	}
	// Another key cannot write the link out, nor pass for it.
	other := l
	other.Key = []byte("another server key, also long enough!!")
	if _, err := other.Current(ctx, a); err == nil || errors.Is(err, ErrNone) {
		t.Errorf("Current with another key: %v, want a key mismatch", err)
	}
	// Rescheduling revokes it in the store; then there is none.
	if _, err := st.RescheduleAppointment(ctx, a.ID, start.Add(time.Hour), start.Add(90*time.Minute), store.Change{At: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Current(ctx, a); !errors.Is(err, ErrNone) {
		t.Errorf("Current after a reschedule: %v, want ErrNone", err)
	}
	// After expiry there is none either.
	third, _ := l.Issue(ctx, a)
	now = a.End.Add(DefaultGrace)
	if tok, err := l.Current(ctx, a); !errors.Is(err, ErrNone) {
		t.Errorf("Current after expiry = %q (issued %q), %v; want ErrNone", tok, third, err)
	}
	if _, err := (Links{Store: st, Key: []byte("short")}).Issue(ctx, a); err == nil {
		t.Error("a short key was accepted")
	}
}
