package sqlite

import (
	"context"
	"fmt"
)

// SetTOTPSecret sets (nil: removes) a user's sealed second-factor secret.
func (s *DB) SetTOTPSecret(ctx context.Context, userID int64, sealed []byte) error {
	return s.execOne(ctx, fmt.Sprintf("set second factor of user %d", userID), `UPDATE users SET totp_secret = ? WHERE id = ?`, sealed, userID)
}
