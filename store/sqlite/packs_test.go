package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

// unpack moves every pack of db into rows of observations, each reading
// keeping its ID: the layout of a store's readings from before packs.
func unpack(t testing.TB, db *DB) {
	t.Helper()
	ctx := context.Background()
	var obs []store.Observation
	r := db.packReader(ctx, db.r)
	rows, err := db.w.QueryContext(ctx, `SELECT `+packCols+` FROM observation_packs ORDER BY id`)
	err = eachPack(rows, err, func(p *pack) (bool, error) {
		var err error
		obs, err = decodePack(obs, p, r)
		return true, err
	})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, o := range obs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO observations (id, patient_id, device_id, seq, code, value, unit, effective_at, received_at, flags, relayed_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, o.ID, o.PatientID, o.DeviceID, o.Seq, o.Code, o.Value, o.Unit,
			ms(o.EffectiveAt), ms(o.ReceivedAt), store.JoinFlags(o.Flags), o.Relayed); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM observation_packs`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// unpacked is a copy of db with its packs unpacked into rows, whose
// readers read the rows alone, as they did before packs.
func unpacked(t testing.TB, db *DB) *DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "unpacked.db")
	if err := db.Backup(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	c := openAt(t, path)
	unpack(t, c)
	return c
}

// TestPackRoundTrip: what appendPack and appendCodes encode decodes to
// the same readings, special values and all, and every truncation of
// either is an error, never a reading made up.
func TestPackRoundTrip(t *testing.T) {
	first := time.Date(2026, 12, 7, 9, 30, 0, 0, time.UTC)
	obs := []store.Observation{
		{Seq: 7, Code: "8867-4", Value: 72, Unit: "/min", EffectiveAt: first.Add(900 * time.Millisecond), ReceivedAt: first.Add(2 * time.Second)},
		{Seq: 7, Code: "59408-5", Value: 97.5, Unit: "%", EffectiveAt: first, ReceivedAt: first.Add(2 * time.Second), Flags: []string{"motion", "poor contact"}},
		{Seq: 8, Code: "8867-4", Value: -0.0, Unit: "/min", EffectiveAt: first.Add(59999 * time.Millisecond), ReceivedAt: first.Add(-time.Hour)},
		{Seq: 0, Code: "", Value: math.MaxFloat64, Unit: "", EffectiveAt: first, ReceivedAt: first.Add(2 * time.Second)},
		{Seq: -3, Code: "8310-5", Value: math.SmallestNonzeroFloat64, Unit: "Cel", EffectiveAt: first.Add(time.Second), ReceivedAt: first},
	}
	p := &pack{id: 100, patient: 4, device: 5, relayed: 6, codesID: 9, receivedAt: ms(first.Add(2 * time.Second)), firstAt: ms(first), lastAt: ms(first) + 59999, n: len(obs)}
	codes := packCodes(nil, obs)
	set := appendCodes(nil, codes)
	if back, err := decodeCodes(set); err != nil || !reflect.DeepEqual(back, codes) {
		t.Fatalf("codes %+v decode as %+v, %v", codes, back, err)
	}
	if countCodes(codes, nil) != 5 || countCodes(codes, []string{"8867-4"}) != 2 || countCodes(codes, []string{"8310-5", "none"}) != 1 || !hasCode(codes, "59408-5") || hasCode(codes, "x") {
		t.Errorf("codes %+v", codes)
	}
	for cut := range len(set) {
		if _, err := decodeCodes(set[:cut]); !errors.Is(err, errPack) {
			t.Errorf("codes cut to %d of %d bytes: %v, want errPack", cut, len(set), err)
		}
	}
	var flagged bool
	p.readings, flagged = appendPack(nil, obs, codes, p.firstAt, p.receivedAt)
	if !flagged {
		t.Error("a pack with a flagged reading is not flagged")
	}
	r := &packReader{sets: func(id int64) ([]packCode, error) {
		if id != 9 {
			return nil, fmt.Errorf("codes %d", id)
		}
		return codes, nil
	}}
	got, err := decodePack(nil, p, r)
	if err != nil {
		t.Fatal(err)
	}
	for i := range obs {
		w := obs[i]
		w.ID, w.PatientID, w.DeviceID, w.Relayed = 100+int64(i), 4, 5, 6
		if !reflect.DeepEqual(got[i], w) || math.Signbit(got[i].Value) != math.Signbit(w.Value) {
			t.Errorf("reading %d decodes as\n%+v\nwant\n%+v", i, got[i], w)
		}
	}
	full := p.readings
	for cut := range len(full) {
		p.readings = full[:cut]
		if _, err := decodePack(nil, p, r); !errors.Is(err, errPack) {
			t.Errorf("cut to %d of %d bytes: %v, want errPack", cut, len(full), err)
		}
	}
	p.readings = append(slices.Clip(full), 0)
	if _, err := decodePack(nil, p, r); !errors.Is(err, errPack) {
		t.Errorf("a byte after the readings: %v, want errPack", err)
	}
	p.readings, p.lastAt = full, p.lastAt-1
	if _, err := decodePack(nil, p, r); !errors.Is(err, errPack) {
		t.Errorf("a reading after the pack's last: %v, want errPack", err)
	}
}

// FuzzDecodePack: any pack's codes and readings either decode or are
// errPack, and what decodes encodes back to the same readings.
func FuzzDecodePack(f *testing.F) {
	first := time.UnixMilli(1_780_000_000_000).UTC()
	obs := []store.Observation{
		{Seq: 1, Code: "8867-4", Value: 70, Unit: "/min", EffectiveAt: first, ReceivedAt: first},
		{Seq: 1, Code: "8480-6", Value: 120, Unit: "mm[Hg]", EffectiveAt: first.Add(time.Second), ReceivedAt: first, Flags: []string{"cuff too loose"}},
	}
	codes := packCodes(nil, obs)
	seed, _ := appendPack(nil, obs, codes, ms(first), ms(first))
	f.Add(appendCodes(nil, codes), seed, 2, int64(1000))
	f.Add([]byte{1, 0, 1}, []byte{packVersion, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 1, int64(0))
	f.Fuzz(func(t *testing.T, set, b []byte, n int, span int64) {
		codes, err := decodeCodes(set)
		if err != nil {
			if !errors.Is(err, errPack) {
				t.Fatalf("codes: %v, not errPack", err)
			}
			return
		}
		p := &pack{id: 1, firstAt: ms(first), lastAt: ms(first) + span%minuteMillis, n: n, readings: b}
		r := &packReader{sets: func(int64) ([]packCode, error) { return codes, nil }}
		got, err := decodePack(nil, p, r)
		if err != nil {
			if !errors.Is(err, errPack) {
				t.Fatalf("%v, not errPack", err)
			}
			return
		}
		if len(got) != n {
			t.Fatalf("%d readings of a pack of %d", len(got), n)
		}
		for _, o := range got {
			if e := ms(o.EffectiveAt); e < p.firstAt || e > p.lastAt {
				t.Fatalf("a reading at %d outside the pack's [%d, %d]", e, p.firstAt, p.lastAt)
			}
		}
		// Encoded again, the readings decode the same, their flags as
		// the store joins them.
		again := &pack{id: 1, firstAt: p.firstAt, lastAt: p.lastAt, n: n}
		again.readings, _ = appendPack(nil, got, codes, p.firstAt, p.receivedAt)
		back, err := decodePack(nil, again, r)
		for i := range got {
			got[i].Flags = store.SplitFlags(store.JoinFlags(got[i].Flags)) // as a store writes them
		}
		if err != nil || !reflect.DeepEqual(stripNaN(back), stripNaN(got)) {
			t.Fatalf("encoded again: %v\n%+v\nwant\n%+v", err, back, got)
		}
	})
}

// stripNaN makes NaN values comparable (a pack stores none, but a fuzzed
// value may hold one).
func stripNaN(obs []store.Observation) []store.Observation {
	for i := range obs {
		if math.IsNaN(obs[i].Value) {
			obs[i].Value = -1
		}
	}
	return obs
}

// TestRowsAndPacksReadAlike: a store whose readings are partly rows
// (stored before packs) and partly packs, interleaved in time, reads back
// in every way exactly as the same readings all in rows, IDs and all:
// by ID, between times, searched and paged, and sampled. The readings
// come from several devices and relayed devices, out of time order, with
// flags, panels, and around minute edges (before 1970 too).
func TestRowsAndPacksReadAlike(t *testing.T) {
	ctx := context.Background()
	db := openAt(t, filepath.Join(t.TempDir(), "bedside.db"))
	var patients []int64
	for i := range 2 {
		u, err := db.CreateUser(ctx, store.User{Email: fmt.Sprintf("p%d@example.org", i), Name: "P", Role: store.RolePatient})
		if err != nil {
			t.Fatal(err)
		}
		patients = append(patients, u.ID)
	}
	type dev struct{ id, patient, seq int64 }
	var devs []*dev
	for i := range 3 {
		p := patients[i%2]
		c, err := db.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: fmt.Appendf(nil, "d%d", i), UserID: p, Name: "dev"})
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, &dev{id: c.ID, patient: p})
	}
	var relayed []int64
	for _, name := range []string{"strap", "cuff"} {
		rd, err := db.RelayedDevice(ctx, devs[0].id, name)
		if err != nil {
			t.Fatal(err)
		}
		relayed = append(relayed, rd.ID)
	}
	rng := rand.New(rand.NewPCG(5, 7))
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	codes := []string{"8867-4", "59408-5", "9279-1", "8310-5"}
	// commit stores a device's readings of the seconds from..to (a second
	// each, a panel at some) in one commit of one call a second.
	commit := func(base time.Time, from, to int) {
		for _, d := range devs {
			var batch []appendReq
			for s := from; s < to; s++ {
				d.seq++
				var obs []store.Observation
				at := base.Add(time.Duration(s)*time.Second + time.Duration(rng.IntN(1000))*time.Millisecond)
				for _, c := range codes[:1+rng.IntN(len(codes))] {
					o := store.Observation{PatientID: d.patient, Seq: d.seq, Code: c, Value: float64(rng.IntN(100)), Unit: "u", EffectiveAt: at.Add(-time.Duration(rng.IntN(3)) * time.Second)}
					if rng.IntN(20) == 0 {
						o.Flags = []string{"motion"}
					}
					if d == devs[0] && rng.IntN(3) > 0 {
						o.Relayed = relayed[rng.IntN(2)]
					}
					obs = append(obs, o)
				}
				if rng.IntN(30) == 0 {
					obs = append(obs, store.Observation{PatientID: d.patient, Seq: d.seq, Code: store.CodeSystolic, Value: 120, Unit: "mm[Hg]", EffectiveAt: at},
						store.Observation{PatientID: d.patient, Seq: d.seq, Code: store.CodeDiastolic, Value: 80, Unit: "mm[Hg]", EffectiveAt: at})
				}
				batch = append(batch, appendReq{d.id, d.seq, obs})
			}
			each, err := db.commitAppends(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range each {
				if e != nil {
					t.Fatal(e)
				}
			}
		}
		// Readings by hand, panels of several calls among them.
		hand := []store.Observation{{PatientID: patients[0], Code: "8310-5", Value: 37, Unit: "Cel", EffectiveAt: base.Add(time.Duration(from) * time.Second)}}
		if _, err := db.commitAppends(ctx, []appendReq{{0, 0, hand}}); err != nil {
			t.Fatal(err)
		}
	}
	epoch := time.UnixMilli(0).UTC()
	commit(t0, 0, 200)
	commit(epoch, -150, -30)
	unpack(t, db) // the readings so far were stored as rows
	commit(t0, 150, 400)
	commit(epoch, -60, 90)
	commit(t0, 100, 130) // late readings, in minutes of rows
	// Two packs with a reading of one code at one time: the sample's
	// latest is the later ID's, though the other pack, of more readings,
	// comes first in the index at that time.
	tie := t0.Add(450*time.Second + 250*time.Millisecond) // after the others
	for i, codes := range [][]string{{"8867-4", "59408-5", "9279-1"}, {"8867-4"}} {
		d := devs[2*i]
		d.seq++
		var obs []store.Observation
		for _, c := range codes {
			obs = append(obs, store.Observation{PatientID: d.patient, Seq: d.seq, Code: c, Value: float64(i), Unit: "u", EffectiveAt: tie})
		}
		if each, err := db.commitAppends(ctx, []appendReq{{d.id, d.seq, obs}}); err != nil || each[0] != nil {
			t.Fatal(err, each)
		}
	}
	var rows, packs int
	if err := db.r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM observations), (SELECT count(*) FROM observation_packs)`).Scan(&rows, &packs); err != nil || rows < 1000 || packs < 500 {
		t.Fatalf("%d rows and %d packs, %v", rows, packs, err)
	}
	want := unpacked(t, db)
	// The race detector makes each read many times slower, and this test
	// runs on one goroutine: under it, one case in eight is tried (a
	// rotation that still reaches every kind), and .ci/run runs every case
	// on a normal build.
	every, tried := 1, 0
	if raceEnabled {
		every = 8
	}
	try := func() bool { tried++; return tried%every == 0 }

	// Every reading by ID, and one ID past the last.
	all, err := want.ObservationsBetween(ctx, patients[0], epoch.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range all {
		if !try() {
			continue
		}
		got, err := db.ObservationByID(ctx, o.ID)
		if err != nil || !reflect.DeepEqual(got, o) {
			t.Fatalf("reading %d: %+v, %v; want %+v", o.ID, got, err, o)
		}
	}
	var last int64
	if err := db.r.QueryRowContext(ctx, `SELECT max(id + n) FROM observation_packs`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ObservationByID(ctx, last); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("reading %d, after the last: %v, want ErrNotFound", last, err)
	}

	ranges := [][2]time.Time{
		{t0, t0.Add(time.Hour)},
		{t0.Add(90 * time.Second), t0.Add(180 * time.Second)},
		{t0.Add(119999 * time.Millisecond), t0.Add(120001 * time.Millisecond)},
		{t0.Add(160500 * time.Millisecond), t0.Add(170 * time.Second)},
		{t0.Add(155 * time.Second), t0.Add(156 * time.Second)},
		{epoch.Add(-70 * time.Second), epoch.Add(70 * time.Second)},
		{epoch.Add(-60 * time.Second), epoch.Add(time.Millisecond)},
		{epoch.Add(-time.Hour), t0.Add(time.Hour)},
	}
	for _, p := range patients {
		for _, rg := range ranges {
			name := fmt.Sprintf("patient %d [%v, %v)", p, rg[0], rg[1])
			g, err1 := db.ObservationsBetween(ctx, p, rg[0], rg[1])
			w, err2 := want.ObservationsBetween(ctx, p, rg[0], rg[1])
			if err1 != nil || err2 != nil || !reflect.DeepEqual(g, w) {
				t.Fatalf("%s: between: %d readings (%v), want %d (%v)", name, len(g), err1, len(w), err2)
			}
			for _, span := range []time.Duration{time.Millisecond, 700 * time.Millisecond, 10 * time.Second, time.Minute, 7 * time.Minute, time.Hour} {
				if rg[1].Sub(rg[0])/span > 10000 || !try() {
					continue // spans enough to take minutes, or not tried
				}
				g, gt, err1 := db.SampleObservations(ctx, p, rg[0], rg[1], span)
				w, wt, err2 := want.SampleObservations(ctx, p, rg[0], rg[1], span)
				if err1 != nil || err2 != nil || gt != wt || !reflect.DeepEqual(g, w) {
					t.Fatalf("%s: sample every %v: %d of %d (%v), want %d of %d (%v):\ngot  %v\nwant %v", name, span, len(g), gt, err1, len(w), wt, err2, ids(g), ids(w))
				}
			}
		}
	}

	// Searches: every filter, pages across minutes and across rows and packs.
	var zero time.Time
	searched, selected := 0, 0
	for _, q := range []store.ObservationQuery{
		{PatientID: patients[0]},
		{PatientID: patients[1], Codes: []string{"9279-1"}},
		{PatientID: patients[0], Codes: []string{store.CodeSystolic, store.CodeDiastolic}, Panels: true},
		{PatientID: patients[0], Codes: []string{store.CodeDiastolic, "8310-5"}, Panels: true},
		{PatientID: patients[0], Panels: true},
		{DeviceID: devs[0].id, Relayed: store.NotRelayed},
		{DeviceID: devs[0].id, Relayed: relayed[1], Codes: []string{"8867-4"}},
		{PatientID: patients[0], DeviceID: devs[1].id},
		{PatientID: patients[1], DeviceID: devs[1].id, Codes: []string{"8867-4", "8310-5"}},
		{Codes: []string{"59408-5"}},
		{Relayed: relayed[0]},
		{},
	} {
		for _, rg := range append(ranges, [2]time.Time{zero, zero}, [2]time.Time{t0.Add(170 * time.Second), zero}) {
			for _, pg := range [][2]int{{0, 0}, {7, 3}, {100, 250}, {1000, 1}, {50, 100000}} {
				if !try() {
					continue
				}
				q.From, q.To, q.Limit, q.Offset = rg[0], rg[1], pg[0], pg[1]
				g, gt, err1 := db.SearchObservations(ctx, q)
				w, wt, err2 := want.searchAll(ctx, q)
				if err1 != nil || err2 != nil || gt != wt || !reflect.DeepEqual(g, w) {
					t.Fatalf("%+v: %d of %d (%v), want %d of %d (%v):\ngot  %v\nwant %v", q, len(g), gt, err1, len(w), wt, err2, ids(g), ids(w))
				}
				searched++
				if len(w) > 0 {
					selected++
				}
			}
		}
	}
	if selected < searched/2 || searched < 500/every {
		t.Fatalf("%d of %d searches select readings", selected, searched)
	}
}

