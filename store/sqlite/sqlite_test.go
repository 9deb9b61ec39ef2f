package sqlite

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/storetest"
)

func openAt(t testing.TB, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openAt(t, filepath.Join(t.TempDir(), "data", "bedside.db"))
	})
}

func TestFilesOwnerOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "bedside.db")
	db := openAt(t, path)
	if _, err := db.CreateUser(context.Background(), store.User{Email: "a@example.org", Name: "A", Role: store.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	// The -wal and -shm files exist while the database is open.
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600, path + "-wal": 0o600, path + "-shm": 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode %o, want %o", p, got, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("data folder holds %d files, want bedside.db, -wal and -shm", len(entries))
	}
}

func TestPathNeedingEscapes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a b?c#d%20e", "bedside.db")
	db := openAt(t, path)
	if err := db.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("database not at %s: %v", path, err)
	}
}

func TestMigrationsIdempotentAndDataKept(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bedside.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	u, err := db.CreateUser(ctx, store.User{Email: "a@example.org", Name: "A", Role: store.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	db.Close()

	db = openAt(t, path)
	if got, err := db.UserByID(ctx, u.ID); err != nil || got.Email != "a@example.org" {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	files, _ := fs.Glob(migrations, "migrations/*.sql")
	var n int
	if err := db.w.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(files) || n == 0 {
		t.Fatalf("schema_migrations holds %d rows (%v), want one per migration (%d)", n, err, len(files))
	}
}

// TestDatabaseRefusesOverlap writes around BookAppointment's own check: the
// triggers alone must refuse an overlapping insert or update.
func TestDatabaseRefusesOverlap(t *testing.T) {
	ctx := context.Background()
	db := openAt(t, filepath.Join(t.TempDir(), "bedside.db"))
	d, _ := db.CreateUser(ctx, store.User{Email: "d@example.org", Name: "D", Role: store.RolePhysician})
	p, _ := db.CreateUser(ctx, store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient})
	ten := time.Date(2030, 1, 7, 10, 0, 0, 0, time.UTC)
	insert := func(start time.Time, status string) error {
		_, err := db.w.ExecContext(ctx, `INSERT INTO appointments (physician_id, patient_id, start_at, end_at, status, created_at) VALUES (?, ?, ?, ?, ?, 1)`,
			d.ID, p.ID, ms(start), ms(start.Add(30*time.Minute)), status)
		return err
	}
	if err := insert(ten, "booked"); err != nil {
		t.Fatal(err)
	}
	if err := insert(ten.Add(15*time.Minute), "arrived"); !isOverlap(err) {
		t.Fatalf("overlapping insert: %v, want the trigger's refusal", err)
	}
	if err := insert(ten.Add(15*time.Minute), "cancelled"); err != nil {
		t.Fatalf("cancelled overlapping row refused: %v", err)
	}
	if err := insert(ten.Add(30*time.Minute), "booked"); err != nil {
		t.Fatal(err)
	}
	_, err := db.w.ExecContext(ctx, `UPDATE appointments SET start_at = ?, end_at = ? WHERE start_at = ?`,
		ms(ten.Add(20*time.Minute)), ms(ten.Add(50*time.Minute)), ms(ten.Add(30*time.Minute)))
	if !isOverlap(err) {
		t.Fatalf("update moving into a taken time: %v, want the trigger's refusal", err)
	}
	_, err = db.w.ExecContext(ctx, `UPDATE appointments SET status = 'booked' WHERE status = 'cancelled'`)
	if !isOverlap(err) {
		t.Fatalf("reviving into a taken time: %v, want the trigger's refusal", err)
	}
	// The refusal maps to ErrSlotTaken at the store's surface.
	_, err = db.BookAppointment(ctx, scheduling.Appointment{PhysicianID: d.ID, PatientID: p.ID, Start: ten, End: ten.Add(time.Minute)}, store.Change{})
	if !errors.Is(err, scheduling.ErrSlotTaken) {
		t.Fatalf("BookAppointment: %v", err)
	}
}

// benchBook books with parallelism goroutines per CPU, each booking taking
// its own slot.
func benchBook(b *testing.B, parallelism int) {
	ctx := context.Background()
	db := openAt(b, filepath.Join(b.TempDir(), "bedside.db"))
	d, _ := db.CreateUser(ctx, store.User{Email: "d@example.org", Name: "D", Role: store.RolePhysician})
	p, _ := db.CreateUser(ctx, store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient})
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var next atomic.Int64
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s := base.Add(time.Duration(next.Add(1)) * 30 * time.Minute)
			if _, err := db.BookAppointment(ctx, scheduling.Appointment{PhysicianID: d.ID, PatientID: p.ID, Start: s, End: s.Add(30 * time.Minute)}, store.Change{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "bookings/s")
}

// BenchmarkBook measures sustained booking throughput: one booking at a
// time, and with 8 goroutines per CPU booking distinct slots concurrently.
func BenchmarkBook(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		ctx := context.Background()
		db := openAt(b, filepath.Join(b.TempDir(), "bedside.db"))
		d, _ := db.CreateUser(ctx, store.User{Email: "d@example.org", Name: "D", Role: store.RolePhysician})
		p, _ := db.CreateUser(ctx, store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient})
		s := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		for b.Loop() {
			s = s.Add(30 * time.Minute)
			if _, err := db.BookAppointment(ctx, scheduling.Appointment{PhysicianID: d.ID, PatientID: p.ID, Start: s, End: s.Add(30 * time.Minute)}, store.Change{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "bookings/s")
	})
	b.Run("concurrent", func(b *testing.B) { benchBook(b, 8) })
}

// BenchmarkBookContended is 200 goroutines racing for one slot per
// iteration, the contract's scenario, timed end to end.
func BenchmarkBookContended(b *testing.B) {
	ctx := context.Background()
	db := openAt(b, filepath.Join(b.TempDir(), "bedside.db"))
	d, _ := db.CreateUser(ctx, store.User{Email: "d@example.org", Name: "D", Role: store.RolePhysician})
	p, _ := db.CreateUser(ctx, store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient})
	s := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for b.Loop() {
		s = s.Add(30 * time.Minute)
		done := make(chan error, 200)
		for range 200 {
			go func() {
				_, err := db.BookAppointment(ctx, scheduling.Appointment{PhysicianID: d.ID, PatientID: p.ID, Start: s, End: s.Add(30 * time.Minute)}, store.Change{})
				done <- err
			}()
		}
		ok := 0
		for range 200 {
			if err := <-done; err == nil {
				ok++
			} else if !errors.Is(err, scheduling.ErrSlotTaken) {
				b.Fatal(err)
			}
		}
		if ok != 1 {
			b.Fatalf("%d bookings of one slot", ok)
		}
	}
}

