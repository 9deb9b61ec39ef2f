package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

func device(t *testing.T, st store.Store, patient int64, token string) store.Credential {
	t.Helper()
	c, err := st.CreateCredential(context.Background(), store.Credential{Kind: store.CredentialDevice, TokenHash: []byte(token), UserID: patient, Name: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func lastSeq(t *testing.T, st store.Store, token string) int64 {
	t.Helper()
	c, err := st.CredentialByHash(context.Background(), store.CredentialDevice, []byte(token))
	if err != nil {
		t.Fatal(err)
	}
	return c.LastSeq
}

func testObservations(t *testing.T, st store.Store) {
	ctx := context.Background()
	p := user(t, st, "p@example.org", store.RolePatient)
	other := user(t, st, "q@example.org", store.RolePatient)
	dev := device(t, st, p.ID, "dev")
	dev2 := device(t, st, p.ID, "dev2")
	t0 := odd(t)
	obs := func(dev int64, seq int64, code string, v float64) store.Observation {
		return store.Observation{PatientID: p.ID, DeviceID: dev, Seq: seq, Code: code, Value: v, Unit: "/min",
			EffectiveAt: t0.Add(time.Duration(seq) * time.Second), ReceivedAt: t0.Add(time.Minute)}
	}
	// One envelope may carry two readings (a blood-pressure panel): same seq, two codes.
	if err := st.AppendObservations(ctx, dev.ID, 2, []store.Observation{obs(dev.ID, 1, "8867-4", 70), obs(dev.ID, 2, "8480-6", 120), obs(dev.ID, 2, "8462-4", 80)}); err != nil {
		t.Fatal(err)
	}
	if n := lastSeq(t, st, "dev"); n != 2 {
		t.Fatalf("device last seq %d, want 2", n)
	}
	// A resend of seq 2 (twice in one batch) with seq 3 stores only seq 3,
	// which the device flagged.
	flagged := obs(dev.ID, 3, "8867-4", 71)
	flagged.Flags = []string{"poor skin contact", "sensor displaced"}
	if err := st.AppendObservations(ctx, dev.ID, 3, []store.Observation{obs(dev.ID, 2, "8480-6", 120), obs(dev.ID, 2, "8480-6", 120), flagged}); err != nil {
		t.Fatal(err)
	}
	// A lower lastSeq never moves the device back.
	if err := st.AppendObservations(ctx, dev.ID, 1, nil); err != nil {
		t.Fatal(err)
	}
	if n := lastSeq(t, st, "dev"); n != 3 {
		t.Fatalf("device last seq %d, want 3", n)
	}
	// Another device's seq 1 is its own; it does not advance the first device.
	if err := st.AppendObservations(ctx, dev2.ID, 1, []store.Observation{obs(dev2.ID, 1, "8867-4", 90)}); err != nil {
		t.Fatal(err)
	}
	if n := lastSeq(t, st, "dev"); n != 3 {
		t.Fatalf("device last seq %d after another device's batch, want 3", n)
	}
	// Two connections of one device, both continuing after LastSeq 3 (one
	// replaced the other before it had gone): the second's run overlaps the
	// first's, and only its sequences above the LastSeq it finds are stored,
	// each once (seq 7 comes twice).
	if err := st.AppendObservations(ctx, dev.ID, 5, []store.Observation{obs(dev.ID, 4, "8867-4", 72), obs(dev.ID, 5, "8867-4", 73)}); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendObservations(ctx, dev.ID, 7, []store.Observation{obs(dev.ID, 4, "8867-4", 72), obs(dev.ID, 5, "8867-4", 73), obs(dev.ID, 7, "8867-4", 75), obs(dev.ID, 7, "8867-4", 75)}); err != nil {
		t.Fatal(err)
	}
	if n := lastSeq(t, st, "dev"); n != 7 {
		t.Fatalf("device last seq %d after overlapping runs, want 7", n)
	}
	// A numbered reading the sequence cannot place fails its call, which
	// stores nothing and leaves LastSeq where it was: one beyond the
	// call's lastSeq, one of another device, one without a device.
	for what, c := range map[string]struct {
		dev, last int64
		obs       store.Observation
	}{
		"beyond lastSeq":   {dev.ID, 8, obs(dev.ID, 9, "8867-4", 76)},
		"another device's": {dev.ID, 8, obs(dev2.ID, 8, "8867-4", 76)},
		"without a device": {0, 0, obs(0, 8, "8867-4", 76)},
	} {
		wantErr(t, "a reading "+what, st.AppendObservations(ctx, c.dev, c.last, []store.Observation{obs(dev.ID, 8, "8310-5", 37), c.obs}), store.ErrSequence)
	}
	if n := lastSeq(t, st, "dev"); n != 7 {
		t.Fatalf("device last seq %d after refused calls, want 7", n)
	}
	// Readings entered by hand (no device, no seq) are never de-duplicated.
	manual := store.Observation{PatientID: p.ID, Code: "9279-1", Value: 16, Unit: "/min", EffectiveAt: t0.Add(10 * time.Second), ReceivedAt: t0}
	for range 2 {
		if err := st.AppendObservations(ctx, 0, 0, []store.Observation{manual}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AppendObservations(ctx, 0, 0, []store.Observation{{PatientID: other.ID, Code: "8867-4", Value: 60, Unit: "/min", EffectiveAt: t0.Add(time.Second)}}); err != nil {
		t.Fatal(err)
	}

	got, err := st.ObservationsBetween(ctx, p.ID, t0, t0.Add(time.Minute))
	if err != nil || len(got) != 10 {
		t.Fatalf("stored %d observations (%v), want 10: %+v", len(got), err, got)
	}
	first := got[0]
	if first.ID == 0 || first.PatientID != p.ID || first.DeviceID == 0 || first.Seq != 1 || first.Unit != "/min" ||
		!sameInstant(t0.Add(time.Second), first.EffectiveAt) || !sameInstant(t0.Add(time.Minute), first.ReceivedAt) {
		t.Fatalf("first observation %+v", first)
	}
	for i := 1; i < len(got); i++ {
		if got[i].EffectiveAt.Before(got[i-1].EffectiveAt) {
			t.Fatalf("observations out of order at %d: %+v", i, got)
		}
	}
	var seq3 store.Observation
	var seqs []int64
	for _, o := range got {
		if o.DeviceID == dev.ID && o.Seq == 3 {
			seq3 = o
		}
		if o.DeviceID == dev.ID {
			seqs = append(seqs, o.Seq)
		}
	}
	if !slices.Equal(seqs, []int64{1, 2, 2, 3, 4, 5, 7}) {
		t.Errorf("the device's stored readings have seqs %v, want 1, 2 (a panel), 3, 4, 5 and 7, each once", seqs)
	}
	if seq3.Value != 71 || seq3.Code != "8867-4" || !slices.Equal(seq3.Flags, flagged.Flags) {
		t.Fatalf("seq 3 stored as %+v, want value 71 with flags %q", seq3, flagged.Flags)
	}
	if first.Flags != nil {
		t.Errorf("an unflagged reading came back with flags %q", first.Flags)
	}
	// [from, to): a reading exactly at to is left out, one exactly at from kept.
	if got, _ := st.ObservationsBetween(ctx, p.ID, t0.Add(time.Second), t0.Add(2*time.Second)); len(got) != 2 {
		t.Fatalf("ObservationsBetween [1s, 2s) = %d readings, want 2 (seq 1 of each device)", len(got))
	}
}

func testUnknownDevice(t *testing.T, st store.Store) {
	ctx := context.Background()
	p := user(t, st, "p@example.org", store.RolePatient)
	t0 := odd(t)
	o := store.Observation{PatientID: p.ID, DeviceID: 9999, Seq: 1, Code: "8867-4", Value: 70, Unit: "/min", EffectiveAt: t0}
	wantErr(t, "unknown device", st.AppendObservations(ctx, 9999, 1, []store.Observation{o}), store.ErrNotFound)
	if got, _ := st.ObservationsBetween(ctx, p.ID, t0.Add(-time.Hour), t0.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("a refused batch stored %d observations", len(got))
	}
}
