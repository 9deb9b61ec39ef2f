package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
)

const auditCols = `seq, at, actor_id, actor_role, action, patient_id, resource, address, outcome, prev_hash, hash`

func scanAudit(row scanner) (store.AuditEvent, error) {
	var e store.AuditEvent
	var when int64
	err := row.Scan(&e.Seq, &when, &e.ActorID, &e.ActorRole, &e.Action, &e.PatientID, &e.Resource, &e.Address, &e.Outcome, &e.PrevHash, &e.Hash)
	e.At = at(when)
	return e, err
}

// AppendAudit adds e at the end of the audit chain and returns it as
// stored, with Seq, PrevHash and Hash set (At now if zero). Reading the
// chain's head and inserting after it share one BEGIN IMMEDIATE
// transaction on the one writer connection, so appends chain one after
// another.
func (s *DB) AppendAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = norm(e.At)
	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE: see dsn
	if err != nil {
		return e, wrap(err, "append audit event")
	}
	defer tx.Rollback()
	var last int64
	var prev []byte
	err = tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&last, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return e, wrap(err, "append audit event")
	}
	e.Seq, e.PrevHash = last+1, append([]byte{}, prev...)
	e.Hash = audit.Hash(e.PrevHash, e)
	_, err = tx.ExecContext(ctx, `INSERT INTO audit_events (`+auditCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, ms(e.At), e.ActorID, e.ActorRole, e.Action, e.PatientID, e.Resource, e.Address, e.Outcome, e.PrevHash, e.Hash)
	if err != nil {
		return e, wrap(err, "append audit event")
	}
	if err := tx.Commit(); err != nil {
		return e, wrap(err, "append audit event")
	}
	return e, nil
}

// AuditEvents returns one page of the audit events q selects, in chain
// order, and how many it selects in all.
func (s *DB) AuditEvents(ctx context.Context, q store.AuditQuery) ([]store.AuditEvent, int, error) {
	where := []string{"seq > ?"}
	args := []any{q.AfterSeq}
	if q.ActorID != 0 {
		where, args = append(where, "actor_id = ?"), append(args, q.ActorID)
	}
	if q.PatientID != 0 {
		where, args = append(where, "patient_id = ?"), append(args, q.PatientID)
	}
	if q.Action != "" {
		where, args = append(where, "action = ?"), append(args, q.Action)
	}
	if !q.From.IsZero() {
		where, args = append(where, "at >= ?"), append(args, q.From.UnixMilli())
	}
	if !q.To.IsZero() {
		where, args = append(where, "at < ?"), append(args, q.To.UnixMilli())
	}
	cond := strings.Join(where, " AND ")
	var total int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM audit_events WHERE `+cond, args...).Scan(&total); err != nil {
		return nil, 0, wrap(err, "audit events")
	}
	limit, offset := page(q.Limit, q.Offset)
	rows, err := s.r.QueryContext(ctx, `SELECT `+auditCols+` FROM audit_events WHERE `+cond+` ORDER BY seq LIMIT ? OFFSET ?`,
		append(args, limit, offset)...)
	out, err := collect(rows, err, scanAudit)
	if err != nil {
		return nil, 0, wrap(err, "audit events")
	}
	return out, total, nil
}
