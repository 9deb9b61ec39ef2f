package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/bedside-health/bedside/store"
)

const guestCols = `id, appointment_id, token_hash, role, name, issued_by, created_at, expires_at, revoked_at`

func scanGuestLink(row scanner) (store.GuestLink, error) {
	var g store.GuestLink
	var created, expires, revoked int64
	err := row.Scan(&g.ID, &g.AppointmentID, &g.TokenHash, &g.Role, &g.Name, &g.IssuedBy, &created, &expires, &revoked)
	g.CreatedAt, g.ExpiresAt, g.RevokedAt = at(created), at(expires), at(revoked)
	return g, err
}

// CreateGuestLink implements store.GuestLinks.
func (s *DB) CreateGuestLink(ctx context.Context, g store.GuestLink) (store.GuestLink, error) {
	return s.createGuestLink(ctx, g, 0)
}

// CreateGuestLinkLimited implements store.GuestLinks.
func (s *DB) CreateGuestLinkLimited(ctx context.Context, g store.GuestLink, max int) (store.GuestLink, error) {
	if max <= 0 {
		return g, fmt.Errorf("create guest link: a limit of %d", max)
	}
	return s.createGuestLink(ctx, g, max)
}

// createGuestLink stores g, if max > 0 only while fewer than max links
// of its appointment are live; the write transaction (BEGIN IMMEDIATE)
// makes the count and the insert one step.
func (s *DB) createGuestLink(ctx context.Context, g store.GuestLink, max int) (store.GuestLink, error) {
	if !store.ValidGuestRole(g.Role) {
		return g, fmt.Errorf("create guest link: unknown role %q", g.Role)
	}
	if g.Name == "" || g.ExpiresAt.IsZero() {
		return g, fmt.Errorf("create guest link: a name and an expiry are required")
	}
	if g.CreatedAt.IsZero() {
		g.CreatedAt = time.Now()
	}
	g.CreatedAt, g.ExpiresAt, g.RevokedAt = norm(g.CreatedAt), norm(g.ExpiresAt), norm(g.RevokedAt)
	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE: see dsn
	if err != nil {
		return g, wrap(err, "create guest link for appointment %d", g.AppointmentID)
	}
	defer tx.Rollback()
	if max > 0 {
		var live int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM guest_links WHERE appointment_id = ? AND revoked_at = 0 AND expires_at > ?`,
			g.AppointmentID, ms(g.CreatedAt)).Scan(&live); err != nil {
			return g, wrap(err, "count guest links of appointment %d", g.AppointmentID)
		}
		if live >= max {
			return g, fmt.Errorf("create guest link for appointment %d: %d live: %w", g.AppointmentID, live, store.ErrLimit)
		}
	}
	err = tx.QueryRowContext(ctx, `INSERT INTO guest_links (appointment_id, token_hash, role, name, issued_by, created_at, expires_at, revoked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		g.AppointmentID, g.TokenHash, g.Role, g.Name, g.IssuedBy, ms(g.CreatedAt), ms(g.ExpiresAt), ms(g.RevokedAt)).Scan(&g.ID)
	if err != nil {
		return g, wrap(err, "create guest link for appointment %d", g.AppointmentID)
	}
	if err := tx.Commit(); err != nil {
		return g, wrap(err, "create guest link for appointment %d", g.AppointmentID)
	}
	return g, nil
}

// GuestLinkByHash implements store.GuestLinks.
func (s *DB) GuestLinkByHash(ctx context.Context, hash []byte) (store.GuestLink, error) {
	g, err := scanGuestLink(s.r.QueryRowContext(ctx, `SELECT `+guestCols+` FROM guest_links WHERE token_hash = ?`, hash))
	if err != nil {
		return g, wrap(err, "guest link")
	}
	return g, nil
}

// GuestLinks implements store.GuestLinks.
func (s *DB) GuestLinks(ctx context.Context, appointmentID int64) ([]store.GuestLink, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+guestCols+` FROM guest_links WHERE appointment_id = ? ORDER BY id`, appointmentID)
	out, err := collect(rows, err, scanGuestLink)
	if err != nil {
		return nil, wrap(err, "guest links of appointment %d", appointmentID)
	}
	return out, nil
}

// RevokeGuestLink implements store.GuestLinks.
func (s *DB) RevokeGuestLink(ctx context.Context, id int64, when time.Time) error {
	if when.IsZero() {
		when = time.Now()
	}
	res, err := s.w.ExecContext(ctx, `UPDATE guest_links SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END WHERE id = ?`, ms(norm(when)), id)
	return changedOne(fmt.Sprintf("revoke guest link %d", id), res, err)
}
