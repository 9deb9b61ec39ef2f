package auth

import (
	"bytes"
	"errors"
	"testing"
)

func TestPasswordRoundTrip(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPassword(h, "correct horse battery"); err != nil {
		t.Fatalf("right password refused: %v", err)
	}
	if err := CheckPassword(h, "correct horse battery!"); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong password: got %v, want ErrMismatch", err)
	}
	h2, _ := HashPassword("correct horse battery")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
}

func TestPasswordTooShort(t *testing.T) {
	if _, err := HashPassword("short"); err == nil {
		t.Fatal("short password accepted")
	}
}

func TestCheckPasswordRejectsGarbage(t *testing.T) {
	for _, h := range []string{"", "plain", "$argon2id$v=19$m=1,t=1,p=1$!!$!!", "$bcrypt$x$y$z$w"} {
		if err := CheckPassword(h, "whatever-password"); err == nil {
			t.Errorf("hash %q accepted", h)
		}
	}
}

func TestTokens(t *testing.T) {
	a, ha := NewToken()
	b, _ := NewToken()
	if a == b || len(a) < 40 {
		t.Fatalf("tokens not random or too short: %q %q", a, b)
	}
	if !bytes.Equal(ha, HashToken(a)) {
		t.Fatal("hash of token differs from the one returned")
	}
}

func TestDeriveToken(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	a, ha := DeriveToken(key, "join", "7", "1700000000000")
	b, hb := DeriveToken(key, "join", "7", "1700000000000")
	if a != b || string(ha) != string(hb) || string(ha) != string(HashToken(a)) {
		t.Fatalf("the same key and parts gave %q and %q", a, b)
	}
	for name, other := range map[string]string{
		"another key":         first(DeriveToken([]byte("another key, just as long as the first"), "join", "7", "1700000000000")),
		"another part":        first(DeriveToken(key, "join", "8", "1700000000000")),
		"parts joined anyhow": first(DeriveToken(key, "join7", "", "1700000000000")),
	} {
		if other == a {
			t.Errorf("%s gave the same token", name)
		}
	}
	if len(a) != 43 {
		t.Errorf("token %q is %d characters, want 43 (256 bits, unpadded base64url)", a, len(a))
	}
}

func first(s string, _ []byte) string { return s }