// TestAppendRefusesNaN: a reading that is not a number fails its own
// call and no other of the commit.
func TestAppendRefusesNaN(t *testing.T) {
	ctx := context.Background()
	db, p := withPatient(t)
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	reading := func(v float64) []store.Observation {
		return []store.Observation{{PatientID: p.ID, Code: "8867-4", Value: v, Unit: "/min", EffectiveAt: t0}}
	}
	each, err := db.commitAppends(ctx, []appendReq{{0, 0, reading(60)}, {0, 0, reading(math.NaN())}, {0, 0, reading(math.Inf(-1))}, {0, 0, reading(61)}})
	if err != nil || each[0] != nil || each[1] == nil || each[2] == nil || each[3] != nil {
		t.Fatalf("commit: %v, calls %v", err, each)
	}
	got, err := db.ObservationsBetween(ctx, p.ID, t0, t0.Add(time.Second))
	if err != nil || len(got) != 2 || got[0].Value != 60 || got[1].Value != 61 {
		t.Fatalf("stored %+v, %v; want 60 and 61", got, err)
	}
}

// packCodes lists the codes of obs, in the order they first come, in
// codes[:0]; obs has at most maxPackCodes.
func packCodes(codes []packCode, obs []store.Observation) []packCode {
	codes = codes[:0]
next:
	for _, o := range obs {
		for i := range codes {
			if codes[i].code == o.Code {
				codes[i].n++
				continue next
			}
		}
		codes = append(codes, packCode{o.Code, 1})
	}
	return codes
}

