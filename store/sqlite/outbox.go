package sqlite

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/bedside-health/bedside/store"
)

const msgCols = `id, key, appointment_id, kind, to_address, to_name, subject, body, calendar, method,
	created_at, next_attempt_at, attempts, last_error, sent_at, via, failed`

func scanMessage(row scanner) (store.Message, error) {
	var m store.Message
	var created, next, sent int64
	err := row.Scan(&m.ID, &m.Key, &m.AppointmentID, &m.Kind, &m.To, &m.ToName, &m.Subject, &m.Text, &m.Calendar, &m.Method,
		&created, &next, &m.Attempts, &m.LastError, &sent, &m.Via, &m.Failed)
	m.CreatedAt, m.NextAttemptAt, m.SentAt = at(created), at(next), at(sent)
	return m, err
}

// EnqueueMessage stores m (CreatedAt now if zero, first attempt due at
// CreatedAt if NextAttemptAt is zero) unless a message with its Key is
// already stored, in which case it returns that one and created false.
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
	err := s.w.QueryRowContext(ctx, `INSERT INTO outbox (key, appointment_id, kind, to_address, to_name, subject, body, calendar, method, created_at, next_attempt_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING RETURNING id`,
		m.Key, m.AppointmentID, m.Kind, m.To, m.ToName, m.Subject, m.Text, m.Calendar, m.Method, ms(m.CreatedAt), ms(m.NextAttemptAt)).Scan(&m.ID)
	if err == nil {
		return m, true, nil
	}
	old, err2 := scanMessage(s.w.QueryRowContext(ctx, `SELECT `+msgCols+` FROM outbox WHERE key = ?`, m.Key))
	if err2 != nil {
		return m, false, wrap(err, "enqueue message %s", m.Key)
	}
	return old, false, nil
}

// ClaimMessages takes up to limit due messages, oldest first, and moves
// their next attempt to now+lease, in one statement.
func (s *DB) ClaimMessages(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.Message, error) {
	limit, _ = page(limit, 0)
	rows, err := s.w.QueryContext(ctx, `UPDATE outbox SET next_attempt_at = ? WHERE id IN (
		SELECT id FROM outbox WHERE sent_at = 0 AND failed = 0 AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?)
		RETURNING `+msgCols, ms(now.Add(lease)), ms(now), limit)
	out, err := collect(rows, err, scanMessage)
	if err != nil {
		return nil, wrap(err, "claim messages")
	}
	// RETURNING gives no order: restore the oldest-first one.
	slices.SortFunc(out, func(a, b store.Message) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// MarkMessageSent records that a message was delivered, and how.
func (s *DB) MarkMessageSent(ctx context.Context, id int64, when time.Time, via string) error {
	return s.execOne(ctx, fmt.Sprintf("mark message %d sent", id),
		`UPDATE outbox SET sent_at = ?, via = ?, attempts = attempts + 1, last_error = '' WHERE id = ?`, ms(changeTime(when)), via, id)
}

// MarkMessageFailed records a failed attempt: the next one at retryAt, or
// none when permanent.
func (s *DB) MarkMessageFailed(ctx context.Context, id int64, reason string, retryAt time.Time, permanent bool) error {
	return s.execOne(ctx, fmt.Sprintf("mark message %d failed", id),
		`UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, failed = ? WHERE id = ?`,
		reason, ms(retryAt), permanent, id)
}

// MessageByID finds one message.
func (s *DB) MessageByID(ctx context.Context, id int64) (store.Message, error) {
	m, err := scanMessage(s.r.QueryRowContext(ctx, `SELECT `+msgCols+` FROM outbox WHERE id = ?`, id))
	if err != nil {
		return m, wrap(err, "message %d", id)
	}
	return m, nil
}

// ListMessages lists messages newest first; appointmentID 0 means all.
func (s *DB) ListMessages(ctx context.Context, appointmentID int64, limit, offset int) ([]store.Message, error) {
	limit, offset = page(limit, offset)
	// Two spellings, so that one visit's messages come from its index.
	q, args := `SELECT `+msgCols+` FROM outbox ORDER BY id DESC LIMIT ? OFFSET ?`, []any{limit, offset}
	if appointmentID != 0 {
		q, args = `SELECT `+msgCols+` FROM outbox WHERE appointment_id = ? ORDER BY id DESC LIMIT ? OFFSET ?`, []any{appointmentID, limit, offset}
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	out, err := collect(rows, err, scanMessage)
	if err != nil {
		return nil, wrap(err, "list messages")
	}
	return out, nil
}
