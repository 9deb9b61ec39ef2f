package postgres

import (
	"context"
	"testing"

	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/storetest"
)

// TestMigrationRelayedDevices: the migration that keeps relayed devices
// leaves the readings relayed before it valid, naming no relayed device.
func TestMigrationRelayedDevices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := open(t)
	// Back to the schema before the migration.
	const migration = "migrations/0018_relayed_devices.sql"
	for _, q := range []string{`ALTER TABLE observations DROP COLUMN relayed_id`, `DROP TABLE relayed_devices`,
		`DELETE FROM schema_migrations WHERE name = '` + migration + `'`} {
		if _, err := db.pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	check := storetest.RelayedBefore(t, db, func(o store.Observation) {
		if _, err := db.pool.Exec(ctx, `INSERT INTO observations (patient_id, device_id, seq, code, value, unit, effective_at, received_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, o.PatientID, o.DeviceID, o.Seq, o.Code, o.Value, o.Unit, o.EffectiveAt, o.ReceivedAt); err != nil {
			t.Fatal(err)
		}
	})
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	check()
}
