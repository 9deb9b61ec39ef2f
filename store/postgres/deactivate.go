package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/bedside-health/bedside/store"
)

// DeactivateUser marks a user deactivated and, in the same transaction,
// ends their sessions and revokes their live credentials and the live
// guest links they issued.
func (s *DB) DeactivateUser(ctx context.Context, userID int64, when time.Time) (store.Deactivation, error) {
	var d store.Deactivation
	if when.IsZero() {
		when = time.Now()
	}
	what := fmt.Sprintf("deactivate user %d", userID)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return d, wrap(err, "%s", what)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `UPDATE users SET deactivated_at = coalesce(deactivated_at, $1) WHERE id = $2`, norm(when), userID)
	if err != nil {
		return d, wrap(err, "%s", what)
	}
	if tag.RowsAffected() == 0 {
		return d, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	tag, err = tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, userID)
	if err != nil {
		return d, wrap(err, "%s: end sessions", what)
	}
	d.Sessions = int(tag.RowsAffected())
	tag, err = tx.Exec(ctx, `UPDATE credentials SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL`, norm(when), userID)
	if err != nil {
		return d, wrap(err, "%s: revoke credentials", what)
	}
	d.Credentials = int(tag.RowsAffected())
	rows, err := tx.Query(ctx, `UPDATE guest_links g SET revoked_at = $1 FROM appointments a
		WHERE a.id = g.appointment_id AND g.issued_by = $2 AND g.revoked_at IS NULL AND g.expires_at > $1
		RETURNING g.id, g.appointment_id, a.patient_id`, norm(when), userID)
	if err != nil {
		return d, wrap(err, "%s: revoke guest links", what)
	}
	for rows.Next() {
		var g store.RevokedGuestLink
		if err := rows.Scan(&g.ID, &g.AppointmentID, &g.PatientID); err != nil {
			rows.Close()
			return d, wrap(err, "%s: revoke guest links", what)
		}
		d.GuestLinks = append(d.GuestLinks, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return d, wrap(err, "%s: revoke guest links", what)
	}
	if err := tx.Commit(ctx); err != nil {
		return store.Deactivation{}, wrap(err, "%s", what)
	}
	return d, nil
}

// ReactivateUser lets a deactivated user sign in again.
func (s *DB) ReactivateUser(ctx context.Context, userID int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE users SET deactivated_at = NULL WHERE id = $1`, userID)
	if err != nil {
		return wrap(err, "reactivate user %d", userID)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("reactivate user %d: %w", userID, store.ErrNotFound)
	}
	return nil
}
