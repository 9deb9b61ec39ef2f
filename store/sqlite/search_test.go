package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

// TestSearchByMinuteMatchesScan: a patient's (or device's) search by
// code, which walks only the minutes observation_minutes lists, selects,
// counts and pages exactly what one condition over the table does: many
// codes, dense and sparse, ranges on and off minute edges (before 1970
// too, where the minutes' division truncates toward zero), panels, the
// device filter and pages across minutes. So does the search of the same
// readings partly in packs, against them all in rows.
func TestSearchByMinuteMatchesScan(t *testing.T) {
	ctx := context.Background()
	db := openAt(t, filepath.Join(t.TempDir(), "bedside.db"))
	user := func(name string) int64 {
		u, err := db.CreateUser(ctx, store.User{Email: name + "@example.org", Name: name, Role: store.RolePatient})
		if err != nil {
			t.Fatal(err)
		}
		return u.ID
	}
	p, other := user("p"), user("other")
	device := func(patient int64, name string) int64 {
		c, err := db.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte(name), UserID: patient, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	d1, d2, d3 := device(p, "d1"), device(p, "d2"), device(other, "d3")
	const hr, spo2, rr, temp = "8867-4", "59408-5", "9279-1", "8310-5"
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	seqs := map[int64]int64{}
	// commit stores readings of a device (0: by hand) at offsets from
	// base; a panel is a systolic and a diastolic reading of one sequence.
	commit := func(dev, patient int64, base time.Time, codes []string, at ...time.Duration) {
		t.Helper()
		var obs []store.Observation
		for _, a := range at {
			var seq int64
			if dev != 0 {
				seqs[dev]++
				seq = seqs[dev]
			}
			for _, c := range codes {
				obs = append(obs, store.Observation{PatientID: patient, Seq: seq, Code: c, Value: float64(len(obs)), Unit: "u", EffectiveAt: base.Add(a)})
			}
		}
		each, err := db.commitAppends(ctx, []appendReq{{dev, seqs[dev], obs}})
		if err != nil || each[0] != nil {
			t.Fatal(err, each)
		}
	}
	panel := []string{store.CodeSystolic, store.CodeDiastolic}
	ms := time.Millisecond
	// The dense codes, every second for ten minutes, the second half
	// stored before the first so that IDs do not follow time.
	var first, second []time.Duration
	for s := range 600 {
		if s < 300 {
			first = append(first, time.Duration(s)*time.Second)
		} else {
			second = append(second, time.Duration(s)*time.Second)
		}
	}
	commit(d1, p, t0, []string{hr, spo2, rr}, second...)
	commit(d1, p, t0, []string{hr, spo2, rr}, first...)
	unpack(t, db) // those as rows, stored before packs; the rest packs
	// Panels on minute edges, two devices' at one time, and by hand.
	commit(d1, p, t0, panel, 60*time.Second-ms, 60*time.Second, 125500*ms, 300*time.Second-ms, 599*time.Second)
	commit(d2, p, t0, panel, 60*time.Second, 61*time.Second)
	commit(d2, p, t0, []string{store.CodeDiastolic}, 180*time.Second, 60*time.Second)
	commit(0, p, t0, panel, 400*time.Second, 60*time.Second)
	commit(0, p, t0, []string{temp}, 0, 59999*ms, 60*time.Second, 60001*ms, 3*time.Hour)
	// Before 1970, around the minute of zero, which is two minutes long.
	epoch := time.UnixMilli(0).UTC()
	commit(0, p, epoch, []string{temp, store.CodeSystolic}, -121*time.Second, -61*time.Second, -60*time.Second, -59999*ms, -ms, ms, 30*time.Second, 59999*ms, 60*time.Second)
	// Another patient's, at the same times.
	commit(d3, other, t0, []string{hr, store.CodeSystolic}, 0, 60*time.Second, 61*time.Second)
	commit(0, other, t0, []string{temp}, 60*time.Second)

	rows := unpacked(t, db)
	codeSets := [][]string{
		{store.CodeSystolic}, {store.CodeDiastolic}, panel, {temp}, {hr},
		{hr, store.CodeSystolic}, {temp, store.CodeDiastolic, rr}, {"none"}, {"none", temp},
	}
	type who struct{ patient, device int64 }
	whos := []who{{p, 0}, {0, d1}, {0, d2}, {p, d2}, {p, d3}, {other, 0}, {0, d3}}
	type span struct{ from, to time.Time }
	var zero time.Time
	spans := []span{
		{zero, zero},
		{t0.Add(60 * time.Second), zero},
		{zero, t0.Add(60 * time.Second)},
		{t0.Add(60 * time.Second), t0.Add(120 * time.Second)},
		{t0.Add(60*time.Second - ms), t0.Add(60*time.Second + ms)},
		{t0.Add(59999 * ms), t0.Add(300*time.Second - ms)},
		{t0.Add(125 * time.Second), t0.Add(126 * time.Second)},
		{t0.Add(time.Minute), t0.Add(time.Minute)},
		{t0.Add(2 * time.Minute), t0.Add(time.Minute)},
		{epoch.Add(-61 * time.Second), epoch.Add(60 * time.Second)},
		{epoch.Add(-60 * time.Second), epoch.Add(ms)},
		{epoch.Add(-59999 * ms), epoch.Add(59999 * ms)},
		{zero, epoch.Add(-60 * time.Second)},
	}
	pages := [][2]int{{0, 0}, {1, 0}, {3, 2}, {2, 5}, {10, 5}, {20, 3}, {50, 100}, {7, 1790}, {100, 10000}, {0, -1}}
	// The race detector makes each search many times slower, and this test
	// runs on one goroutine: under it, one combination in sixteen is tried
	// (a rotation that still reaches every page shape), and .ci/run runs
	// every combination on a normal build.
	every := 1
	if raceEnabled {
		every = 16
	}
	searches, nonEmpty, paged, combination := 0, 0, 0, 0
	for _, codes := range codeSets {
		for _, w := range whos {
			for _, sp := range spans {
				for _, panels := range []bool{false, true} {
					for _, pg := range pages {
						if combination++; combination%every != 0 {
							continue
						}
						q := store.ObservationQuery{PatientID: w.patient, DeviceID: w.device, Codes: codes,
							From: sp.from, To: sp.to, Panels: panels, Limit: pg[0], Offset: pg[1]}
						name := fmt.Sprintf("%+v", q)
						want, wantTotal, err := rows.searchAll(ctx, q)
						if err != nil {
							t.Fatal(name, err)
						}
						for _, st := range []*DB{rows, db} {
							got, total, err := st.SearchObservations(ctx, q)
							if err != nil {
								t.Fatal(name, err)
							}
							if total != wantTotal || len(got) != len(want) || (len(got) > 0 && !reflect.DeepEqual(got, want)) {
								t.Fatalf("%s (packs: %v): %d of %d, want %d of %d:\ngot  %v\nwant %v", name, st == db, len(got), total, len(want), wantTotal, ids(got), ids(want))
							}
						}
						searches++
						if len(want) > 0 {
							nonEmpty++
							if pg[1] > 0 && len(want) > 1 && wantTotal > len(want) {
								paged++
							}
						}
					}
				}
			}
		}
	}
	// The cases must select something, and page, for the comparison to say much.
	if nonEmpty < searches/10 || paged < 100/every {
		t.Fatalf("%d searches, %d select readings, %d middle pages", searches, nonEmpty, paged)
	}
	t.Logf("%d searches, %d select readings, %d middle pages", searches, nonEmpty, paged)
}

// ids lists the IDs of observations.
func ids(obs []store.Observation) []int64 {
	var out []int64
	for _, o := range obs {
		out = append(out, o.ID)
	}
	return out
}
