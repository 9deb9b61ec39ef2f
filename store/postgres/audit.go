package postgres

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
)

// auditLock is the key of the advisory lock that serialises appends to the
// audit chain ("audit" in ASCII), so that nodes sharing the database chain
// their events one after another.
const auditLock int64 = 0x6175646974

const auditCols = `seq, at, actor_id, actor_role, action, patient_id, resource, address, outcome, prev_hash, hash`

func scanAudit(row pgx.Row) (store.AuditEvent, error) {
	var e store.AuditEvent
	err := row.Scan(&e.Seq, utc(&e.At), &e.ActorID, &e.ActorRole, &e.Action, &e.PatientID, &e.Resource, &e.Address, &e.Outcome, &e.PrevHash, &e.Hash)
	return e, err
}

// AppendAudit adds e at the end of the audit chain and returns it as
// stored, with Seq, PrevHash and Hash set (At now if zero). The
// transaction first takes the audit advisory lock, held until it commits;
// the next append, waiting for it, then reads (in a statement of its own
// READ COMMITTED transaction) the head this one committed.
func (s *DB) AppendAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = norm(e.At)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditLock); err != nil {
			return err
		}
		var last int64
		var prev []byte
		err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&last, &prev)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		e.Seq, e.PrevHash = last+1, append([]byte{}, prev...)
		e.Hash = audit.Hash(e.PrevHash, e)
		_, err = tx.Exec(ctx, `INSERT INTO audit_events (`+auditCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			e.Seq, e.At, e.ActorID, e.ActorRole, e.Action, e.PatientID, e.Resource, e.Address, e.Outcome, e.PrevHash, e.Hash)
		return err
	})
	if err != nil {
		return e, wrap(err, "append audit event")
	}
	return e, nil
}

// AuditEvents returns one page of the audit events q selects, in chain
// order, and how many it selects in all.
func (s *DB) AuditEvents(ctx context.Context, q store.AuditQuery) ([]store.AuditEvent, int, error) {
	var args params
	where := []string{"seq > " + args.add(q.AfterSeq)}
	if q.ActorID != 0 {
		where = append(where, "actor_id = "+args.add(q.ActorID))
	}
	if q.PatientID != 0 {
		where = append(where, "patient_id = "+args.add(q.PatientID))
	}
	if q.Action != "" {
		where = append(where, "action = "+args.add(q.Action))
	}
	if !q.From.IsZero() {
		where = append(where, "at >= "+args.add(norm(q.From)))
	}
	if !q.To.IsZero() {
		where = append(where, "at < "+args.add(norm(q.To)))
	}
	cond := strings.Join(where, " AND ")
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE `+cond, args...).Scan(&total); err != nil {
		return nil, 0, wrap(err, "audit events")
	}
	limit, offset := page(q.Limit, q.Offset)
	query := `SELECT ` + auditCols + ` FROM audit_events WHERE ` + cond + ` ORDER BY seq LIMIT ` + args.add(limit) + ` OFFSET ` + args.add(offset)
	rows, err := s.pool.Query(ctx, query, args...)
	out, err := collect(rows, err, scanAudit)
	if err != nil {
		return nil, 0, wrap(err, "audit events")
	}
	return out, total, nil
}
