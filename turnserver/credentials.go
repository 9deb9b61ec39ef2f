package turnserver

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is what the TURN REST scheme and coturn specify.
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultTTL is how long minted credentials stay valid: as long as a
// join-link session, so a visit never outlives the credentials its
// participants were given when they connected (reconnecting mints anew).
const DefaultTTL = 4 * time.Hour

// maxUser bounds the user part of a username.
const maxUser = 128

// Errors of Check, for errors.Is.
var (
	ErrMalformed     = errors.New("turn username is not <expiry>:<user>")
	ErrExpired       = errors.New("turn credentials have expired")
	ErrWrongPassword = errors.New("turn password does not match")
)

// Credentials mints and checks TURN REST credentials
// (draft-uberti-behave-turn-rest): the username is "<expiry>:<user>", the
// expiry in Unix seconds, and the password is the standard base64 of
// HMAC-SHA1 of the username under the shared Secret.
type Credentials struct {
	Secret []byte
	// TTL is how long minted credentials last; DefaultTTL if zero.
	TTL time.Duration
}

// DeriveSecret turns the server key into the TURN shared secret, so every
// node with the same key mints and accepts the same credentials without
// the key itself ever being used as a TURN secret. It is 64 hex digits.
func DeriveSecret(serverKey []byte) string {
	m := hmac.New(sha256.New, serverKey)
	m.Write([]byte("bedside turn rest secret"))
	return hex.EncodeToString(m.Sum(nil))
}

// Mint returns credentials for user, valid from now for c.TTL. user names
// who is connecting (a visit and participant id, say); it may hold
// letters, digits and . _ - only, at most 128 of them.
func (c Credentials) Mint(user string, now time.Time) (username, password string, err error) {
	if err := checkUser(user); err != nil {
		return "", "", err
	}
	ttl := c.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + user
	return username, c.Password(username), nil
}

// Password is the password that goes with username.
func (c Credentials) Password(username string) string {
	m := hmac.New(sha1.New, c.Secret)
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Valid checks username's form and that it has not expired at now: a
// username is valid strictly before its expiry second.
func (c Credentials) Valid(username string, now time.Time) error {
	ts, user, ok := strings.Cut(username, ":")
	if !ok {
		return ErrMalformed
	}
	exp, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || exp <= 0 {
		return ErrMalformed
	}
	if err := checkUser(user); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if now.Unix() >= exp {
		return ErrExpired
	}
	return nil
}

// Check reports whether username and password are valid at now.
func (c Credentials) Check(username, password string, now time.Time) error {
	if err := c.Valid(username, now); err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(password), []byte(c.Password(username))) != 1 {
		return ErrWrongPassword
	}
	return nil
}

func checkUser(user string) error {
	if user == "" || len(user) > maxUser {
		return fmt.Errorf("turn user %q: want 1 to %d characters", user, maxUser)
	}
	for _, r := range user {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("turn user %q: only letters, digits, '.', '_' and '-'", user)
		}
	}
	return nil
}
