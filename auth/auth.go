// Package auth holds Bedside's credential primitives: argon2id password
// hashes and random bearer tokens stored only as their SHA-256.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// MinPasswordLength is the shortest password accepted.
const MinPasswordLength = 10

// ErrMismatch reports a password that does not match its hash.
var ErrMismatch = errors.New("password does not match")

// argon2id parameters (RFC 9106's second recommended option, lighter memory).
const (
	argonTime    = 2
	argonMemory  = 64 * 1024 // KiB
	argonThreads = 2
	argonKeyLen  = 32
	saltLen      = 16
)

var b64 = base64.RawStdEncoding

// hashTime and hashMemory are the argon2id cost HashPassword uses.
var hashTime, hashMemory uint32 = argonTime, argonMemory

// UseTestCost makes HashPassword cheap (one pass over 64 KiB) for the rest
// of the process. Only the TestMain of a test binary calls it, before any
// test runs: under the race detector one real hash takes seconds, and
// suites that create accounts and sign in hundreds of times would spend
// their time hashing. Such hashes verify as usual, since CheckPassword
// reads the cost from the hash. The server never calls it.
func UseTestCost() { hashTime, hashMemory = 1, 64 }

// HashPassword returns an argon2id hash in the PHC string format.
func HashPassword(password string) (string, error) {
	if len(password) < MinPasswordLength {
		return "", fmt.Errorf("password must be at least %d characters", MinPasswordLength)
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, hashTime, hashMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, hashMemory, hashTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword compares password with a hash made by HashPassword in
// constant time. It returns ErrMismatch when they differ.
func CheckPassword(hash, password string) error {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return errors.New("unsupported password hash")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return errors.New("unsupported argon2 version")
	}
	var mem, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &t, &p); err != nil {
		return fmt.Errorf("parse argon2 parameters: %w", err)
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return fmt.Errorf("decode salt: %w", err)
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil {
		return fmt.Errorf("decode key: %w", err)
	}
	got := argon2.IDKey([]byte(password), salt, t, mem, p, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrMismatch
	}
	return nil
}

// NewToken returns a fresh random token (256 bits, URL-safe) and its hash,
// the only form in which it is stored.
func NewToken() (token string, hash []byte) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token)
}

// DeriveToken returns a token computed from a secret key and parts (HMAC-
// SHA-256, URL-safe) and its hash. The same key and parts always give the
// same token, so a credential stored only as its hash can be written out
// again (in a reminder, say) by whoever holds the key, and by nobody else.
func DeriveToken(key []byte, parts ...string) (token string, hash []byte) {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		// Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
		fmt.Fprintf(m, "%d:%s;", len(p), p)
	}
	token = base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	return token, HashToken(token)
}

// HashToken returns the SHA-256 of a token, as stored.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// GeneratePassword returns a random password of 16 URL-safe characters.
func GeneratePassword() string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