// TestMigrationMarksBrowserCredentials: the migration that marks the
// devices patients' browsers stream as marks the "Web browser" devices made
// so far, which never expire, and not a hub an admin named the same, whose
// token always expires, nor any other device.
func TestMigrationMarksBrowserCredentials(t *testing.T) {
	ctx := context.Background()
	db := openAt(t, filepath.Join(t.TempDir(), "bedside.db"))
	p, err := db.CreateUser(ctx, store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient})
	if err != nil {
		t.Fatal(err)
	}
	// Back to the schema before the migration, with what it found there
	// (and before the later one that indexes the column).
	const migration, later = "migrations/0019_browser_credentials.sql", "migrations/0021_one_browser_device.sql"
	for _, q := range []string{`DROP INDEX credentials_one_live_browser`, `ALTER TABLE credentials DROP COLUMN browser`,
		`DELETE FROM schema_migrations WHERE name IN ('` + migration + `', '` + later + `')`} {
		if _, err := db.w.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	want := map[string]bool{}
	for _, c := range []struct {
		hash, kind, name string
		expires          int64
		browser          bool
	}{
		{"browser", "device", "Web browser", 0, true},
		{"hub", "device", "Web browser", ms(time.Now().Add(time.Hour)), false},
		{"oximeter", "device", "Oximeter", 0, false},
		{"api", "api", "Web browser", 0, false},
	} {
		if _, err := db.w.ExecContext(ctx, `INSERT INTO credentials (kind, token_hash, user_id, name, created_at, expires_at) VALUES (?, ?, ?, ?, 1, ?)`,
			c.kind, []byte(c.hash), p.ID, c.name, c.expires); err != nil {
			t.Fatal(err)
		}
		want[c.hash] = c.browser
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{store.CredentialDevice, store.CredentialAPI} {
		list, err := db.ListCredentials(ctx, kind, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range list {
			if c.Browser != want[string(c.TokenHash)] {
				t.Errorf("after the migration %s credential %q has browser %v, want %v", kind, c.TokenHash, c.Browser, want[string(c.TokenHash)])
			}
			delete(want, string(c.TokenHash))
		}
	}
	if len(want) != 0 {
		t.Errorf("credentials lost by the migration: %v", want)
	}
}

// TestWriterStatementJournalInMemory: the writer keeps statement journals
// (and temporary tables) in memory, not in temporary files (see dsn).
func TestWriterStatementJournalInMemory(t *testing.T) {
	db := openAt(t, filepath.Join(t.TempDir(), "bedside.db"))
	var mode int
	if err := db.w.QueryRowContext(context.Background(), `PRAGMA temp_store`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != 2 { // MEMORY
		t.Errorf("writer temp_store = %d, want 2 (MEMORY)", mode)
	}
}

// TestReadersAreBounded: reads share at most maxReaders connections (a
// burst opened one per waiting query, and SQLite's memory for each stayed
// with the process), and many more reads at once than that all complete,
// queued, none stuck waiting for a connection another holds.
func TestReadersAreBounded(t *testing.T) {
	ctx := t.Context()
	db := openAt(t, filepath.Join(t.TempDir(), "bedside.db"))
	u, err := db.CreateUser(ctx, store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient, TimeZone: "Europe/London"})
	if err != nil {
		t.Fatal(err)
	}
	if got := db.r.Stats().MaxOpenConnections; got != maxReaders {
		t.Fatalf("readers bounded at %d connections, want %d", got, maxReaders)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*maxReaders)
	for range 8 * maxReaders {
		wg.Go(func() {
			if _, err := db.UserByID(ctx, u.ID); err != nil {
				errs <- err
			}
			if _, _, err := db.SearchObservations(ctx, store.ObservationQuery{PatientID: u.ID}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if open := db.r.Stats().OpenConnections; open > maxReaders {
		t.Fatalf("%d readers open, more than %d", open, maxReaders)
	}
}
