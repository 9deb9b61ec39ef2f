package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

// testConcurrentDevices: many devices append at once, as the group commit
// batches them; each also resends its previous batch (a reconnect), and
// an unknown device fails alongside them. Every acknowledged reading is
// stored exactly once, each device's sequence ends where it was acked,
// and the unknown device's failure touches nobody else.
func testConcurrentDevices(t *testing.T, st store.Store) {
	ctx := context.Background()
	p := user(t, st, "p@example.org", store.RolePatient)
	t0 := odd(t)
	const devices, rounds = 40, 25
	devs := make([]store.Credential, devices)
	for i := range devs {
		devs[i] = device(t, st, p.ID, fmt.Sprintf("dev%d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, devices*rounds*2+rounds)
	for i, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := func(seq int64) []store.Observation {
				return []store.Observation{
					{PatientID: p.ID, DeviceID: d.ID, Seq: seq, Code: "8480-6", Value: 120, Unit: "mm[Hg]", EffectiveAt: t0.Add(time.Duration(seq) * time.Second)},
					{PatientID: p.ID, DeviceID: d.ID, Seq: seq, Code: "8462-4", Value: float64(60 + i), Unit: "mm[Hg]", EffectiveAt: t0.Add(time.Duration(seq) * time.Second)},
				}
			}
			for seq := int64(1); seq <= rounds; seq++ {
				if err := st.AppendObservations(ctx, d.ID, seq, batch(seq)); err != nil {
					errs <- fmt.Errorf("device %d seq %d: %w", i, seq, err)
					return
				}
				if seq > 1 {
					// The previous message again, as after a reconnect.
					if err := st.AppendObservations(ctx, d.ID, seq-1, batch(seq-1)); err != nil {
						errs <- fmt.Errorf("device %d resend %d: %w", i, seq-1, err)
						return
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for seq := int64(1); seq <= rounds; seq++ {
			o := store.Observation{PatientID: p.ID, DeviceID: 999999, Seq: seq, Code: "8867-4", Value: 70, Unit: "/min", EffectiveAt: t0}
			if err := st.AppendObservations(ctx, 999999, seq, []store.Observation{o}); err == nil {
				errs <- fmt.Errorf("an unknown device's append succeeded")
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := st.ObservationsBetween(ctx, p.ID, t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, o := range got {
		seen[fmt.Sprintf("%d/%d/%s", o.DeviceID, o.Seq, o.Code)]++
		if o.DeviceID == 999999 {
			t.Fatalf("the unknown device's reading was stored: %+v", o)
		}
	}
	if len(got) != devices*rounds*2 || len(seen) != devices*rounds*2 {
		t.Fatalf("stored %d readings (%d distinct), want each of %d exactly once", len(got), len(seen), devices*rounds*2)
	}
	for i := range devs {
		if n := lastSeq(t, st, fmt.Sprintf("dev%d", i)); n != rounds {
			t.Fatalf("device %d last seq %d, want %d", i, n, rounds)
		}
	}
}

// testDeviceEvents: devices connecting and disconnecting are kept per
// patient and listed in a time range, oldest first.
func testDeviceEvents(t *testing.T, st store.Store) {
	ctx := context.Background()
	p := user(t, st, "p@example.org", store.RolePatient)
	other := user(t, st, "q@example.org", store.RolePatient)
	dev := device(t, st, p.ID, "hub")
	odev := device(t, st, other.ID, "other hub")
	t0 := odd(t)
	for i, e := range []store.DeviceEvent{
		{PatientID: p.ID, DeviceID: dev.ID, Device: "Home hub", Kind: store.DeviceDisconnected, At: t0.Add(2 * time.Minute)},
		{PatientID: p.ID, DeviceID: dev.ID, Device: "Home hub", Kind: store.DeviceConnected, At: t0},
		{PatientID: other.ID, DeviceID: odev.ID, Device: "Other", Kind: store.DeviceConnected, At: t0.Add(time.Minute)},
		{PatientID: p.ID, DeviceID: dev.ID, Device: "Home hub", Kind: store.DeviceConnected, At: t0.Add(5 * time.Minute)},
	} {
		got, err := st.AppendDeviceEvent(ctx, e)
		if err != nil || got.ID == 0 {
			t.Fatalf("event %d: %+v, %v", i, got, err)
		}
	}
	_, err := st.AppendDeviceEvent(ctx, store.DeviceEvent{PatientID: p.ID, DeviceID: 999999, Device: "x", Kind: store.DeviceConnected, At: t0})
	wantErr(t, "unknown device's event", err, store.ErrNotFound)

	got, err := st.DeviceEventsBetween(ctx, p.ID, t0, t0.Add(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Kind != store.DeviceConnected || got[1].Kind != store.DeviceDisconnected ||
		!sameInstant(t0, got[0].At) || got[0].Device != "Home hub" || got[0].DeviceID != dev.ID || got[0].PatientID != p.ID {
		t.Fatalf("events in [t0, t0+5m): %+v; want connected at t0 then disconnected, the one at 5m left out", got)
	}
}
