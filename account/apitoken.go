package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bedside-health/bedside/store"
)

// TokenStore is what APIUser reads; store.Store satisfies it.
type TokenStore interface {
	CredentialByHash(ctx context.Context, kind string, hash []byte) (store.Credential, error)
	UserByID(ctx context.Context, id int64) (store.User, error)
}

var _ TokenStore = store.Store(nil)

// TokenRefused is why an API bearer token authenticates no one, said to
// whoever presented it (an HTTP 401).
type TokenRefused string

func (e TokenRefused) Error() string { return string(e) }

// APIUser returns the user behind the API token whose SHA-256 is hash, at
// now: the token must be known, neither revoked nor expired, and its user
// must exist and be active. A refusal is a TokenRefused; any other error is
// the store's. Every surface that takes API tokens (FHIR, WHIP and WHEP,
// and their re-checks) asks here, so none can forget a condition.
func APIUser(ctx context.Context, st TokenStore, hash []byte, now time.Time) (store.User, error) {
	cred, err := st.CredentialByHash(ctx, store.CredentialAPI, hash)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, TokenRefused("the bearer token is not a known API token")
	}
	if err != nil {
		return store.User{}, fmt.Errorf("api token: %w", err)
	}
	switch {
	case !cred.RevokedAt.IsZero():
		return store.User{}, TokenRefused("the bearer token was revoked")
	case !cred.ExpiresAt.IsZero() && !cred.ExpiresAt.After(now):
		return store.User{}, TokenRefused("the bearer token has expired")
	}
	u, err := st.UserByID(ctx, cred.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, TokenRefused("the bearer token's user no longer exists")
	}
	if err != nil {
		return store.User{}, fmt.Errorf("api token: %w", err)
	}
	if !u.Active() {
		return store.User{}, TokenRefused("the bearer token's account is deactivated")
	}
	return u, nil
}
