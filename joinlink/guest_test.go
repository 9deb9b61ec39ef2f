package joinlink

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/sqlite"
)

func TestGuestLinks(t *testing.T) {
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
	now := start.Add(-time.Hour)
	g := Guests{Store: st, Key: []byte("a server key of thirty-two bytes or more"), Now: func() time.Time { return now }}

	l, token, err := g.Issue(ctx, a, store.GuestInterpreter, "  Ines   Duarte ", d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if l.Name != "Ines Duarte" || l.Role != store.GuestInterpreter || l.IssuedBy != d.ID || !l.ExpiresAt.Equal(a.End.Add(DefaultGrace)) {
		t.Fatalf("issued %+v", l)
	}
	if _, ok := ParseToken(token); !ok {
		t.Fatalf("issued token %q does not parse", token)
	}
	stored, err := st.GuestLinkByHash(ctx, auth.HashToken(token))
	if err != nil || stored.ID != l.ID {
		t.Fatalf("the token's hash finds %+v, %v", stored, err)
	}
	if again, err := g.Token(stored); err != nil || again != token {
		t.Fatalf("Token = %q, %v; want the issued %q", again, err, token)
	}
	other := g
	other.Key = []byte("another server key, also long enough!!")
	if _, err := other.Token(stored); err == nil {
		t.Error("another key wrote the link out")
	}
	// Two in the same millisecond are two links.
	_, second, err := g.Issue(ctx, a, store.GuestFamily, "Sam", d.ID)
	if err != nil || second == token {
		t.Fatalf("second Issue = %q, %v", second, err)
	}

	for _, c := range []struct {
		role, name string
		want       error
	}{
		{"patient", "X", ErrGuestRole},
		{"", "X", ErrGuestRole},
		{store.GuestFamily, "   ", ErrGuestName},
		{store.GuestFamily, strings.Repeat("a", MaxGuestName+1), ErrGuestName},
		{store.GuestFamily, "bad\x00name", ErrGuestName},
		{store.GuestFamily, "<script>", ErrGuestName},
	} {
		if _, _, err := g.Issue(ctx, a, c.role, c.name, d.ID); !errors.Is(err, c.want) {
			t.Errorf("Issue(%q, %q) = %v, want %v", c.role, c.name, err, c.want)
		}
	}
	for range MaxGuestLinks - 2 {
		if _, _, err := g.Issue(ctx, a, store.GuestFamily, "More", d.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := g.Issue(ctx, a, store.GuestFamily, "One too many", d.ID); !errors.Is(err, ErrTooMany) {
		t.Fatalf("link %d: %v, want ErrTooMany", MaxGuestLinks+1, err)
	}
	if err := st.RevokeGuestLink(ctx, l.ID, now); err != nil {
		t.Fatal(err)
	}
	if live, _ := g.Live(ctx, a.ID); len(live) != MaxGuestLinks-1 {
		t.Fatalf("%d live after a revocation, want %d", len(live), MaxGuestLinks-1)
	}
	if _, _, err := g.Issue(ctx, a, store.GuestFamily, "Now there is room", d.ID); err != nil {
		t.Fatal(err)
	}
	now = a.End.Add(DefaultGrace)
	if _, _, err := g.Issue(ctx, a, store.GuestFamily, "Too late", d.ID); !errors.Is(err, ErrVisitEnded) {
		t.Fatalf("after the visit: %v, want ErrVisitEnded", err)
	}
	if live, _ := g.Live(ctx, a.ID); len(live) != 0 {
		t.Fatalf("%d live after expiry", len(live))
	}
}

// FuzzParseToken: no input panics; what parses is 32 bytes of base64url
// and is returned unchanged.
func FuzzParseToken(f *testing.F) {
	tok, _ := auth.DeriveToken([]byte("a server key of thirty-two bytes or more"), "guest", "1", "2")
	for _, s := range []string{tok, "", "short", tok + "=", tok[:42] + "+", tok[:42] + "B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseToken(s)
		if !ok {
			return
		}
		if got != s || len(s) != 43 || strings.ContainsAny(s, "+/=") {
			t.Fatalf("ParseToken(%q) = %q, true", s, got)
		}
	})
}

// FuzzCleanGuestName: what is accepted is trimmed, single-spaced, at most
// MaxGuestName characters of letters, digits, marks, punctuation and
// spaces, and accepted unchanged a second time.
func FuzzCleanGuestName(f *testing.F) {
	for _, s := range []string{"Ines Duarte", "  Sam   Lee ", "José Ñúñez", "O'Brien-Smith, Jr.", "", "<b>", "a\x00b", "\u202eevil", strings.Repeat("é", 61)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := CleanGuestName(s)
		if err != nil {
			if !errors.Is(err, ErrGuestName) {
				t.Fatalf("CleanGuestName(%q): %v", s, err)
			}
			return
		}
		if got == "" || got != strings.TrimSpace(got) || strings.Contains(got, "  ") || utf8.RuneCountInString(got) > MaxGuestName {
			t.Fatalf("CleanGuestName(%q) = %q", s, got)
		}
		for _, r := range got {
			if unicode.IsControl(r) || r == '<' || r == '>' || unicode.Is(unicode.Cf, r) {
				t.Fatalf("CleanGuestName(%q) kept %U", s, r)
			}
		}
		if again, err := CleanGuestName(got); err != nil || again != got {
			t.Fatalf("CleanGuestName(%q) = %q, then %q, %v", s, got, again, err)
		}
	})
}

// TestGuestLinksIssuedAtOnce: links issued at the same moment never pass
// MaxGuestLinks; the rest are told there are too many.
func TestGuestLinksIssuedAtOnce(t *testing.T) {
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
	now := start.Add(-time.Hour)
	g := Guests{Store: st, Key: []byte("a server key of thirty-two bytes or more"), Now: func() time.Time { return now }}
	const tries = 2 * MaxGuestLinks
	errs := make([]error, tries)
	var wg sync.WaitGroup
	for i := range tries {
		wg.Go(func() { _, _, errs[i] = g.Issue(ctx, a, store.GuestFamily, "Guest", d.ID) })
	}
	wg.Wait()
	issued := 0
	for _, err := range errs {
		switch {
		case err == nil:
			issued++
		case !errors.Is(err, ErrTooMany):
			t.Errorf("Issue at once: %v, want nil or ErrTooMany", err)
		}
	}
	if live, _ := g.Live(ctx, a.ID); issued != MaxGuestLinks || len(live) != MaxGuestLinks {
		t.Errorf("%d issued, %d live; want %d", issued, len(live), MaxGuestLinks)
	}
}
