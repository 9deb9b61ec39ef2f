package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

// testConcurrentDevices: many devices append at once, as the group commit
// batches them, each through two connections at the same time (a device
// reconnecting on another node before the old connection has gone), and
// an unknown device fails alongside them. Each connection commits, as the
// device ingest does, every reading of the run of sequences after the
// LastSeq it last read or set: some sequences carry a blood-pressure
// panel, some nothing (a waveform frame), so the two connections' runs
// overlap and interleave. Each connection also resends its last run (the
// device resending what it missed the ack of), sometimes reconnects
// (reads the device's LastSeq afresh), and posts a reading without a
// sequence. Every reading is stored exactly once, the numbered ones for
// every sequence up to the device's LastSeq, which ends at the highest
// sequence either connection committed; the unknown device's failure
// touches nobody else.
func testConcurrentDevices(t *testing.T, st store.Store) {
	ctx := context.Background()
	p := user(t, st, "p@example.org", store.RolePatient)
	t0 := odd(t)
	const devices, conns, rounds = 20, 2, 25
	devs := make([]store.Credential, devices)
	for i := range devs {
		devs[i] = device(t, st, p.ID, fmt.Sprintf("dev%d", i))
	}
	// readings are what sequence seq of a device carries.
	readings := func(dev, seq int64) []store.Observation {
		at := t0.Add(time.Duration(seq) * time.Second)
		switch {
		case seq%5 == 0:
			return nil // a waveform frame: the sequence moves, nothing is stored
		case seq%3 == 0:
			return []store.Observation{
				{PatientID: p.ID, DeviceID: dev, Seq: seq, Code: store.CodeSystolic, Value: 120, Unit: "mm[Hg]", EffectiveAt: at},
				{PatientID: p.ID, DeviceID: dev, Seq: seq, Code: store.CodeDiastolic, Value: 80, Unit: "mm[Hg]", EffectiveAt: at},
			}
		}
		return []store.Observation{{PatientID: p.ID, DeviceID: dev, Seq: seq, Code: "8867-4", Value: float64(seq), Unit: "/min", EffectiveAt: at}}
	}
	run := func(dev, from, to int64) (obs []store.Observation) {
		for seq := from + 1; seq <= to; seq++ {
			obs = append(obs, readings(dev, seq)...)
		}
		return obs
	}
	var wg sync.WaitGroup
	errs := make(chan error, devices*conns*rounds*3+rounds)
	highest := make([][conns]int64, devices) // the last sequence each connection committed
	for i, d := range devs {
		for c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var last int64 // the LastSeq this connection last read or set
				for r := range rounds {
					end := last + int64(1+(i+c+r)%4)
					if err := st.AppendObservations(ctx, d.ID, end, run(d.ID, last, end)); err != nil {
						errs <- fmt.Errorf("device %d connection %d seq %d to %d: %w", i, c, last+1, end, err)
						return
					}
					// The same run again, as after a lost ack.
					if err := st.AppendObservations(ctx, d.ID, end, run(d.ID, last, end)); err != nil {
						errs <- fmt.Errorf("device %d connection %d resend %d to %d: %w", i, c, last+1, end, err)
						return
					}
					highest[i][c], last = end, end
					// A reading posted without a sequence: never a resend.
					posted := store.Observation{PatientID: p.ID, DeviceID: d.ID, Code: "9279-1", Value: float64(r), Unit: "/min", EffectiveAt: t0}
					if err := st.AppendObservations(ctx, d.ID, 0, []store.Observation{posted}); err != nil {
						errs <- fmt.Errorf("device %d connection %d posted reading: %w", i, c, err)
						return
					}
					if r%6 == 5 {
						// Reconnect: continue after the LastSeq stored now.
						cred, err := st.CredentialByHash(ctx, store.CredentialDevice, []byte(d.Name))
						if err != nil {
							errs <- err
							return
						}
						last = cred.LastSeq
					}
				}
			}()
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for seq := int64(1); seq <= rounds; seq++ {
			o := store.Observation{PatientID: p.ID, DeviceID: 999999, Seq: seq, Code: "8867-4", Value: 70, Unit: "/min", EffectiveAt: t0}
			if err := st.AppendObservations(ctx, 999999, seq, []store.Observation{o}); !errors.Is(err, store.ErrNotFound) {
				errs <- fmt.Errorf("an unknown device's append: %v, want ErrNotFound", err)
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	got, err := st.ObservationsBetween(ctx, p.ID, t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	posted := map[int64]int{}
	for _, o := range got {
		if o.DeviceID == 999999 {
			t.Fatalf("the unknown device's reading was stored: %+v", o)
		}
		if o.Seq == 0 {
			posted[o.DeviceID]++
			continue
		}
		stored[fmt.Sprintf("%d/%d/%s", o.DeviceID, o.Seq, o.Code)]++
	}
	want := 0
	for i, d := range devs {
		end := max(highest[i][0], highest[i][1])
		if n := lastSeq(t, st, d.Name); n != end {
			t.Errorf("device %d last seq %d, want %d", i, n, end)
		}
		for _, o := range run(d.ID, 0, end) {
			want++
			if n := stored[fmt.Sprintf("%d/%d/%s", d.ID, o.Seq, o.Code)]; n != 1 {
				t.Errorf("device %d seq %d %s stored %d times, want once", i, o.Seq, o.Code, n)
			}
		}
		if posted[d.ID] != conns*rounds {
			t.Errorf("device %d: %d readings without a sequence stored, want %d", i, posted[d.ID], conns*rounds)
		}
	}
	if len(stored) != want {
		t.Errorf("%d distinct numbered readings stored, want %d", len(stored), want)
	}
}

// testDeviceEvents: devices connecting and disconnecting are kept per
// patient and listed in a time range, oldest first, a relayed device's
// with the relay that reported it.
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
		{PatientID: p.ID, DeviceID: dev.ID, Device: "Polar H10", Relay: "Home hub", Kind: store.DeviceConnected, At: t0.Add(3 * time.Minute)},
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
	if len(got) != 3 || got[0].Kind != store.DeviceConnected || got[1].Kind != store.DeviceDisconnected ||
		!sameInstant(t0, got[0].At) || got[0].Device != "Home hub" || got[0].DeviceID != dev.ID || got[0].PatientID != p.ID ||
		got[0].Relay != "" || got[2].Device != "Polar H10" || got[2].Relay != "Home hub" || got[2].DeviceID != dev.ID {
		t.Fatalf("events in [t0, t0+5m): %+v; want connected at t0, disconnected, the relayed strap connecting, the one at 5m left out", got)
	}
}