// TestFailedCommitLeavesNoPack: a commit that fails as a whole while
// inserting its packs leaves none of its readings to the next commit,
// though it failed with packs of its call not yet queued.
func TestFailedCommitLeavesNoPack(t *testing.T) {
	ctx := context.Background()
	db, p := withPatient(t)
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	// A reading in each of more minutes than one INSERT takes packs, the
	// first of no patient: the INSERT of the first packs fails.
	var obs []store.Observation
	for m := range insertRows + 6 {
		obs = append(obs, store.Observation{PatientID: p.ID, Code: "8867-4", Value: float64(m), Unit: "/min", EffectiveAt: t0.Add(time.Duration(m) * time.Minute)})
	}
	obs[0].PatientID = p.ID + 1000
	if _, err := db.commitAppends(ctx, []appendReq{{0, 0, obs}}); err == nil {
		t.Fatal("a reading of no patient was stored")
	}
	late := store.Observation{PatientID: p.ID, Code: "8867-4", Value: 1000, Unit: "/min", EffectiveAt: t0.Add(2 * time.Hour)}
	if each, err := db.commitAppends(ctx, []appendReq{{0, 0, []store.Observation{late}}}); err != nil || each[0] != nil {
		t.Fatal(err, each)
	}
	got, err := db.ObservationsBetween(ctx, p.ID, t0, t0.Add(3*time.Hour))
	if err != nil || len(got) != 1 || got[0].Value != 1000 {
		t.Fatalf("stored %d readings (%v), want the one of the second commit", len(got), err)
	}
}

