package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/postgres/pgtest"
	"github.com/bedside-health/bedside/store/storetest"
)

// openURL opens the store at u, closed when t ends.
func openURL(t testing.TB, u string) *DB {
	t.Helper()
	db, err := Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// open opens a store on a fresh database.
func open(t testing.TB) *DB {
	t.Helper()
	return openURL(t, pgtest.FreshDB(t))
}

func TestContract(t *testing.T) {
	t.Parallel()
	pgtest.Admin(t).Close(context.Background()) // skip (or fail) once, not in every subtest
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

// TestDatabaseRefusesOverlap writes around BookAppointment: the exclusion
// constraint alone must refuse an overlapping insert or update.
func TestDatabaseRefusesOverlap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := open(t)
	d, _ := db.CreateUser(ctx, store.User{Email: "d@example.org", Name: "D", Role: store.RolePhysician})
	d2, _ := db.CreateUser(ctx, store.User{Email: "d2@example.org", Name: "D2", Role: store.RolePhysician})
	p, _ := db.CreateUser(ctx, store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient})
	ten := time.Date(2030, 1, 7, 10, 0, 0, 0, time.UTC)
	insert := func(physician int64, start time.Time, status string) error {
		_, err := db.pool.Exec(ctx, `INSERT INTO appointments (physician_id, patient_id, start_at, end_at, status, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, now(), now())`, physician, p.ID, start, start.Add(30*time.Minute), status)
		return err
	}
	if err := insert(d.ID, ten, "booked"); err != nil {
		t.Fatal(err)
	}
	if err := insert(d.ID, ten.Add(15*time.Minute), "arrived"); !isOverlap(err) {
		t.Fatalf("overlapping insert: %v, want the exclusion constraint's refusal (23P01)", err)
	}
	if err := insert(d.ID, ten.Add(29*time.Minute+999*time.Millisecond), "noshow"); !isOverlap(err) {
		t.Fatalf("insert overlapping by a millisecond: %v, want 23P01", err)
	}
	for _, status := range []string{"cancelled", "entered-in-error"} {
		if err := insert(d.ID, ten.Add(15*time.Minute), status); err != nil {
			t.Fatalf("%s overlapping row refused: %v", status, err)
		}
	}
	if err := insert(d2.ID, ten, "booked"); err != nil {
		t.Fatalf("another physician at the same time refused: %v", err)
	}
	if err := insert(d.ID, ten.Add(30*time.Minute), "booked"); err != nil {
		t.Fatalf("a visit starting as another ends refused: %v", err)
	}
	_, err := db.pool.Exec(ctx, `UPDATE appointments SET start_at = $1, end_at = $2 WHERE physician_id = $3 AND start_at = $4`,
		ten.Add(20*time.Minute), ten.Add(50*time.Minute), d.ID, ten.Add(30*time.Minute))
	if !isOverlap(err) {
		t.Fatalf("update moving into a taken time: %v, want 23P01", err)
	}
	_, err = db.pool.Exec(ctx, `UPDATE appointments SET physician_id = $1 WHERE physician_id = $2`, d.ID, d2.ID)
	if !isOverlap(err) {
		t.Fatalf("update moving a visit to a busy physician: %v, want 23P01", err)
	}
	_, err = db.pool.Exec(ctx, `UPDATE appointments SET status = 'booked' WHERE status = 'cancelled'`)
	if !isOverlap(err) {
		t.Fatalf("reviving into a taken time: %v, want 23P01", err)
	}
	// The refusal maps to ErrSlotTaken at the store's surface.
	_, err = db.BookAppointment(ctx, scheduling.Appointment{PhysicianID: d.ID, PatientID: p.ID, Start: ten, End: ten.Add(time.Minute)}, store.Change{})
	if !errors.Is(err, scheduling.ErrSlotTaken) {
		t.Fatalf("BookAppointment: %v, want ErrSlotTaken", err)
	}
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM appointments WHERE physician_id = $1 AND `+liveSQL, d.ID).Scan(&n); err != nil || n != 2 {
		t.Fatalf("physician has %d live appointments (%v), want 2", n, err)
	}
}

// TestConcurrentMovesAndBookings races moves of booked visits, status
// changes and new bookings for one free slot: exactly one move or booking
// wins, the rest are refused with ErrSlotTaken, and none deadlocks.
func TestConcurrentMovesAndBookings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := open(t)
	d, _ := db.CreateUser(ctx, store.User{Email: "d@example.org", Name: "D", Role: store.RolePhysician})
	p, _ := db.CreateUser(ctx, store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient})
	day := time.Date(2030, 1, 7, 0, 0, 0, 0, time.UTC)
	const n = 20
	var booked []scheduling.Appointment
	for i := range n {
		s := day.Add(time.Duration(i) * time.Hour)
		a, err := db.BookAppointment(ctx, scheduling.Appointment{PhysicianID: d.ID, PatientID: p.ID, Start: s, End: s.Add(30 * time.Minute)}, store.Change{})
		if err != nil {
			t.Fatal(err)
		}
		booked = append(booked, a)
	}
	target := day.Add(48 * time.Hour)
	start := make(chan struct{})
	var wg sync.WaitGroup
	var won atomic.Int32
	check := func(what string, err error) {
		switch {
		case err == nil:
			won.Add(1)
		case !errors.Is(err, scheduling.ErrSlotTaken):
			t.Errorf("%s: %v, want ErrSlotTaken", what, err)
		}
	}
	for i, a := range booked {
		wg.Go(func() {
			<-start
			_, err := db.RescheduleAppointment(ctx, a.ID, target.Add(time.Duration(i)*time.Minute), target.Add(30*time.Minute), store.Change{})
			if !errors.Is(err, scheduling.ErrTransition) { // marked a no-show first
				check("move", err)
			}
		})
		wg.Go(func() {
			<-start
			s := target.Add(time.Duration(i) * time.Minute)
			_, err := db.BookAppointment(ctx, scheduling.Appointment{PhysicianID: d.ID, PatientID: p.ID, Start: s, End: s.Add(time.Hour)}, store.Change{})
			check("booking", err)
		})
		wg.Go(func() {
			<-start
			if _, err := db.SetAppointmentStatus(ctx, a.ID, scheduling.StatusNoShow, store.Change{}); err != nil && !errors.Is(err, scheduling.ErrTransition) {
				t.Errorf("status: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	list, err := db.AppointmentsBetween(ctx, d.ID, 0, target.Add(-time.Hour), target.Add(2*time.Hour))
	if won.Load() != 1 || err != nil || len(list) != 1 {
		t.Fatalf("%d moves or bookings won and %d visits hold the slot (%v); want 1 of each", won.Load(), len(list), err)
	}
}

// TestHistoryAppendOnly shows that the database refuses to change or remove
// an appointment's history, whoever asks.
func TestHistoryAppendOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := open(t)
	d, _ := db.CreateUser(ctx, store.User{Email: "d@example.org", Name: "D", Role: store.RolePhysician})
	p, _ := db.CreateUser(ctx, store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient})
	start := time.Date(2030, 1, 7, 10, 0, 0, 0, time.UTC)
	a, err := db.BookAppointment(ctx, scheduling.Appointment{PhysicianID: d.ID, PatientID: p.ID, Start: start, End: start.Add(time.Hour)}, store.Change{Reason: "first"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetAppointmentStatus(ctx, a.ID, scheduling.StatusCancelled, store.Change{Reason: "second"}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE appointment_events SET reason = 'rewritten'`,
		`DELETE FROM appointment_events`,
		`TRUNCATE appointment_events`,
		`DELETE FROM appointments`, // the history refers to it
	} {
		if _, err := db.pool.Exec(ctx, q); err == nil {
			t.Errorf("%s was allowed", q)
		} else if c := pgCode(err); c != "23001" && c != "23503" {
			t.Errorf("%s: %v, want restrict_violation (23001) or foreign_key_violation (23503)", q, err)
		}
	}
	h, err := db.AppointmentHistory(ctx, a.ID)
	if err != nil || len(h) != 2 || h[0].Reason != "first" || h[1].Reason != "second" {
		t.Fatalf("history after the attempts = %+v, %v; want both events unchanged", h, err)
	}
}

