package turnserver

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCredentials(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := Credentials{Secret: []byte("shared secret"), TTL: time.Hour}
	user, pass, err := c.Mint("v42-u7", now)
	if err != nil {
		t.Fatal(err)
	}
	if user != "1800003600:v42-u7" {
		t.Fatalf("username %q, want expiry 1800003600 and the user", user)
	}
	// The password of the TURN REST scheme and coturn's use-auth-secret:
	// base64(HMAC-SHA1(secret, username)), computed independently.
	if want := "axUmAqtXqboJhhyFN8ZoF928Els="; pass != want {
		t.Fatalf("password %q, want %q", pass, want)
	}
	exp := time.Unix(1_800_003_600, 0)
	other := Credentials{Secret: []byte("another secret")}
	for _, tc := range []struct {
		name       string
		c          Credentials
		user, pass string
		at         time.Time
		want       error
	}{
		{"fresh", c, user, pass, now, nil},
		{"a second before expiry", c, user, pass, exp.Add(-time.Second), nil},
		{"within the expiry second", c, user, pass, exp.Add(-time.Nanosecond), nil},
		{"at expiry", c, user, pass, exp, ErrExpired},
		{"after expiry", c, user, pass, exp.Add(time.Second), ErrExpired},
		{"wrong password", c, user, pass[:len(pass)-2] + "A=", now, ErrWrongPassword},
		{"empty password", c, user, "", now, ErrWrongPassword},
		{"another secret", other, user, pass, now, ErrWrongPassword},
		{"expiry moved later", c, "1800007200:v42-u7", pass, now, ErrWrongPassword},
		{"user changed", c, "1800003600:v42-u8", pass, now, ErrWrongPassword},
		{"no expiry", c, "v42-u7", pass, now, ErrMalformed},
		{"expiry not a number", c, "soon:v42-u7", pass, now, ErrMalformed},
		{"negative expiry", c, "-5:v42-u7", pass, now, ErrMalformed},
		{"empty user", c, "1800003600:", pass, now, ErrMalformed},
		{"user with a colon", c, "1800003600:a:b", c.Password("1800003600:a:b"), now, ErrMalformed},
		{"empty", c, "", "", now, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.c.Check(tc.user, tc.pass, tc.at); !errors.Is(err, tc.want) {
				t.Fatalf("Check(%q) at %d = %v, want %v", tc.user, tc.at.Unix(), err, tc.want)
			}
		})
	}
}

func TestMintRefusesOddUsers(t *testing.T) {
	c := Credentials{Secret: []byte("s")}
	for _, u := range []string{"", "a:b", "a b", "é", strings.Repeat("a", maxUser+1)} {
		if _, _, err := c.Mint(u, time.Now()); err == nil {
			t.Errorf("Mint(%q) accepted", u)
		}
	}
	if u, _, err := c.Mint(strings.Repeat("a", maxUser), time.Unix(0, 0)); err != nil || !strings.HasPrefix(u, "14400:") {
		t.Fatalf("default TTL: %q, %v; want 4 hours", u, err)
	}
}

func TestDeriveSecret(t *testing.T) {
	a, b := DeriveSecret([]byte("key one, at least thirty-two bytes")), DeriveSecret([]byte("key two, at least thirty-two bytes"))
	if a == b || len(a) != 64 || a != DeriveSecret([]byte("key one, at least thirty-two bytes")) {
		t.Fatalf("derived secrets %q and %q: want 64 hex digits, stable per key, distinct across keys", a, b)
	}
	if strings.Contains(a, "key") {
		t.Fatal("the derived secret shows the key")
	}
}

// FuzzCheck: any username and password a TURN client sends is judged
// without panicking, and only a minted pair passes.
func FuzzCheck(f *testing.F) {
	c := Credentials{Secret: []byte("fuzz secret")}
	now := time.Unix(1_800_000_000, 0)
	user, pass, _ := c.Mint("v1-u2", now)
	f.Add(user, pass)
	f.Add("1800003600:v1-u2", "")
	f.Add(":", "x")
	f.Add("99999999999999999999:a", "x")
	f.Fuzz(func(t *testing.T, username, password string) {
		err := c.Check(username, password, now)
		if err == nil && password != c.Password(username) {
			t.Fatalf("Check(%q, %q) passed with a password that is not the username's", username, password)
		}
		if err == nil {
			if verr := c.Valid(username, now); verr != nil {
				t.Fatalf("Check passed but Valid(%q) = %v", username, verr)
			}
		}
	})
}