// TestPackReadersHoldOneConnection: a reader of packs reads their codes
// through its own transaction, never waiting for another of the
// readers' connections while it holds one: with all but one of them
// held elsewhere, and no codes read yet, every reader still answers.
func TestPackReadersHoldOneConnection(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bedside.db")
	db := openAt(t, path)
	p, err := db.CreateUser(ctx, store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	obs := []store.Observation{{PatientID: p.ID, Code: "8867-4", Value: 70, Unit: "/min", EffectiveAt: t0}}
	if each, err := db.commitAppends(ctx, []appendReq{{0, 0, obs}}); err != nil || each[0] != nil {
		t.Fatal(err, each)
	}
	db.Close()
	db = openAt(t, path) // no codes read yet
	for range maxReaders - 1 {
		tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if got, err := db.ObservationsBetween(ctx, p.ID, t0, t0.Add(time.Second)); err != nil || len(got) != 1 {
		t.Fatalf("between: %d readings, %v", len(got), err)
	}
	db.sets = codeSets{}
	if _, total, err := db.SearchObservations(ctx, store.ObservationQuery{PatientID: p.ID, Codes: []string{"8867-4"}}); err != nil || total != 1 {
		t.Fatalf("search: %d readings, %v", total, err)
	}
	db.sets = codeSets{}
	if got, _, err := db.SampleObservations(ctx, p.ID, t0, t0.Add(time.Minute), time.Minute); err != nil || len(got) != 1 {
		t.Fatalf("sample: %d readings, %v", len(got), err)
	}
}
