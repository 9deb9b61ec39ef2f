package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/bedside-health/bedside/store"
)

// SetTOTPSecret sets (nil: removes) a user's sealed second-factor secret.
func (s *DB) SetTOTPSecret(ctx context.Context, userID int64, sealed []byte) error {
	return s.execOne(ctx, fmt.Sprintf("set second factor of user %d", userID), `UPDATE users SET totp_secret = $1 WHERE id = $2`, sealed, userID)
}

// UseTOTPStep records that a code of the user's second-factor time step
// was accepted. A step at or before the last one recorded gives
// store.ErrConflict, so each code works once; a missing user gives
// store.ErrNotFound.
func (s *DB) UseTOTPStep(ctx context.Context, userID, step int64) error {
	what := fmt.Sprintf("use second-factor step of user %d", userID)
	err := s.execOne(ctx, what, `UPDATE users SET totp_step = $1 WHERE id = $2 AND totp_step < $1`, step, userID)
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if _, err := s.UserByID(ctx, userID); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: step %d already used: %w", what, step, store.ErrConflict)
}
