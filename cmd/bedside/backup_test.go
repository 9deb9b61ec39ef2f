package main

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/sqlite"
)

// liveWrites keeps writing to a running server's store while a test backs
// it up: bookings and observations through a second handle on the SQLite
// file, and bookings through the server's own booking form. Each write is
// recorded once it is acknowledged.
type liveWrites struct {
	mu       sync.Mutex
	booked   []int64  // appointment IDs booked through the store
	seqs     []int64  // observation sequence numbers
	webSlots []string // starts of slots booked through HTTP
	stop     chan struct{}
	wg       sync.WaitGroup
}

// liveWritesSnapshot is what liveWrites had acknowledged at one moment.
type liveWritesSnapshot struct {
	booked, seqs []int64
	webSlots     []string
}

func (w *liveWrites) snapshot() liveWritesSnapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return liveWritesSnapshot{slices.Clone(w.booked), slices.Clone(w.seqs), slices.Clone(w.webSlots)}
}

func (w *liveWrites) halt() {
	close(w.stop)
	w.wg.Wait()
}

// stopped reports whether halt was called.
func (w *liveWrites) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// startLiveWrites starts the writers against ts, whose store st is a second
// handle on.
func startLiveWrites(t *testing.T, ts *testServer, st store.Store) *liveWrites {
	t.Helper()
	ctx := context.Background()
	user := func(email string) store.User {
		u, err := st.UserByEmail(ctx, email)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	tanaka, john := user("dr.tanaka@demo.bedside.test"), user("john.doe@demo.bedside.test")
	okafor, maria := user("dr.okafor@demo.bedside.test"), user("maria.silva@demo.bedside.test")
	_, hash := auth.NewToken()
	dev, err := st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: hash, UserID: john.ID, Name: "backup test hub", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	// The booking form's free slots of Dr Okafor, booked one by one.
	c := client(t)
	signIn(t, c, ts.URL, "scheduler@demo.bedside.test", ts.demoPassword(t, "scheduler@demo.bedside.test"))
	slots := freeSlots(t, c, ts.URL, okafor.ID)

	w := &liveWrites{stop: make(chan struct{})}
	base := time.Date(2031, 3, 3, 0, 0, 0, 0, time.UTC)
	// One goroutine, pausing between writes, so that the server's own
	// writes get their turn: SQLite's busy handler, which queues the writers
	// of two handles on one file, is not fair.
	w.wg.Go(func() {
		for i := int64(1); !w.stopped(); i++ {
			start := base.Add(time.Duration(i) * 15 * time.Minute)
			a, err := st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: tanaka.ID, PatientID: john.ID,
				Start: start, End: start.Add(15 * time.Minute), Status: scheduling.StatusBooked}, store.Change{})
			if err != nil {
				t.Errorf("book through the store: %v", err)
				return
			}
			w.mu.Lock()
			w.booked = append(w.booked, a.ID)
			w.mu.Unlock()
			o := store.Observation{PatientID: john.ID, DeviceID: dev.ID, Seq: i, Code: "8867-4", Value: 72, Unit: "/min",
				EffectiveAt: base.Add(time.Duration(i) * time.Second), ReceivedAt: time.Now()}
			if err := st.AppendObservations(ctx, dev.ID, i, []store.Observation{o}); err != nil {
				t.Errorf("append observation: %v", err)
				return
			}
			w.mu.Lock()
			w.seqs = append(w.seqs, i)
			w.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	})
	w.wg.Go(func() {
		for _, slot := range slots {
			if w.stopped() {
				return
			}
			resp, err := c.PostForm(ts.URL+"/appointments", url.Values{
				"physician": {strconv.FormatInt(okafor.ID, 10)}, "patient": {strconv.FormatInt(maria.ID, 10)}, "start": {slot}})
			if err != nil {
				t.Errorf("book through HTTP: %v", err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusConflict {
				continue // taken meanwhile (the slot passed, or bookFirstFree's)
			}
			if resp.StatusCode != http.StatusCreated {
				t.Errorf("book %s through HTTP: status %d", slot, resp.StatusCode)
				return
			}
			w.mu.Lock()
			w.webSlots = append(w.webSlots, slot)
			w.mu.Unlock()
		}
	})
	return w
}

// freeSlots lists the free slots the booking form offers for a physician,
// this week or, late in the week, next week.
func freeSlots(t *testing.T, c *http.Client, base string, physician int64) []string {
	t.Helper()
	_, body := get(t, c, base+"/schedule?physician="+strconv.FormatInt(physician, 10))
	var slots []string
	for _, m := range freeSlotRE.FindAllStringSubmatch(body, -1) {
		slots = append(slots, m[1])
	}
	if len(slots) < 10 {
		if m := regexp.MustCompile(`week=(\d{4}-\d\d-\d\d)"[^>]*>Next week`).FindStringSubmatch(body); m != nil {
			_, body = get(t, c, base+"/schedule?physician="+strconv.FormatInt(physician, 10)+"&week="+m[1])
			for _, m := range freeSlotRE.FindAllStringSubmatch(body, -1) {
				slots = append(slots, m[1])
			}
		}
	}
	if len(slots) == 0 {
		t.Fatal("the booking form offers no free slot this week or next")
	}
	return slots
}

// waitFor waits until the writers have acknowledged n of each kind of write
// (fewer through HTTP if there are fewer free slots).
func (w *liveWrites) waitFor(t *testing.T, n, web int) liveWritesSnapshot {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := w.snapshot()
		if len(s.booked) >= n && len(s.seqs) >= n && len(s.webSlots) >= web {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s only %d bookings, %d observations and %d bookings through HTTP", len(s.booked), len(s.seqs), len(s.webSlots))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestBackupAndRestoreWhileWriting(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, nil)
	// A join link sent before the backup must still open after the restore:
	// links are derived from the server key, which the backup carries.
	link := bookFirstFree(t, ts)
	password := ts.demoPassword(t, "scheduler@demo.bedside.test")
	key, err := os.ReadFile(filepath.Join(ts.Data, secretFile))
	if err != nil {
		t.Fatal(err)
	}

	st, err := sqlite.Open(ctx, filepath.Join(ts.Data, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := startLiveWrites(t, ts, st)
	defer func() {
		if !w.stopped() {
			w.halt()
		}
	}()
	before := w.waitFor(t, 30, 5)

	out := filepath.Join(t.TempDir(), "backups", "monday")
	printed := ts.cli(t, "", "backup", "--out", out)
	during := w.snapshot()
	// The server kept serving: its writers carried on, and it answers.
	if status, _ := get(t, client(t), ts.URL+"/readyz"); status != http.StatusOK {
		t.Fatalf("readyz after the backup: %d", status)
	}
	w.halt()
	t.Logf("bedside backup printed:\n%s(acknowledged before it: %d/%d/%d writes; by its end: %d/%d/%d)", printed,
		len(before.booked), len(before.seqs), len(before.webSlots), len(during.booked), len(during.seqs), len(during.webSlots))
	if !regexp.MustCompile(`(?s)backup written to ` + regexp.QuoteMeta(out) + ` in [0-9.]+[µm]?s:\n  bedside\.db +\d+ bytes\n  secret\.key +64 bytes\n`).MatchString(printed) {
		t.Errorf("backup output lacks the folder, the sizes or the time:\n%s", printed)
	}
	if m := mode(t, out); m != 0o700 {
		t.Errorf("backup folder mode %o, want 700", m)
	}
	for _, f := range []string{dbFile, secretFile} {
		if m := mode(t, filepath.Join(out, f)); m != 0o600 {
			t.Errorf("backup %s mode %o, want 600", f, m)
		}
	}

	// A backup never overwrites, and a restore never runs under a server.
	if _, err := ts.cliErr(t, "", "backup", "--out", out); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("backup into an existing folder: %v", err)
	}
	if _, err := ts.cliErr(t, "", "restore", "--from", out); err == nil || !strings.Contains(err.Error(), ts.Data) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("restore under a running server: %v, want an error naming %s", err, ts.Data)
	}

	// Restore into a new folder, twice: the second keeps the first aside.
	restored := filepath.Join(t.TempDir(), "restored")
	rs := &testServer{Data: restored, env: map[string]string{"BEDSIDE_DATA": restored}}
	printed = rs.cli(t, "", "restore", "--from", out)
	if !strings.Contains(printed, "restored "+filepath.Join(restored, dbFile)) {
		t.Errorf("restore printed:\n%s", printed)
	}
	printed = rs.cli(t, "", "restore", "--from", out)
	aside := regexp.MustCompile(`kept as (\S+before-restore-\S+)`).FindStringSubmatch(printed)
	if aside == nil {
		t.Fatalf("a restore over a database does not say where the old one went:\n%s", printed)
	}
	if _, err := sqlite.Check(ctx, aside[1]); err != nil {
		t.Errorf("the database set aside: %v", err)
	}
	if m := mode(t, restored); m != 0o700 {
		t.Errorf("restored folder mode %o, want 700", m)
	}
	for _, f := range []string{dbFile, secretFile} {
		if m := mode(t, filepath.Join(restored, f)); m != 0o600 {
			t.Errorf("restored %s mode %o, want 600", f, m)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(restored, secretFile)); !bytes.Equal(got, key) {
		t.Error("the restored server key differs from the original")
	}

	// A damaged backup is refused and changes nothing.
	bad := filepath.Join(t.TempDir(), "bad")
	os.Mkdir(bad, 0o700)
	os.WriteFile(filepath.Join(bad, dbFile), bytes.Repeat([]byte("garbage "), 2000), 0o600)
	if _, err := rs.cliErr(t, "", "restore", "--from", bad); err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("restore of a damaged backup: %v", err)
	}

	// Everything acknowledged before the backup began is in the restored
	// store, which passes its integrity check.
	if _, err := sqlite.Check(ctx, filepath.Join(restored, dbFile)); err != nil {
		t.Fatal(err)
	}
	rst, err := sqlite.Open(ctx, filepath.Join(restored, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range before.booked {
		if _, err := rst.AppointmentByID(ctx, id); err != nil {
			t.Fatalf("appointment %d, acknowledged before the backup, is not restored: %v", id, err)
		}
	}
	john, _ := rst.UserByEmail(ctx, "john.doe@demo.bedside.test")
	obs, err := rst.ObservationsBetween(ctx, john.ID, time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	have := map[int64]bool{}
	for _, o := range obs {
		have[o.Seq] = true
	}
	for _, s := range before.seqs {
		if !have[s] {
			t.Fatalf("observation %d, acknowledged before the backup, is not restored", s)
		}
	}
	okafor, _ := rst.UserByEmail(ctx, "dr.okafor@demo.bedside.test")
	for _, slot := range before.webSlots {
		start, _ := time.Parse(time.RFC3339, slot)
		if as, err := rst.AppointmentsBetween(ctx, okafor.ID, 0, start, start.Add(time.Second)); err != nil || len(as) != 1 {
			t.Fatalf("the visit booked through HTTP at %s before the backup is not restored: %v %v", slot, as, err)
		}
	}
	rst.Close()

	// A server on the restored folder serves it: the scheduler signs in with
	// the same password, and the join link sent before the backup opens.
	rs2 := startServer(t, map[string]string{"BEDSIDE_DATA": restored})
	signIn(t, client(t), rs2.URL, "scheduler@demo.bedside.test", password)
	resp, err := client(t).Get(strings.Replace(link, ts.URL, rs2.URL, 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/visit/") {
		t.Fatalf("join link after restore: %d %q, want 303 to /visit/", resp.StatusCode, loc)
	}
}

func TestBackupAndRestoreNeedAStore(t *testing.T) {
	ts := &testServer{Data: filepath.Join(t.TempDir(), "empty")}
	ts.env = map[string]string{"BEDSIDE_DATA": ts.Data}
	if _, err := ts.cliErr(t, "", "backup", "--out", filepath.Join(t.TempDir(), "b")); err == nil || !strings.Contains(err.Error(), "no database") {
		t.Errorf("backup of a folder without a store: %v", err)
	}
	if _, err := os.Stat(ts.Data); !os.IsNotExist(err) {
		t.Errorf("backup created the data folder it was to copy: %v", err)
	}
	if _, err := ts.cliErr(t, "", "backup"); err == nil || !strings.Contains(err.Error(), "--out") {
		t.Errorf("backup without --out: %v", err)
	}
	if _, err := ts.cliErr(t, "", "restore", "--from", t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a backup") {
		t.Errorf("restore from a folder that is not a backup: %v", err)
	}
}

func TestBackupOfPostgresPointsToPgDump(t *testing.T) {
	ts := &testServer{Data: t.TempDir()}
	ts.env = map[string]string{"BEDSIDE_DATA": ts.Data, "DATABASE_URL": "postgres://bedside:s3cret-pw@db.example:5432/bedside?sslmode=require"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"backup", "--out", filepath.Join(ts.Data, "b")}, "pg_dump --format=custom --file=bedside.dump 'postgres://bedside@db.example:5432/bedside?sslmode=require'"},
		{[]string{"restore", "--from", filepath.Join(ts.Data, "b")}, "pg_restore --clean --if-exists --dbname='postgres://bedside@db.example:5432/bedside?sslmode=require' bedside.dump"},
	} {
		_, err := ts.cliErr(t, "", tc.args...)
		cmd, want := tc.args[0], tc.want
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s with PostgreSQL: %v, want an error with %q and no password", cmd, err, want)
		}
	}
}

func TestRestoreKeepsTheWriteAheadLogWithItsDatabase(t *testing.T) {
	ctx := context.Background()
	// A data folder as a crash leaves it: bedside.db with commits still
	// in bedside.db-wal.
	live, crashed := t.TempDir(), t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(live, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, store.User{Email: "before-crash@example.org", Name: "Before", Role: store.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(filepath.Join(live, dbFile+suffix))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(crashed, dbFile+suffix), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	// A backup of another store, without a key (as with BEDSIDE_SECRET).
	other, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), dbFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.CreateUser(ctx, store.User{Email: "in-backup@example.org", Name: "Backed up", Role: store.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	from := t.TempDir()
	if err := other.Backup(ctx, filepath.Join(from, dbFile)); err != nil {
		t.Fatal(err)
	}
	other.Close()

	ts := &testServer{Data: crashed, env: map[string]string{"BEDSIDE_DATA": crashed}}
	printed := ts.cli(t, "", "restore", "--from", from)
	if !strings.Contains(printed, "holds no secret.key") {
		t.Errorf("restore without a key in the backup printed:\n%s", printed)
	}
	if _, err := os.Stat(filepath.Join(crashed, dbFile+"-wal")); !os.IsNotExist(err) {
		t.Fatalf("the old write-ahead log was left beside the restored database: %v", err)
	}
	m := regexp.MustCompile(`kept as (\S+)`).FindStringSubmatch(printed)
	if m == nil {
		t.Fatalf("restore does not say where the old database went:\n%s", printed)
	}
	for path, email := range map[string]string{m[1]: "before-crash@example.org", filepath.Join(crashed, dbFile): "in-backup@example.org"} {
		db, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.UserByEmail(ctx, email); err != nil {
			t.Errorf("%s lacks %s: %v", path, email, err)
		}
		db.Close()
	}
}
