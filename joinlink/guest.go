package joinlink

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// GuestStore is what guest links are kept in.
type GuestStore interface {
	CreateGuestLinkLimited(ctx context.Context, g store.GuestLink, max int) (store.GuestLink, error)
	GuestLinks(ctx context.Context, appointmentID int64) ([]store.GuestLink, error)
	RevokeGuestLink(ctx context.Context, id int64, at time.Time) error
}

// MaxGuestLinks is how many live guest links one visit may have at once:
// as many as the guests its call holds (signaling.MaxGuests), so every
// invited guest can be in the call at the same time.
const MaxGuestLinks = 4

// MaxGuestName is the longest guest display name, in characters.
const MaxGuestName = 60

// Errors of Guests.Issue that the caller shows as they are.
var (
	ErrGuestName  = errors.New("the guest's name must be 1 to 60 letters, digits, spaces or punctuation")
	ErrGuestRole  = errors.New("the guest's role must be interpreter, family or physician")
	ErrTooMany    = fmt.Errorf("a visit has at most %d live guest links: revoke one first", MaxGuestLinks)
	ErrVisitEnded = errors.New("the visit is over or cancelled")
)

// Guests issues guests' links to a visit's call: like a join link, each is
// derived from the server key and stored only as its hash, so the clinic
// can show it again, and each opens one visit until Grace after its end.
type Guests struct {
	Store GuestStore
	Key   []byte           // the server's secret key, at least 32 bytes
	Now   func() time.Time // nil means time.Now
	Grace time.Duration    // 0 means DefaultGrace
}

func (g Guests) now() time.Time {
	if g.Now == nil {
		return time.Now()
	}
	return g.Now()
}

// token is the guest link of appointment a created at created (to the
// millisecond, as stored).
func (g Guests) token(appointmentID int64, created time.Time) (string, []byte) {
	return auth.DeriveToken(g.Key, "guest", strconv.FormatInt(appointmentID, 10), strconv.FormatInt(created.UnixMilli(), 10))
}

// CleanGuestName trims a display name and checks it.
func CleanGuestName(name string) (string, error) {
	name = strings.Join(strings.Fields(name), " ")
	if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxGuestName {
		return "", ErrGuestName
	}
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsPunct(r) && !unicode.IsMark(r) && r != ' ' {
			return "", ErrGuestName
		}
	}
	return name, nil
}

// Issue stores a new guest link to a's call for a guest of role named name,
// issued by the user by, and returns it with its token for /guest/{token}.
func (g Guests) Issue(ctx context.Context, a scheduling.Appointment, role, name string, by int64) (store.GuestLink, string, error) {
	if len(g.Key) < 32 {
		return store.GuestLink{}, "", errors.New("issue guest link: the server key is shorter than 32 bytes")
	}
	if !store.ValidGuestRole(role) {
		return store.GuestLink{}, "", ErrGuestRole
	}
	name, err := CleanGuestName(name)
	if err != nil {
		return store.GuestLink{}, "", err
	}
	grace := g.Grace
	if grace == 0 {
		grace = DefaultGrace
	}
	now := g.now()
	expires := a.End.Add(grace)
	if !a.Status.Live() || !now.Before(expires) {
		return store.GuestLink{}, "", ErrVisitEnded
	}
	all, err := g.Store.GuestLinks(ctx, a.ID)
	if err != nil {
		return store.GuestLink{}, "", fmt.Errorf("issue guest link: %w", err)
	}
	// Each link of a visit has its own millisecond, which its token is
	// derived from: a link issued within the same millisecond as the
	// latest takes the next one, and a concurrent one that takes it first
	// makes the store refuse this one, which then tries the next.
	// The store counts the live links and inserts in one step, so links
	// issued at once never pass MaxGuestLinks.
	created := now.Truncate(time.Millisecond)
	for _, l := range all {
		if !l.CreatedAt.Before(created) {
			created = l.CreatedAt.Add(time.Millisecond)
		}
	}
	for range 8 {
		token, hash := g.token(a.ID, created)
		l, err := g.Store.CreateGuestLinkLimited(ctx, store.GuestLink{
			AppointmentID: a.ID, TokenHash: hash, Role: role, Name: name, IssuedBy: by, CreatedAt: created, ExpiresAt: expires,
		}, MaxGuestLinks)
		if errors.Is(err, store.ErrLimit) {
			return store.GuestLink{}, "", ErrTooMany
		}
		if errors.Is(err, store.ErrConflict) {
			created = created.Add(time.Millisecond)
			continue
		}
		if err != nil {
			return store.GuestLink{}, "", fmt.Errorf("issue guest link: %w", err)
		}
		return l, token, nil
	}
	return store.GuestLink{}, "", fmt.Errorf("issue guest link: too many links issued at once for visit %d", a.ID)
}

// Live lists a visit's guest links that are neither revoked nor expired,
// oldest first.
func (g Guests) Live(ctx context.Context, appointmentID int64) ([]store.GuestLink, error) {
	all, err := g.Store.GuestLinks(ctx, appointmentID)
	if err != nil {
		return nil, fmt.Errorf("guest links of visit %d: %w", appointmentID, err)
	}
	now := g.now()
	var out []store.GuestLink
	for _, l := range all {
		if l.RevokedAt.IsZero() && now.Before(l.ExpiresAt) {
			out = append(out, l)
		}
	}
	return out, nil
}

// Token writes out the token of a stored link again; it fails if the link
// was made with another server key.
func (g Guests) Token(l store.GuestLink) (string, error) {
	token, hash := g.token(l.AppointmentID, l.CreatedAt)
	if string(hash) != string(l.TokenHash) {
		return "", fmt.Errorf("guest link %d was made with another server key", l.ID)
	}
	return token, nil
}

// ParseToken checks that s has the form of a link token (32 bytes,
// base64url without padding) before anything is looked up by it.
func ParseToken(s string) (string, bool) {
	if len(s) != 43 {
		return "", false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != 32 {
		return "", false
	}
	return s, true
}

// GuestURL is the address of a guest link under a public base URL.
func GuestURL(base, token string) string { return base + "/guest/" + token }
