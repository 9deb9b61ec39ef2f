package auth

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestTOTPVectors checks the SHA-1 test vectors of RFC 6238, Appendix B:
// the 8-digit values of the helper, and TOTPCode's six digits, which are
// their last six.
func TestTOTPVectors(t *testing.T) {
	secret := []byte("12345678901234567890")
	for _, c := range []struct {
		unix int64
		want string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	} {
		at := time.Unix(c.unix, 0)
		if got := hotp(secret, uint64(totpStep(at)), 8); got != c.want {
			t.Errorf("8 digits at %d: %s, want %s", c.unix, got, c.want)
		}
		if got := TOTPCode(secret, at); got != c.want[2:] {
			t.Errorf("TOTPCode at %d: %s, want %s", c.unix, got, c.want[2:])
		}
	}
}

func TestCheckTOTPWindow(t *testing.T) {
	secret := NewTOTPSecret()
	now := time.Date(2026, 11, 25, 10, 0, 15, 0, time.UTC) // mid-step
	for _, c := range []struct {
		name   string
		codeAt time.Duration // when the code was made, relative to now
		want   bool
	}{
		{"current step", 0, true},
		{"previous step", -30 * time.Second, true},
		{"next step", 30 * time.Second, true},
		{"two steps ago", -60 * time.Second, false},
		{"two steps ahead", 60 * time.Second, false},
		{"an hour ago", -time.Hour, false},
	} {
		code := TOTPCode(secret, now.Add(c.codeAt))
		step, got := CheckTOTP(secret, code, now)
		if got != c.want {
			t.Errorf("%s (%s): %v, want %v", c.name, code, got, c.want)
		}
		if want := totpStep(now.Add(c.codeAt)); got && step != want {
			t.Errorf("%s: matched step %d, want %d (the step the code was made for)", c.name, step, want)
		}
	}
	code := TOTPCode(secret, now)
	for _, bad := range []string{"", code[:5], code + "0", " " + code[1:], "12345a", "１２３４５６"} {
		if _, ok := CheckTOTP(secret, bad, now); ok {
			t.Errorf("malformed code %q accepted", bad)
		}
	}
	if _, ok := CheckTOTP(NewTOTPSecret(), code, now); ok {
		t.Error("another secret's code accepted") // 3 in a million: a failure here is almost surely a bug
	}
	if _, ok := CheckTOTP(nil, code, now); ok {
		t.Error("code accepted without a secret")
	}
}

func TestNewTOTPSecret(t *testing.T) {
	a, b := NewTOTPSecret(), NewTOTPSecret()
	if len(a) != 20 || bytes.Equal(a, b) {
		t.Fatalf("secrets %x and %x: want 20 random bytes each", a, b)
	}
}

func TestTOTPSecretText(t *testing.T) {
	got := TOTPSecretText([]byte("12345678901234567890"))
	if want := "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"; got != want {
		t.Errorf("TOTPSecretText = %q, want %q", got, want)
	}
}

func TestTOTPURI(t *testing.T) {
	got := TOTPURI([]byte("12345678901234567890"), "Bedside Clinic", "doc@example.org")
	want := "otpauth://totp/Bedside%20Clinic:doc%40example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Bedside%20Clinic&algorithm=SHA1&digits=6&period=30"
	if got != want {
		t.Errorf("TOTPURI =\n %s\nwant\n %s", got, want)
	}
	u, err := url.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || q.Get("issuer") != "Bedside Clinic" || q.Get("digits") != "6" {
		t.Errorf("parsed as %+v, query %v", u, q)
	}
	if label, _ := url.PathUnescape(strings.TrimPrefix(u.EscapedPath(), "/")); label != "Bedside Clinic:doc@example.org" {
		t.Errorf("label %q", label)
	}
}

func TestSealOpen(t *testing.T) {
	key := []byte("a test key of thirty-two bytes, or more")
	secret := NewTOTPSecret()
	sealed, err := Seal(key, secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed value holds the plaintext")
	}
	again, _ := Seal(key, secret)
	if bytes.Equal(sealed, again) {
		t.Fatal("two seals of one value are equal: nonce not random")
	}
	got, err := Open(key, sealed)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %x, %v; want %x", got, err, secret)
	}

	for i := range sealed { // every byte is covered: nonce, ciphertext, tag
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if _, err := Open(key, bad); !errors.Is(err, ErrSealed) {
			t.Fatalf("byte %d changed: %v, want ErrSealed", i, err)
		}
	}
	for name, bad := range map[string][]byte{
		"truncated": sealed[:len(sealed)-1],
		"short":     sealed[:8],
		"empty":     nil,
		"extended":  append(bytes.Clone(sealed), 0),
	} {
		if _, err := Open(key, bad); !errors.Is(err, ErrSealed) {
			t.Errorf("%s: %v, want ErrSealed", name, err)
		}
	}
	if _, err := Open([]byte("another key of thirty-two bytes, or more"), sealed); !errors.Is(err, ErrSealed) {
		t.Errorf("another key: %v, want ErrSealed", err)
	}
	if _, err := Seal(nil, secret); err == nil {
		t.Error("sealed without a key")
	}
}
