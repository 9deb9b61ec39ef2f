package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bedside-health/bedside/store"
)

const msgCols = `id, key, appointment_id, kind, to_address, to_name, subject, body, calendar, method,
	created_at, next_attempt_at, attempts, last_error, sent_at, via, failed`

func scanMessage(row pgx.Row) (store.Message, error) {
	var m store.Message
	err := row.Scan(&m.ID, &m.Key, &m.AppointmentID, &m.Kind, &m.To, &m.ToName, &m.Subject, &m.Text, &m.Calendar, &m.Method,
		utc(&m.CreatedAt), utc(&m.NextAttemptAt), &m.Attempts, &m.LastError, utc(&m.SentAt), &m.Via, &m.Failed)
	return m, err
}

// EnqueueMessage stores m (CreatedAt now if zero, first attempt due at
// CreatedAt if NextAttemptAt is zero) unless a message with its Key is
// already stored, in which case it returns that one and created false. The
// insert is ON CONFLICT (key) DO NOTHING, so nodes enqueueing one key at
// once store it once.
func (s *DB) EnqueueMessage(ctx context.Context, m store.Message) (store.Message, bool, error) {
	if m.Key == "" || m.To == "" {
		return m, false, fmt.Errorf("enqueue message: key and recipient are required")
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now()
	}
	if m.NextAttemptAt.IsZero() {
		m.NextAttemptAt = m.CreatedAt
	}
	m.CreatedAt, m.NextAttemptAt = norm(m.CreatedAt), norm(m.NextAttemptAt)
	err := s.pool.QueryRow(ctx, `INSERT INTO outbox (key, appointment_id, kind, to_address, to_name, subject, body, calendar, method, created_at, next_attempt_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (key) DO NOTHING RETURNING id`,
		m.Key, m.AppointmentID, m.Kind, m.To, m.ToName, m.Subject, m.Text, m.Calendar, m.Method, m.CreatedAt, m.NextAttemptAt).Scan(&m.ID)
	if err == nil {
		return m, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) { // no row: the key is taken
		return m, false, wrap(err, "enqueue message %s", m.Key)
	}
	old, err := scanMessage(s.pool.QueryRow(ctx, `SELECT `+msgCols+` FROM outbox WHERE key = $1`, m.Key))
	if err != nil {
		return m, false, wrap(err, "enqueue message %s", m.Key)
	}
	return old, false, nil
}

// ClaimMessages takes up to limit due messages, oldest first, and moves
// their next attempt to now+lease, in one statement; rows another node is
// claiming at that moment are skipped, not waited for.
func (s *DB) ClaimMessages(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.Message, error) {
	limit, _ = page(limit, 0)
	rows, err := s.pool.Query(ctx, `UPDATE outbox SET next_attempt_at = $1 WHERE id IN (
		SELECT id FROM outbox WHERE sent_at IS NULL AND NOT failed AND next_attempt_at <= $2
		ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING `+msgCols, norm(now.Add(lease)), norm(now), limit)
	out, err := collect(rows, err, scanMessage)
	if err != nil {
		return nil, wrap(err, "claim messages")
	}
	// RETURNING gives no order: restore the oldest-first one.
	slices.SortFunc(out, func(a, b store.Message) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// MarkMessageSent records that a message was delivered (at now if when is
// zero), and how.
func (s *DB) MarkMessageSent(ctx context.Context, id int64, when time.Time, via string) error {
	return s.execOne(ctx, fmt.Sprintf("mark message %d sent", id),
		`UPDATE outbox SET sent_at = $1, via = $2, attempts = attempts + 1, last_error = '' WHERE id = $3`, changeTime(when), via, id)
}

// MarkMessageFailed records a failed attempt: the next one at retryAt, or
// none when permanent.
func (s *DB) MarkMessageFailed(ctx context.Context, id int64, reason string, retryAt time.Time, permanent bool) error {
	return s.execOne(ctx, fmt.Sprintf("mark message %d failed", id),
		`UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2, failed = $3 WHERE id = $4`,
		reason, norm(retryAt), permanent, id)
}

// MessageByID finds one message.
func (s *DB) MessageByID(ctx context.Context, id int64) (store.Message, error) {
	m, err := scanMessage(s.pool.QueryRow(ctx, `SELECT `+msgCols+` FROM outbox WHERE id = $1`, id))
	if err != nil {
		return m, wrap(err, "message %d", id)
	}
	return m, nil
}

// ListMessages lists messages newest first; appointmentID 0 means all.
func (s *DB) ListMessages(ctx context.Context, appointmentID int64, limit, offset int) ([]store.Message, error) {
	limit, offset = page(limit, offset)
	var args params
	cond := "true"
	if appointmentID != 0 {
		cond = "appointment_id = " + args.add(appointmentID)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+msgCols+` FROM outbox WHERE `+cond+` ORDER BY id DESC LIMIT `+args.add(limit)+` OFFSET `+args.add(offset), args...)
	out, err := collect(rows, err, scanMessage)
	if err != nil {
		return nil, wrap(err, "list messages")
	}
	return out, nil
}
