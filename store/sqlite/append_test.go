package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

// TestCommitAppendsOneDeviceTwice: a commit reads its devices' LastSeq
// once and writes them back once; a device's second call in the same
// commit still sees what its first stored and advanced, an unknown
// device fails alone, and readings entered by hand are not numbered.
func TestCommitAppendsOneDeviceTwice(t *testing.T) {
	ctx := context.Background()
	db := openAt(t, filepath.Join(t.TempDir(), "bedside.db"))
	p, err := db.CreateUser(ctx, store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient})
	if err != nil {
		t.Fatal(err)
	}
	var devs [2]int64
	for i := range devs {
		c, err := db.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte{byte(i)}, UserID: p.ID, Name: "dev"})
		if err != nil {
			t.Fatal(err)
		}
		devs[i] = c.ID
	}
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	run := func(dev int64, from, to int64) appendReq {
		var obs []store.Observation
		for s := from; s <= to; s++ {
			obs = append(obs, store.Observation{PatientID: p.ID, Seq: s, Code: "8867-4", Value: float64(s), Unit: "/min", EffectiveAt: t0.Add(time.Duration(s) * time.Second)})
		}
		return appendReq{dev, to, obs}
	}
	a, b := devs[0], devs[1]
	byHand := appendReq{0, 0, []store.Observation{{PatientID: p.ID, Code: "8310-5", Value: 37, Unit: "Cel", EffectiveAt: t0}}}
	each, err := db.commitAppends(ctx, []appendReq{
		run(a, 1, 5),
		run(b, 1, 2),
		run(a, 4, 7), // 4 and 5 are resends of the first call
		{deviceID: b + 100, lastSeq: 1, obs: []store.Observation{{PatientID: p.ID, Seq: 1, Code: "8867-4", Unit: "/min", EffectiveAt: t0}}},
		run(a, 2, 3), // all resends, and no step back
		byHand,
		byHand, // not numbered: stored twice
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range each {
		if want := i == 3; (e != nil) != want || want && !errors.Is(e, store.ErrNotFound) {
			t.Errorf("call %d: %v", i, e)
		}
	}
	// A later commit sees the LastSeq the first wrote back.
	if each, err = db.commitAppends(ctx, []appendReq{run(a, 6, 8), run(b, 1, 1)}); err != nil || each[0] != nil || each[1] != nil {
		t.Fatal(err, each)
	}
	got, err := db.ObservationsBetween(ctx, p.ID, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	count := map[[2]int64]int{}
	for _, o := range got {
		count[[2]int64{o.DeviceID, o.Seq}]++
	}
	want := map[[2]int64]int{{0, 0}: 2, {b, 1}: 1, {b, 2}: 1}
	for s := int64(1); s <= 8; s++ {
		want[[2]int64{a, s}] = 1
	}
	if len(count) != len(want) || len(got) != 12 {
		t.Errorf("stored %d readings %v, want %v", len(got), count, want)
	}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("device %d seq %d stored %d times, want %d", k[0], k[1], count[k], n)
		}
	}
	for dev, want := range map[int64]int64{a: 8, b: 2} {
		c, err := db.CredentialByID(ctx, store.CredentialDevice, dev)
		if err != nil {
			t.Fatal(err)
		}
		if c.LastSeq != want {
			t.Errorf("device %d LastSeq %d, want %d", dev, c.LastSeq, want)
		}
	}
}

