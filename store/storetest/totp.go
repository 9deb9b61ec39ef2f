package storetest

import (
	"bytes"
	"context"
	"testing"

	"github.com/bedside-health/bedside/store"
)

// testTOTP checks a user's sealed second-factor secret: none at first, set
// and read back by ID and by email, replaced, removed with nil, and a
// missing user refused.
func testTOTP(t *testing.T, st store.Store) {
	ctx := context.Background()
	u := user(t, st, "two@example.org", store.RoleScheduler)
	other := user(t, st, "one@example.org", store.RolePhysician)
	read := func(what string, want []byte) {
		t.Helper()
		byID, err := st.UserByID(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		byEmail, err := st.UserByEmail(ctx, u.Email)
		if err != nil {
			t.Fatal(err)
		}
		for how, got := range map[string][]byte{"UserByID": byID.TOTPSecret, "UserByEmail": byEmail.TOTPSecret} {
			if !bytes.Equal(got, want) {
				t.Errorf("%s: %s gives %x, want %x", what, how, got, want)
			}
		}
	}
	read("a new user", nil)

	// Bytes of every value, including zeros, as a sealed secret holds.
	sealed := make([]byte, 0, 256)
	for i := range 256 {
		sealed = append(sealed, byte(i))
	}
	if err := st.SetTOTPSecret(ctx, u.ID, sealed); err != nil {
		t.Fatal(err)
	}
	read("set", sealed)
	if got, err := st.UserByID(ctx, other.ID); err != nil || len(got.TOTPSecret) != 0 {
		t.Errorf("another user's secret: %x, %v; want none", got.TOTPSecret, err)
	}
	if err := st.SetTOTPSecret(ctx, u.ID, []byte("replaced")); err != nil {
		t.Fatal(err)
	}
	read("replaced", []byte("replaced"))
	if err := st.SetTOTPSecret(ctx, u.ID, nil); err != nil {
		t.Fatal(err)
	}
	read("removed", nil)

	wantErr(t, "second factor of a missing user", st.SetTOTPSecret(ctx, 9999, sealed), store.ErrNotFound)

	// Each time step's code works once, and never an earlier step's.
	const step = 59_000_000 // about now: steps are 30 s since 1970
	if err := st.UseTOTPStep(ctx, u.ID, step); err != nil {
		t.Fatalf("first use of a step: %v", err)
	}
	wantErr(t, "the same step again", st.UseTOTPStep(ctx, u.ID, step), store.ErrConflict)
	wantErr(t, "an earlier step", st.UseTOTPStep(ctx, u.ID, step-1), store.ErrConflict)
	if err := st.UseTOTPStep(ctx, other.ID, step); err != nil {
		t.Errorf("another user's use of the same step: %v", err)
	}
	if err := st.UseTOTPStep(ctx, u.ID, step+1); err != nil {
		t.Errorf("the next step: %v", err)
	}
	wantErr(t, "a step of a missing user", st.UseTOTPStep(ctx, 9999, step), store.ErrNotFound)
}
