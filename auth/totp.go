package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// TOTP parameters (RFC 6238 with the defaults every authenticator app
// understands): HMAC-SHA-1, 6 digits, 30-second steps.
const (
	totpDigits = 6
	totpPeriod = 30 // seconds
	// totpSkew is how many steps either side of now a code is accepted,
	// for clocks that differ and people who type slowly.
	totpSkew = 1
)

// totpSecretLen is the length of a new secret: 160 bits, as RFC 4226
// recommends for HMAC-SHA-1.
const totpSecretLen = 20

// b32 is the secret's text form: base32 without padding, as authenticator
// apps expect.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewTOTPSecret returns a fresh random TOTP secret of 20 bytes.
func NewTOTPSecret() []byte {
	b := make([]byte, totpSecretLen)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return b
}

// totpStep is the RFC 6238 time step T of t: whole periods since the Unix
// epoch (negative before it).
func totpStep(t time.Time) int64 {
	s := t.Unix()
	if s < 0 {
		return (s - totpPeriod + 1) / totpPeriod // floor
	}
	return s / totpPeriod
}

// hotp is the RFC 4226 HOTP value of counter with the given number of
// digits, zero-padded.
func hotp(secret []byte, counter uint64, digits int) string {
	m := hmac.New(sha1.New, secret)
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, bin%mod)
}

// TOTPCode returns the 6-digit code for secret at t.
func TOTPCode(secret []byte, t time.Time) string {
	return hotp(secret, uint64(totpStep(t)), totpDigits)
}

// CheckTOTP reports whether code is secret's code for the 30-second step
// of t, the step before or the step after, and which step it matched, so
// the caller can refuse a code already used (RFC 6238 section 5.2). It
// compares in constant time and checks all three steps whatever matches. A
// code that is not exactly six digits never matches; callers strip the
// spaces people type.
func CheckTOTP(secret []byte, code string, t time.Time) (step int64, ok bool) {
	if len(code) != totpDigits || len(secret) == 0 {
		return 0, false
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	now := totpStep(t)
	matched := 0
	for s := now - totpSkew; s <= now+totpSkew; s++ {
		eq := subtle.ConstantTimeCompare([]byte(hotp(secret, uint64(s), totpDigits)), []byte(code))
		step = int64(subtle.ConstantTimeSelect(eq, int(s), int(step)))
		matched |= eq
	}
	return step, matched == 1
}

// TOTPSecretText is secret in base32, as people type it into an
// authenticator app: groups of four characters separated by spaces.
func TOTPSecretText(secret []byte) string {
	s := b32.EncodeToString(secret)
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}

// TOTPURI is the otpauth:// URI (the "Key Uri Format" of authenticator
// apps) that sets secret up for account at issuer:
// otpauth://totp/Issuer:account?secret=BASE32&issuer=Issuer&algorithm=SHA1&digits=6&period=30.
func TOTPURI(secret []byte, issuer, account string) string {
	// Spaces as %20, not '+', which some apps show literally; ':' and '@'
	// escaped so the label's one literal ':' separates issuer and account.
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	return fmt.Sprintf("otpauth://totp/%s:%s?secret=%s&issuer=%s&algorithm=SHA1&digits=%d&period=%d",
		esc(issuer), esc(account), b32.EncodeToString(secret), esc(issuer), totpDigits, totpPeriod)
}

// ErrSealed reports a sealed value that does not open: damaged, changed,
// or sealed under another key.
var ErrSealed = errors.New("sealed value is damaged or was sealed with another key")

// sealKey derives the AES-256 key that seals second-factor secrets from
// the server's key, so the server key itself never encrypts anything.
func sealKey(serverKey []byte) ([]byte, error) {
	if len(serverKey) == 0 {
		return nil, errors.New("no server key to seal with")
	}
	m := hmac.New(sha256.New, serverKey)
	m.Write([]byte("bedside totp seal v1"))
	return m.Sum(nil), nil
}

func sealAEAD(serverKey []byte) (cipher.AEAD, error) {
	k, err := sealKey(serverKey)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("seal cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// Seal encrypts and authenticates plaintext with AES-256-GCM under a key
// derived from the server key serverKey. The result is a random 12-byte
// nonce followed by the ciphertext and tag; Open reverses it.
func Seal(serverKey, plaintext []byte) ([]byte, error) {
	aead, err := sealAEAD(serverKey)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: read nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, plaintext, nil), nil
}

// Open decrypts a value made by Seal with the same server key. A value
// that is damaged, changed or sealed under another key gives ErrSealed.
func Open(serverKey, sealed []byte) ([]byte, error) {
	aead, err := sealAEAD(serverKey)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	n := aead.NonceSize()
	if len(sealed) < n+aead.Overhead() {
		return nil, ErrSealed
	}
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], nil)
	if err != nil {
		return nil, ErrSealed
	}
	return plain, nil
}
