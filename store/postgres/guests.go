package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bedside-health/bedside/store"
)

const guestCols = `id, appointment_id, token_hash, role, name, issued_by, created_at, expires_at, revoked_at`

func scanGuestLink(row pgx.Row) (store.GuestLink, error) {
	var g store.GuestLink
	err := row.Scan(&g.ID, &g.AppointmentID, &g.TokenHash, &g.Role, &g.Name, &g.IssuedBy,
		utc(&g.CreatedAt), utc(&g.ExpiresAt), utc(&g.RevokedAt))
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
// of its appointment are live. The appointment's row, locked until the
// transaction ends, makes concurrent calls for one visit take turns, so
// the count and the insert are one step.
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
	what := fmt.Sprintf("create guest link for appointment %d", g.AppointmentID)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return g, wrap(err, "%s", what)
	}
	defer tx.Rollback(ctx)
	if max > 0 {
		// The count is a statement of its own, after the lock: under read
		// committed it then sees every link committed before the lock.
		var id int64
		if err := tx.QueryRow(ctx, `SELECT id FROM appointments WHERE id = $1 FOR UPDATE`, g.AppointmentID).Scan(&id); err != nil {
			return g, wrap(err, "%s", what)
		}
		var live int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM guest_links WHERE appointment_id = $1 AND revoked_at IS NULL AND expires_at > $2`,
			g.AppointmentID, g.CreatedAt).Scan(&live); err != nil {
			return g, wrap(err, "%s", what)
		}
		if live >= max {
			return g, fmt.Errorf("%s: %d live: %w", what, live, store.ErrLimit)
		}
	}
	err = tx.QueryRow(ctx, `INSERT INTO guest_links (appointment_id, token_hash, role, name, issued_by, created_at, expires_at, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		g.AppointmentID, g.TokenHash, g.Role, g.Name, g.IssuedBy, g.CreatedAt, g.ExpiresAt, null(g.RevokedAt)).Scan(&g.ID)
	if err != nil {
		return g, wrap(err, "%s", what)
	}
	if err := tx.Commit(ctx); err != nil {
		return g, wrap(err, "%s", what)
	}
	return g, nil
}

// GuestLinkByHash implements store.GuestLinks.
func (s *DB) GuestLinkByHash(ctx context.Context, hash []byte) (store.GuestLink, error) {
	g, err := scanGuestLink(s.pool.QueryRow(ctx, `SELECT `+guestCols+` FROM guest_links WHERE token_hash = $1`, hash))
	if err != nil {
		return g, wrap(err, "guest link")
	}
	return g, nil
}

// GuestLinks implements store.GuestLinks.
func (s *DB) GuestLinks(ctx context.Context, appointmentID int64) ([]store.GuestLink, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+guestCols+` FROM guest_links WHERE appointment_id = $1 ORDER BY id`, appointmentID)
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
	what := fmt.Sprintf("revoke guest link %d", id)
	tag, err := s.pool.Exec(ctx, `UPDATE guest_links SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2`, norm(when), id)
	if err != nil {
		return wrap(err, "%s", what)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}
