package postgres

import (
	"context"
	"testing"

	"github.com/bedside-health/bedside/store/storetest"
)

// TestMigrationOneLiveBrowserDevice: the migration that holds a patient
// to one live browser device copes with patients who already have more.
func TestMigrationOneLiveBrowserDevice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := open(t)
	// Back to the schema before the migration.
	const migration = "migrations/0016_one_browser_device.sql"
	for _, q := range []string{`DROP INDEX credentials_one_live_browser`, `DELETE FROM schema_migrations WHERE name = '` + migration + `'`} {
		if _, err := db.pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	check := storetest.BrowserDuplicates(t, db)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	check()
}