// TestConcurrentMigrations opens one fresh database from several nodes at
// once: every Open succeeds and each migration is applied once.
func TestConcurrentMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := pgtest.FreshDB(t)
	const nodes = 4
	var wg sync.WaitGroup
	dbs := make([]*DB, nodes)
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Go(func() { dbs[i], errs[i] = Open(ctx, u) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		t.Cleanup(func() { dbs[i].Close() })
	}
	files, _ := fs.Glob(migrations, "migrations/*.sql")
	var n, distinct int
	if err := dbs[0].pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT name) FROM schema_migrations`).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n == 0 || n != len(files) || distinct != n {
		t.Fatalf("schema_migrations holds %d rows (%d names) for %d migrations, want one each", n, distinct, len(files))
	}
	if err := dbs[1].Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	// The schema works from every node.
	for i, db := range dbs {
		if _, err := db.CreateUser(ctx, store.User{Email: fmt.Sprintf("u%d@example.org", i), Name: "U", Role: store.RoleAdmin}); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
}

// TestExtensionRefused opens a database as a role that may create tables
// but not btree_gist: Open must say what to run, and work once it has been
// run. A database's owner may create btree_gist itself (it is trusted).
func TestExtensionRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := pgtest.Admin(t)
	defer conn.Close(ctx)
	var may bool
	if err := conn.QueryRow(ctx, `SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user`).Scan(&may); err != nil || !may {
		t.Skipf("the test role may not create roles (%v)", err)
	}
	role, password := pgtest.RandomName("bedside_app"), pgtest.RandomName("pw")
	if _, err := conn.Exec(ctx, `CREATE ROLE `+role+` LOGIN PASSWORD '`+password+`'`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn := pgtest.Admin(t)
		defer conn.Close(ctx)
		conn.Exec(ctx, `DROP ROLE IF EXISTS `+role)
	})
	// as is a database's URL with the new role's credentials.
	as := func(dbURL string) (string, string) {
		u, _ := url.Parse(dbURL)
		u.User = url.UserPassword(role, password)
		return u.String(), strings.TrimPrefix(u.Path, "/")
	}
	// exec runs statements in a database as the test's own role.
	exec := func(dbURL, sql string) {
		c, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}

	dbURL := pgtest.FreshDB(t) // dropped before the role, whose objects it holds
	exec(dbURL, `GRANT CREATE ON SCHEMA public TO `+role)
	appURL, name := as(dbURL)
	_, err := Open(ctx, appURL)
	if err == nil || !strings.Contains(err.Error(), "CREATE EXTENSION btree_gist") || !strings.Contains(err.Error(), name) {
		t.Fatalf("Open without the right to create btree_gist: %v; want an error saying to run CREATE EXTENSION btree_gist in %s", err, name)
	}
	t.Logf("the error reads: %v", err)
	exec(dbURL, `CREATE EXTENSION btree_gist`)
	if err := openURL(t, appURL).Ping(ctx); err != nil {
		t.Fatal(err)
	}

	owned := pgtest.FreshDB(t)
	_, ownedName := as(owned)
	exec(owned, `ALTER DATABASE `+ownedName+` OWNER TO `+role)
	ownerURL, _ := as(owned)
	if err := openURL(t, ownerURL).Ping(ctx); err != nil {
		t.Fatalf("the database's owner: %v", err)
	}
}

func TestPoolSize(t *testing.T) {
	t.Parallel()
	u := pgtest.FreshDB(t)
	if got := openURL(t, u).pool.Config().MaxConns; got != defaultMaxConns {
		t.Errorf("pool of %d connections, want %d", got, defaultMaxConns)
	}
	if got := openURL(t, u+"&pool_max_conns=3").pool.Config().MaxConns; got != 3 {
		t.Errorf("pool_max_conns=3 gave a pool of %d", got)
	}
}

// bench opens a store with one patient and the given number of physicians.
func bench(b *testing.B, physicians int) (*DB, int64, []int64) {
	ctx := context.Background()
	db := open(b)
	p, err := db.CreateUser(ctx, store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient})
	if err != nil {
		b.Fatal(err)
	}
	var ds []int64
	for i := range physicians {
		d, err := db.CreateUser(ctx, store.User{Email: fmt.Sprintf("d%d@example.org", i), Name: "D", Role: store.RolePhysician})
		if err != nil {
			b.Fatal(err)
		}
		ds = append(ds, d.ID)
	}
	return db, p.ID, ds
}

// benchBook books b.N distinct slots with the given number of goroutines,
// the i-th booking for physician i modulo the number of physicians.
func benchBook(b *testing.B, bookers, physicians int) {
	ctx := context.Background()
	db, patient, ds := bench(b, physicians)
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range bookers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				s := base.Add(time.Duration(i) * 30 * time.Minute)
				a := scheduling.Appointment{PhysicianID: ds[int(i)%len(ds)], PatientID: patient, Start: s, End: s.Add(30 * time.Minute)}
				if _, err := db.BookAppointment(ctx, a, store.Change{}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "bookings/s")
}

// BenchmarkBook measures sustained booking throughput, as the SQLite
// store's benchmark of the same name does: one booking at a time, and 16
// goroutines booking distinct slots of one physician at once (which queue on
// the physician's lock), and of 16 physicians (which need not).
func BenchmarkBook(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		ctx := context.Background()
		db, patient, ds := bench(b, 1)
		s := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		for b.Loop() {
			s = s.Add(30 * time.Minute)
			if _, err := db.BookAppointment(ctx, scheduling.Appointment{PhysicianID: ds[0], PatientID: patient, Start: s, End: s.Add(30 * time.Minute)}, store.Change{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "bookings/s")
	})
	b.Run("concurrent", func(b *testing.B) { benchBook(b, 16, 1) })
	b.Run("concurrent-physicians", func(b *testing.B) { benchBook(b, 16, 16) })
}

// BenchmarkBookContended is 200 goroutines racing for one slot per
// iteration, the contract's scenario, timed end to end.
func BenchmarkBookContended(b *testing.B) {
	ctx := context.Background()
	db, patient, ds := bench(b, 1)
	s := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for b.Loop() {
		s = s.Add(30 * time.Minute)
		done := make(chan error, 200)
		for range 200 {
			go func() {
				_, err := db.BookAppointment(ctx, scheduling.Appointment{PhysicianID: ds[0], PatientID: patient, Start: s, End: s.Add(30 * time.Minute)}, store.Change{})
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
	t.Parallel()
	ctx := context.Background()
	db := open(t)
	p, err := db.CreateUser(ctx, store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient})
	if err != nil {
		t.Fatal(err)
	}
	// Back to the schema before the migration, with what it found there
	// (and before the later one that indexes the column).
	const migration, later = "migrations/0014_browser_credentials.sql", "migrations/0016_one_browser_device.sql"
	for _, q := range []string{`DROP INDEX credentials_one_live_browser`, `ALTER TABLE credentials DROP COLUMN browser`,
		`DELETE FROM schema_migrations WHERE name IN ('` + migration + `', '` + later + `')`} {
		if _, err := db.pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	want := map[string]bool{}
	for _, c := range []struct {
		hash, kind, name string
		expires          *time.Time
		browser          bool
	}{
		{"browser", "device", "Web browser", nil, true},
		{"hub", "device", "Web browser", new(time.Now().Add(time.Hour)), false},
		{"oximeter", "device", "Oximeter", nil, false},
		{"api", "api", "Web browser", nil, false},
	} {
		if _, err := db.pool.Exec(ctx, `INSERT INTO credentials (kind, token_hash, user_id, name, created_at, expires_at) VALUES ($1, $2, $3, $4, now(), $5)`,
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
