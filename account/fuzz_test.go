package account_test

import (
	"context"
	"testing"
	"time"

	"github.com/bedside-health/bedside/account"
)

// FuzzPasswordLink feeds LinkUser arbitrary tokens: it never panics, and
// the only token it accepts is the one issued (with the same clock, key
// and account, any process issues the same one).
func FuzzPasswordLink(f *testing.F) {
	m, _ := newManager(f)
	// A fixed clock, so that every fuzzing process issues the same link.
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	m.Now = func() time.Time { return now }
	ctx := context.Background()
	u, err := m.AddUser(ctx, admin, account.NewUser{Role: "scheduler", Email: "fuzz@example.org", Name: "Fuzz"}, "")
	if err != nil {
		f.Fatal(err)
	}
	issued, _, err := m.PasswordLink(ctx, admin, u.ID)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(issued)
	f.Fuzz(func(t *testing.T, token string) {
		got, err := m.LinkUser(ctx, token)
		if err == nil && (token != issued || got.ID != u.ID) {
			t.Fatalf("LinkUser accepted %q for user %d; only %q was issued", token, got.ID, issued)
		}
		if token == issued && err != nil {
			t.Fatalf("the issued link was refused: %v", err)
		}
	})
}
