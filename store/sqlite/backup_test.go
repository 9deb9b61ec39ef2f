package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// writers keeps booking appointments and appending observations to db from
// several goroutines, recording each write once it is acknowledged.
type writers struct {
	mu     sync.Mutex
	booked []int64 // appointment IDs
	seqs   []int64 // observation sequence numbers of the one device
	stop   chan struct{}
	wg     sync.WaitGroup
}

var t0 = time.Date(2031, 2, 3, 4, 0, 0, 0, time.UTC)

func startWriters(t *testing.T, db *DB) (w *writers, patient int64) {
	t.Helper()
	ctx := context.Background()
	doc, err := db.CreateUser(ctx, store.User{Email: "doc@example.org", Name: "Doc", Role: store.RolePhysician})
	if err != nil {
		t.Fatal(err)
	}
	pat, err := db.CreateUser(ctx, store.User{Email: "pat@example.org", Name: "Pat", Role: store.RolePatient})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := db.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte("dev"), UserID: pat.ID, Name: "oximeter"})
	if err != nil {
		t.Fatal(err)
	}
	w = &writers{stop: make(chan struct{})}
	for g := range 4 {
		w.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-w.stop:
					return
				default:
				}
				start := t0.Add(time.Duration(g*1_000_000+i) * 10 * time.Minute)
				a, err := db.BookAppointment(ctx, scheduling.Appointment{PhysicianID: doc.ID, PatientID: pat.ID,
					Start: start, End: start.Add(10 * time.Minute), Status: scheduling.StatusBooked}, store.Change{ActorID: doc.ID})
				if err != nil {
					t.Errorf("book: %v", err)
					return
				}
				w.mu.Lock()
				w.booked = append(w.booked, a.ID)
				w.mu.Unlock()
			}
		})
	}
	w.wg.Go(func() {
		for seq := int64(1); ; seq++ {
			select {
			case <-w.stop:
				return
			default:
			}
			o := store.Observation{PatientID: pat.ID, DeviceID: dev.ID, Seq: seq, Code: "8867-4", Value: 70, Unit: "/min",
				EffectiveAt: t0.Add(time.Duration(seq) * time.Second), ReceivedAt: time.Now()}
			if err := db.AppendObservations(ctx, dev.ID, seq, []store.Observation{o}); err != nil {
				t.Errorf("append observation: %v", err)
				return
			}
			w.mu.Lock()
			w.seqs = append(w.seqs, seq)
			w.mu.Unlock()
		}
	})
	return w, pat.ID
}

