package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
)

// auditTrail opens a store on a fresh database holding n audit events.
func auditTrail(t *testing.T, n int) *DB {
	t.Helper()
	db := open(t)
	for i := range n {
		if _, err := db.AppendAudit(context.Background(), store.AuditEvent{ActorID: 1, ActorRole: "physician", Action: "read",
			PatientID: 2, Resource: fmt.Sprintf("Appointment/%d", i+1), Address: "192.0.2.1", Outcome: "success"}); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// tamper runs statements in one transaction with triggers off
// (session_replication_role replica, which a superuser may set), as an
// attacker with the database's keys would.
func tamper(t *testing.T, db *DB, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAuditTriggersRefuseChanges(t *testing.T) {
	t.Parallel()
	db := auditTrail(t, 3)
	ctx := context.Background()
	for _, stmt := range []string{
		`UPDATE audit_events SET resource = 'Appointment/9' WHERE seq = 2`,
		`DELETE FROM audit_events WHERE seq = 2`,
		`DELETE FROM audit_events`,
		`TRUNCATE audit_events`,
	} {
		if _, err := db.pool.Exec(ctx, stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want the append-only trigger's refusal", stmt, err)
		}
	}
	if err := audit.VerifyStore(ctx, db); err != nil {
		t.Fatal(err)
	}
}

func TestAuditTamperingDetected(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		stmts []string
		seq   int64
		kind  string
	}{
		{"modified resource", []string{`UPDATE audit_events SET resource = 'Appointment/99' WHERE seq = 3`}, 3, audit.Changed},
		{"modified time", []string{`UPDATE audit_events SET at = at - interval '1 day' WHERE seq = 4`}, 4, audit.Changed},
		{"deleted row", []string{`DELETE FROM audit_events WHERE seq = 3`}, 3, audit.Missing},
		{"deleted first row", []string{`DELETE FROM audit_events WHERE seq = 1`}, 1, audit.Missing},
		{"deleted and renumbered", []string{`DELETE FROM audit_events WHERE seq = 3`,
			`UPDATE audit_events SET seq = seq + 1000 WHERE seq > 3`, `UPDATE audit_events SET seq = seq - 1001 WHERE seq > 1000`}, 3, audit.Changed},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			db := auditTrail(t, 5)
			tamper(t, db, c.stmts...)
			err := audit.VerifyStore(context.Background(), db)
			var b *audit.BreakError
			if !errors.As(err, &b) || b.Seq != c.seq || b.Kind != c.kind {
				t.Fatalf("VerifyStore = %v, want the chain broken at event %d (%s)", err, c.seq, c.kind)
			}
		})
	}
}
