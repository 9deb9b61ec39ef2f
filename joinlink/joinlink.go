package joinlink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// Store is what join links are kept in.
type Store interface {
	CreateCredential(ctx context.Context, c store.Credential) (store.Credential, error)
	JoinCredentials(ctx context.Context, appointmentID int64) ([]store.Credential, error)
	RevokeCredential(ctx context.Context, id int64, at time.Time) error
}

// DefaultGrace is how long after its visit's end a join link still opens.
const DefaultGrace = 2 * time.Hour

// Links issues and recovers join links.
type Links struct {
	Store Store
	Key   []byte           // the server's secret key, at least 32 bytes
	Now   func() time.Time // nil means time.Now
	Grace time.Duration    // 0 means DefaultGrace
}

// ErrNone reports that a visit has no live join link.
var ErrNone = errors.New("no live join link")

// token is the join link of the credential of appointment a created at
// created (to the millisecond, as stored).
func (l Links) token(appointmentID int64, created time.Time) (string, []byte) {
	return auth.DeriveToken(l.Key, "join", strconv.FormatInt(appointmentID, 10), strconv.FormatInt(created.UnixMilli(), 10))
}

func (l Links) now() time.Time {
	if l.Now == nil {
		return time.Now()
	}
	return l.Now()
}

// Issue revokes a's earlier join links and issues a new one, which opens
// a until Grace after its end. It returns the token to put in /join/{token}.
func (l Links) Issue(ctx context.Context, a scheduling.Appointment) (string, error) {
	if len(l.Key) < 32 {
		return "", fmt.Errorf("issue join link: the server key is shorter than 32 bytes")
	}
	now := l.now()
	old, err := l.Store.JoinCredentials(ctx, a.ID)
	if err != nil {
		return "", fmt.Errorf("issue join link: %w", err)
	}
	for _, c := range old {
		if c.RevokedAt.IsZero() {
			if err := l.Store.RevokeCredential(ctx, c.ID, now); err != nil {
				return "", fmt.Errorf("issue join link: revoke the old one: %w", err)
			}
		}
	}
	grace := l.Grace
	if grace == 0 {
		grace = DefaultGrace
	}
	// Two links issued for one visit within a millisecond would share a
	// token; the store refuses the second and the next millisecond is used.
	created := now.Truncate(time.Millisecond)
	for range 8 {
		token, hash := l.token(a.ID, created)
		_, err := l.Store.CreateCredential(ctx, store.Credential{
			Kind: store.CredentialJoin, TokenHash: hash, UserID: a.PatientID, AppointmentID: a.ID,
			Name: "join link", CreatedAt: created, ExpiresAt: a.End.Add(grace),
		})
		if errors.Is(err, store.ErrConflict) {
			created = created.Add(time.Millisecond)
			continue
		}
		if err != nil {
			return "", fmt.Errorf("issue join link: %w", err)
		}
		return token, nil
	}
	return "", fmt.Errorf("issue join link: too many links issued at once for visit %d", a.ID)
}

// Current returns the token of a's live join link (not revoked, not
// expired), or ErrNone.
func (l Links) Current(ctx context.Context, a scheduling.Appointment) (string, error) {
	list, err := l.Store.JoinCredentials(ctx, a.ID)
	if err != nil {
		return "", fmt.Errorf("join link of visit %d: %w", a.ID, err)
	}
	now := l.now()
	for i := len(list) - 1; i >= 0; i-- {
		c := list[i]
		if c.UserID != a.PatientID || !c.RevokedAt.IsZero() || (!c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt)) {
			continue
		}
		token, hash := l.token(a.ID, c.CreatedAt)
		if string(hash) != string(c.TokenHash) {
			return "", fmt.Errorf("join link of visit %d was made with another server key", a.ID)
		}
		return token, nil
	}
	return "", fmt.Errorf("visit %d: %w", a.ID, ErrNone)
}

// URL is the address of a join link under a public base URL.
func URL(base, token string) string { return base + "/join/" + token }