// acknowledged waits until each kind of write has been acknowledged at
// least n times, then returns what has been so far.
func (w *writers) acknowledged(t *testing.T, n int) (booked, seqs []int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		w.mu.Lock()
		booked, seqs = slices.Clone(w.booked), slices.Clone(w.seqs)
		w.mu.Unlock()
		if len(booked) >= n && len(seqs) >= n {
			return booked, seqs
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s only %d bookings and %d observations", len(booked), len(seqs))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *writers) halt() {
	close(w.stop)
	w.wg.Wait()
}

func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openAt(t, filepath.Join(dir, "data", "bedside.db"))
	w, patient := startWriters(t, db)
	booked, seqs := w.acknowledged(t, 50)

	out := filepath.Join(dir, "backup", "bedside.db")
	if err := os.Mkdir(filepath.Dir(out), 0o700); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := db.Backup(ctx, out); err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	after, _ := w.acknowledged(t, 0)
	w.halt()
	t.Logf("backup took %s; %d bookings acknowledged before it, %d by its end", took, len(booked), len(after))

	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %o, want 600", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 1 {
		t.Errorf("backup folder holds %d files, want only bedside.db", len(entries))
	}
	names, err := Check(ctx, out)
	if err != nil {
		t.Fatalf("the backup fails its check: %v", err)
	}
	want, _ := applied(ctx, db.r)
	if !slices.Equal(names, want) {
		t.Errorf("backup records migrations %v, want %v", names, want)
	}

	// Everything acknowledged before the backup began is in it, and the
	// copy opens as a store.
	cp := openAt(t, out)
	for _, id := range booked {
		if _, err := cp.AppointmentByID(ctx, id); err != nil {
			t.Fatalf("appointment %d, acknowledged before the backup, is missing from it: %v", id, err)
		}
	}
	obs, err := cp.ObservationsBetween(ctx, patient, t0, t0.Add(1000*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	have := map[int64]bool{}
	for _, o := range obs {
		have[o.Seq] = true
	}
	for _, s := range seqs {
		if !have[s] {
			t.Fatalf("observation %d, acknowledged before the backup, is missing from it", s)
		}
	}
	// The source carries on.
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestBackupRefusesExistingTarget(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openAt(t, filepath.Join(dir, "data", "bedside.db"))
	out := filepath.Join(dir, "bedside.db")
	if err := os.WriteFile(out, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := db.Backup(ctx, out); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("backup over an existing file: %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "keep me" {
		t.Fatalf("the existing file was changed to %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 { // data and bedside.db
		t.Errorf("a refused backup left files behind: %v", entries)
	}
}

func TestCheckRefusesBadBackups(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openAt(t, filepath.Join(dir, "data", "bedside.db"))
	good := filepath.Join(dir, "good.db")
	if err := db.Backup(ctx, good); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}

	notDB := filepath.Join(dir, "not.db")
	os.WriteFile(notDB, []byte(strings.Repeat("not a database ", 500)), 0o600)

	// Garbage over every page but the first: the schema stays readable,
	// the tables do not.
	damaged := filepath.Join(dir, "damaged.db")
	bad := slices.Clone(b)
	for i := 4096; i < len(bad); i++ {
		bad[i] = byte(i * 7)
	}
	os.WriteFile(damaged, bad, 0o600)

	// A migration this build does not know: made by a newer Bedside.
	newer := filepath.Join(dir, "newer.db")
	os.WriteFile(newer, b, 0o600)
	nd, err := sql.Open("sqlite", dsn(newer, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nd.Exec(`INSERT INTO schema_migrations (name, applied_at) VALUES ('migrations/9999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	nd.Close()

	for _, tc := range []struct{ name, path, want string }{
		{"not a database", notDB, ""},
		{"damaged", damaged, ""},
		{"newer", newer, "newer"},
		{"missing", filepath.Join(dir, "missing.db"), ""},
		{"a folder", dir, "not a file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Check(ctx, tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := Check(ctx, good); err != nil {
		t.Fatalf("a good backup: %v", err)
	}
}

func TestLockFolder(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	lock, err := LockFolder(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, ".lock"): 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, want mode %o", p, err, want)
		}
	}
	if _, err := LockFolder(ctx, dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	// The store in the folder still opens: the lock is a file of its own.
	openAt(t, filepath.Join(dir, "bedside.db"))
	if err := lock.Release(); err != nil {
		t.Fatal(err)
	}
	again, err := LockFolder(ctx, dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again.Release()
	var none *FolderLock
	if err := none.Release(); err != nil {
		t.Fatalf("nil lock: %v", err)
	}
}

func TestOpenExistingNeitherCreatesNorMigrates(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	if _, err := OpenExisting(ctx, missing); err == nil {
		t.Fatal("OpenExisting of a missing file succeeded")
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenExisting created %s: %v", missing, err)
	}

	// A database a migration short (as if an older Bedside serves it)
	// stays so: the copy it makes is of the store as it is.
	path := filepath.Join(dir, "bedside.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := applied(ctx, db.r)
	last := all[len(all)-1]
	if _, err := db.w.ExecContext(ctx, `DELETE FROM schema_migrations WHERE name = ?`, last); err != nil {
		t.Fatal(err)
	}
	db.Close()
	old, err := OpenExisting(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	out := filepath.Join(dir, "copy.db")
	if err := old.Backup(ctx, out); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, out} {
		got, err := Check(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, all[:len(all)-1]) {
			t.Errorf("%s records %v, want %v", p, got, all[:len(all)-1])
		}
	}
}
