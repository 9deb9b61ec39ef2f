package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/storetest"
)

// TestMigrationRelayedDevices: the migration that keeps relayed devices
// leaves the readings relayed before it valid, naming no relayed device.
func TestMigrationRelayedDevices(t *testing.T) {
	ctx := context.Background()
	db := openAt(t, filepath.Join(t.TempDir(), "bedside.db"))
	// Back to the schema before the migration.
	const migration = "migrations/0023_relayed_devices.sql"
	for _, q := range []string{`ALTER TABLE observations DROP COLUMN relayed_id`, `DROP TABLE relayed_devices`,
		`DELETE FROM schema_migrations WHERE name = '` + migration + `'`} {
		if _, err := db.w.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	check := storetest.RelayedBefore(t, db, func(o store.Observation) {
		if _, err := db.w.ExecContext(ctx, `INSERT INTO observations (patient_id, device_id, seq, code, value, unit, effective_at, received_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, o.PatientID, o.DeviceID, o.Seq, o.Code, o.Value, o.Unit, ms(o.EffectiveAt), ms(o.ReceivedAt)); err != nil {
			t.Fatal(err)
		}
	})
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	check()
}
