package web

import (
	"os"
	"testing"

	"github.com/bedside-health/bedside/auth"
)

// TestMain makes password hashing cheap for this binary's tests: they
// create accounts and sign in hundreds of times, and under the race
// detector each real argon2id hash takes seconds. What a password hash
// protects is tested in package auth at the real cost.
func TestMain(m *testing.M) {
	auth.UseTestCost()
	os.Exit(m.Run())
}