// TestSampleFindsCodesByMinute: the sample finds a patient's codes, and
// the spans with readings of each, through observation_minutes, which a
// commit fills only once it has committed: a commit that failed as a
// whole leaves the next one to record the minute.
func TestSampleFindsCodesByMinute(t *testing.T) {
	ctx := context.Background()
	db := openAt(t, filepath.Join(t.TempDir(), "bedside.db"))
	p, err := db.CreateUser(ctx, store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	reading := func(code string, at time.Duration, v float64) store.Observation {
		return store.Observation{PatientID: p.ID, Code: code, Value: v, Unit: "/min", EffectiveAt: t0.Add(at)}
	}
	commit := func(obs ...store.Observation) error {
		_, err := db.commitAppends(ctx, []appendReq{{0, 0, obs}})
		return err
	}
	// The second reading's patient is not one, which the table refuses:
	// the whole commit fails, the first reading's pack with it.
	stranger := reading("A", 90*time.Minute+10*time.Second, 1)
	stranger.PatientID = p.ID + 1000
	if err := commit(reading("A", 90*time.Minute, 1), stranger); err == nil {
		t.Fatal("a reading of no patient was stored")
	}
	for _, err := range []error{
		commit(reading("A", 90*time.Minute, 4)), // A's minute 90, which the failed commit did not store
		commit(reading("A", 10*time.Minute, 2), reading("B", 70*time.Minute, 3)),
		commit(reading("C", 150*time.Minute, 5)),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		from, to time.Duration
		want     []float64
	}{
		{0, 3 * time.Hour, []float64{2, 3, 4, 5}},
		{80 * time.Minute, 100 * time.Minute, []float64{4}},
		{60 * time.Minute, 120 * time.Minute, []float64{3, 4}},
		{100 * time.Minute, 140 * time.Minute, nil},
	} {
		got, total, err := db.SampleObservations(ctx, p.ID, t0.Add(c.from), t0.Add(c.to), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var values []float64
		for _, o := range got {
			values = append(values, o.Value)
		}
		if !slices.Equal(values, c.want) || total != len(c.want) {
			t.Errorf("sample of [%v, %v): %v of %d, want %v", c.from, c.to, values, total, c.want)
		}
	}
}

// TestMigrationByMinuteKeepsSamples: migration 0020 lists the codes and
// minutes of the readings already stored, so their samples are what they
// were.
func TestMigrationByMinuteKeepsSamples(t *testing.T) {
	ctx := context.Background()
	db := openAt(t, filepath.Join(t.TempDir(), "bedside.db"))
	var pats [2]int64
	for i := range pats {
		p, err := db.CreateUser(ctx, store.User{Email: fmt.Sprintf("p%d@example.org", i), Name: "P", Role: store.RolePatient})
		if err != nil {
			t.Fatal(err)
		}
		pats[i] = p.ID
	}
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	var obs []store.Observation
	for i, code := range []string{"8867-4", "59408-5", "8310-5"} {
		for m := range 200 {
			if m%(i+1) == 0 {
				obs = append(obs, store.Observation{PatientID: pats[m%2], Code: code, Value: float64(m), Unit: "u", EffectiveAt: t0.Add(time.Duration(m) * time.Minute)})
			}
		}
	}
	if err := db.AppendObservations(ctx, 0, 0, obs); err != nil {
		t.Fatal(err)
	}
	samples := func() (out []store.Observation) {
		for _, p := range pats {
			got, _, err := db.SampleObservations(ctx, p, t0.Add(30*time.Minute), t0.Add(170*time.Minute), 10*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, got...)
		}
		return out
	}
	want := samples()
	if len(want) < 60 {
		t.Fatalf("sample of %d readings", len(want))
	}
	unpack(t, db) // the readings, as rows stored before the migration
	// The schema before 0020, holding the same readings.
	if _, err := db.w.ExecContext(ctx, `DROP TABLE observation_minutes;
		DROP INDEX observations_patient;
		CREATE INDEX observations_patient ON observations(patient_id, effective_at);
		CREATE INDEX observations_patient_code ON observations(patient_id, code, effective_at);
		DELETE FROM schema_migrations WHERE name LIKE 'migrations/0020_%'`); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := samples(); !slices.EqualFunc(got, want, func(a, b store.Observation) bool { return a.ID == b.ID }) {
		t.Errorf("after the migration, the sample is %d readings, want %d", len(got), len(want))
	}
}

// TestCommitAppendsKeepsEveryValue: a commit's rows share the interface
// values of what they repeat (patient, device, time of receipt, codes and
// units), and a reading without flags is bound as NULL; every row must
// still come back as it was sent, with more distinct codes and units than
// are kept at once, and a LastSeq too large for a float comes back exact.
// Readings relayed from two Bluetooth devices, among some devices' own,
// go in statements of their own (more than one statement's worth): each
// comes back naming its device, the others none; their statements are
// prepared once a commit has such a reading, not before.
func TestCommitAppendsKeepsEveryValue(t *testing.T) {
	ctx := context.Background()
	db := openAt(t, filepath.Join(t.TempDir(), "bedside.db"))
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	received := t0.Add(time.Hour)
	const devices, perDevice = 6, 40
	var batch []appendReq
	want := map[int64][]store.Observation{} // by patient
	var ids []int64
	for d := range devices {
		p, err := db.CreateUser(ctx, store.User{Email: fmt.Sprintf("p%d@example.org", d), Name: "P", Role: store.RolePatient})
		if err != nil {
			t.Fatal(err)
		}
		c, err := db.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte{byte(d)}, UserID: p.ID, Name: "dev"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
		var relayed []int64
		if d >= 2 {
			for _, name := range []string{"Polar H10", "Nonin 3230"} {
				rd, err := db.RelayedDevice(ctx, c.ID, name)
				if err != nil {
					t.Fatal(err)
				}
				relayed = append(relayed, rd.ID)
			}
		}
		lastSeq := int64(1<<60 + d)
		var obs []store.Observation
		for i := range perDevice {
			o := store.Observation{
				PatientID:   p.ID,
				Seq:         lastSeq - perDevice + 1 + int64(i),
				Code:        fmt.Sprintf("code-%d", (i*7+d)%37),
				Value:       float64(i) + 0.1*float64(d),
				Unit:        fmt.Sprintf("unit-%d", (i*5+d)%23),
				EffectiveAt: t0.Add(time.Duration(i) * time.Second),
			}
			if i%3 == 0 {
				o.ReceivedAt = received.Add(time.Duration(d) * time.Millisecond)
			}
			if i%4 == 1 {
				o.Flags = []string{fmt.Sprintf("flag %d", i), "motion"}
			}
			if relayed != nil && i%2 == 0 {
				o.Relayed = relayed[i/2%2]
			}
			obs = append(obs, o)
			o.DeviceID = c.ID
			want[p.ID] = append(want[p.ID], o)
		}
		batch = append(batch, appendReq{c.ID, lastSeq, obs})
	}
	// The devices' own readings first, then the relays', in two commits.
	before := time.Now()
	for i, part := range [][]appendReq{batch[:2], batch[2:]} {
		each, err := db.commitAppends(ctx, part)
		if err != nil {
			t.Fatal(err)
		}
		for j, e := range each {
			if e != nil {
				t.Fatalf("commit %d call %d: %v", i, j, e)
			}
		}
	}
	for patient, sent := range want {
		got, err := db.ObservationsBetween(ctx, patient, t0, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(sent) {
			t.Fatalf("patient %d: %d readings stored, want %d", patient, len(got), len(sent))
		}
		for i, w := range sent {
			g := got[i]
			if w.ReceivedAt.IsZero() {
				if g.ReceivedAt.Before(before.Truncate(time.Millisecond)) || g.ReceivedAt.After(time.Now()) {
					t.Errorf("patient %d reading %d received at %v, want the commit's time", patient, i, g.ReceivedAt)
				}
				w.ReceivedAt = g.ReceivedAt
			}
			g.ID = 0
			if !g.EffectiveAt.Equal(w.EffectiveAt) || !g.ReceivedAt.Equal(w.ReceivedAt) {
				t.Errorf("patient %d reading %d times %v %v, want %v %v", patient, i, g.EffectiveAt, g.ReceivedAt, w.EffectiveAt, w.ReceivedAt)
			}
			g.EffectiveAt, g.ReceivedAt, w.EffectiveAt, w.ReceivedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			if fmt.Sprintf("%+v", g) != fmt.Sprintf("%+v", w) {
				t.Errorf("patient %d reading %d stored as\n%+v\nwant\n%+v", patient, i, g, w)
			}
		}
	}
	for d, id := range ids {
		c, err := db.CredentialByID(ctx, store.CredentialDevice, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(1<<60 + d); c.LastSeq != want {
			t.Errorf("device %d LastSeq %d, want %d", id, c.LastSeq, want)
		}
	}
}
