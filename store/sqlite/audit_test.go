package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
)

// auditTrail opens a store holding n audit events.
func auditTrail(t *testing.T, n int) *DB {
	t.Helper()
	db := openAt(t, filepath.Join(t.TempDir(), "bedside.db"))
	for i := range n {
		if _, err := db.AppendAudit(context.Background(), store.AuditEvent{ActorID: 1, ActorRole: "physician", Action: "read",
			PatientID: 2, Resource: fmt.Sprintf("Appointment/%d", i+1), Address: "192.0.2.1", Outcome: "success"}); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// wantBreak checks that the chain breaks at seq, of kind.
func wantBreak(t *testing.T, db *DB, seq int64, kind string) {
	t.Helper()
	err := audit.VerifyStore(context.Background(), db)
	var b *audit.BreakError
	if !errors.As(err, &b) || b.Seq != seq || b.Kind != kind {
		t.Fatalf("VerifyStore = %v, want the chain broken at event %d (%s)", err, seq, kind)
	}
	if !strings.Contains(err.Error(), fmt.Sprint("event ", seq)) {
		t.Errorf("the error %q does not name event %d", err, seq)
	}
}

func TestAuditTriggersRefuseChanges(t *testing.T) {
	db := auditTrail(t, 3)
	ctx := context.Background()
	for _, stmt := range []string{
		`UPDATE audit_events SET resource = 'Appointment/9' WHERE seq = 2`,
		`DELETE FROM audit_events WHERE seq = 2`,
		`DELETE FROM audit_events`,
	} {
		if _, err := db.w.ExecContext(ctx, stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want the append-only trigger's refusal", stmt, err)
		}
	}
	if err := audit.VerifyStore(ctx, db); err != nil {
		t.Fatal(err)
	}
}

func TestAuditTamperingDetected(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		sql  []string
		seq  int64
		kind string
	}{
		{"modified resource", []string{`DROP TRIGGER audit_events_no_update`,
			`UPDATE audit_events SET resource = 'Appointment/99' WHERE seq = 3`}, 3, audit.Changed},
		{"modified time", []string{`DROP TRIGGER audit_events_no_update`,
			`UPDATE audit_events SET at = at - 86400000 WHERE seq = 4`}, 4, audit.Changed},
		{"deleted row", []string{`DROP TRIGGER audit_events_no_delete`,
			`DELETE FROM audit_events WHERE seq = 3`}, 3, audit.Missing},
		{"deleted first row", []string{`DROP TRIGGER audit_events_no_delete`,
			`DELETE FROM audit_events WHERE seq = 1`}, 1, audit.Missing},
		{"deleted and renumbered", []string{`DROP TRIGGER audit_events_no_delete`, `DROP TRIGGER audit_events_no_update`,
			`DELETE FROM audit_events WHERE seq = 3`, `UPDATE audit_events SET seq = seq - 1 WHERE seq > 3`}, 3, audit.Changed},
		{"inserted row", []string{`DROP TRIGGER audit_events_no_update`,
			`UPDATE audit_events SET seq = -(seq + 1) WHERE seq >= 3`, `UPDATE audit_events SET seq = -seq WHERE seq < 0`,
			`INSERT INTO audit_events SELECT 3, at, actor_id, actor_role, action, patient_id, 'Appointment/77', address, outcome, prev_hash, hash FROM audit_events WHERE seq = 2`}, 3, audit.Changed},
		{"rehashed row", nil, 4, audit.Unlinked},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := auditTrail(t, 5)
			if c.sql == nil { // change event 3 and give it a hash that matches: event 4 no longer follows
				all, _, _ := db.AuditEvents(ctx, store.AuditQuery{})
				e := all[2]
				e.Resource = "Appointment/99"
				c.sql = []string{`DROP TRIGGER audit_events_no_update`,
					fmt.Sprintf(`UPDATE audit_events SET resource = 'Appointment/99', hash = x'%x' WHERE seq = 3`, audit.Hash(e.PrevHash, e))}
			}
			for _, stmt := range c.sql {
				if _, err := db.w.ExecContext(ctx, stmt); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
			wantBreak(t, db, c.seq, c.kind)
		})
	}
}
