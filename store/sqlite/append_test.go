package sqlite

import (
	"context"
	"errors"
	"path/filepath"
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
