package sqlite

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
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return d, wrap(err, "%s", what)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE users SET deactivated_at = CASE WHEN deactivated_at = 0 THEN ? ELSE deactivated_at END WHERE id = ?`, ms(when), userID)
	if err := changedOne(what, res, err); err != nil {
		return d, err
	}
	res, err = tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
	if err != nil {
		return d, wrap(err, "%s: end sessions", what)
	}
	n, _ := res.RowsAffected()
	d.Sessions = int(n)
	res, err = tx.ExecContext(ctx, `UPDATE credentials SET revoked_at = ? WHERE user_id = ? AND revoked_at = 0`, ms(when), userID)
	if err != nil {
		return d, wrap(err, "%s: revoke credentials", what)
	}
	n, _ = res.RowsAffected()
	d.Credentials = int(n)
	rows, err := tx.QueryContext(ctx, `UPDATE guest_links SET revoked_at = ? WHERE issued_by = ? AND revoked_at = 0 AND expires_at > ?
		RETURNING id, appointment_id, (SELECT patient_id FROM appointments WHERE appointments.id = guest_links.appointment_id)`, ms(when), userID, ms(when))
	if err != nil {
		return d, wrap(err, "%s: revoke guest links", what)
	}
	defer rows.Close()
	for rows.Next() {
		var g store.RevokedGuestLink
		if err := rows.Scan(&g.ID, &g.AppointmentID, &g.PatientID); err != nil {
			return d, wrap(err, "%s: revoke guest links", what)
		}
		d.GuestLinks = append(d.GuestLinks, g)
	}
	if err := rows.Err(); err != nil {
		return d, wrap(err, "%s: revoke guest links", what)
	}
	rows.Close()
	if err := tx.Commit(); err != nil {
		return store.Deactivation{}, wrap(err, "%s", what)
	}
	return d, nil
}

// ReactivateUser lets a deactivated user sign in again.
func (s *DB) ReactivateUser(ctx context.Context, userID int64) error {
	return s.execOne(ctx, fmt.Sprintf("reactivate user %d", userID), `UPDATE users SET deactivated_at = 0 WHERE id = ?`, userID)
}
