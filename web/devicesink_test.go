package web

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/sqlite"
	"github.com/bedside-health/bedside/vitals"
)

// appendRecorder is a store.Observations that keeps what it is given to
// store, and the arrays it came in.
type appendRecorder struct {
	store.Observations
	err    error
	codes  [][]string
	arrays []*store.Observation
}

func (a *appendRecorder) AppendObservations(_ context.Context, _, _ int64, obs []store.Observation) error {
	var codes []string
	for _, o := range obs {
		codes = append(codes, o.Code)
	}
	a.codes = append(a.codes, codes)
	a.arrays = append(a.arrays, &obs[0])
	return a.err
}

// TestDeviceSinkReusesItsArray: a device's commits reuse one array of
// observations once the store has stored them, each commit's readings
// intact; not after a failed call, which may not be done with it.
func TestDeviceSinkReusesItsArray(t *testing.T) {
	rec := &appendRecorder{}
	d := &deviceSink{st: rec, patientID: 7}
	commit := func(codes ...string) error {
		var rs []vitals.StoredReading
		for i, c := range codes {
			rs = append(rs, vitals.StoredReading{Seq: int64(i + 1), Reading: vitals.Reading{Code: c, Time: time.Unix(1, 0)}})
		}
		return d.Append(context.Background(), 3, int64(len(codes)), rs)
	}
	if err := commit("a", "b"); err != nil {
		t.Fatal(err)
	}
	if err := commit("c", "d"); err != nil {
		t.Fatal(err)
	}
	rec.err = errors.New("disk full")
	if err := commit("e"); err == nil {
		t.Fatal("the store's failure was not returned")
	}
	rec.err = nil
	if err := commit("f"); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"a", "b"}, {"c", "d"}, {"e"}, {"f"}}
	for i := range want {
		if len(rec.codes[i]) != len(want[i]) || rec.codes[i][0] != want[i][0] {
			t.Fatalf("commit %d stored %v, want %v", i+1, rec.codes[i], want[i])
		}
	}
	if rec.arrays[1] != rec.arrays[0] || rec.arrays[2] != rec.arrays[0] {
		t.Fatal("the second and third commits did not reuse the first's array")
	}
	if rec.arrays[3] == rec.arrays[2] {
		t.Fatal("the array of a failed call was reused")
	}
}

// TestDeviceSinkStoresBeyondTheRelayedBound: a relay that has as many
// Bluetooth devices kept as it may still has a new device's readings
// stored, as its own, rather than refused (the device would resend them
// forever) or lost; the devices it has keep naming their readings.
func TestDeviceSinkStoresBeyondTheRelayedBound(t *testing.T) {
	ctx := t.Context()
	st, p, hub := hubStore(t)
	var strap store.RelayedDevice
	var err error
	for i := range store.MaxRelayedDevices {
		if strap, err = st.RelayedDevice(ctx, hub.ID, fmt.Sprintf("strap %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	d := &deviceSink{st: st, patientID: p.ID}
	at := time.Now().UTC().Truncate(time.Second)
	reading := func(seq int64, source string) vitals.StoredReading {
		return vitals.StoredReading{Seq: seq, Source: source, Reading: vitals.Reading{Code: "8867-4", Value: float64(60 + seq), Unit: "/min", Time: at.Add(time.Duration(seq) * time.Second)}}
	}
	if err := d.Append(ctx, hub.ID, 2, []vitals.StoredReading{reading(1, "one more"), reading(2, strap.Name)}); err != nil {
		t.Fatalf("a commit with a device beyond the relay's bound: %v", err)
	}
	got, _, err := st.SearchObservations(ctx, store.ObservationQuery{PatientID: p.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Seq != 1 || got[0].Relayed != 0 || got[1].Seq != 2 || got[1].Relayed != strap.ID {
		t.Fatalf("stored %+v; want reading 1 as the hub's own (Relayed 0) and reading 2 as device %d's", got, strap.ID)
	}
}

// countingRelayed counts the store look-ups of relayed devices.
type countingRelayed struct {
	store.Observations
	calls int
}

func (c *countingRelayed) RelayedDevice(ctx context.Context, relay int64, name string) (store.RelayedDevice, error) {
	c.calls++
	return c.Observations.RelayedDevice(ctx, relay, name)
}

// TestDeviceSinkAsksTheStoreOncePerRelayedDevice: a hub relaying more
// devices than it may keep, each in turn, costs one store look-up (a
// write on the store's one writer) per device it keeps and one for the
// first it may not, however many readings follow; each reading names its
// device, or none beyond the bound.
func TestDeviceSinkAsksTheStoreOncePerRelayedDevice(t *testing.T) {
	ctx := t.Context()
	st, p, hub := hubStore(t)
	cs := &countingRelayed{Observations: st}
	d := &deviceSink{st: cs, patientID: p.ID}
	at := time.Now().UTC().Truncate(time.Second)
	const names, rounds = store.MaxRelayedDevices + 2, 3
	seq := int64(0)
	for range rounds {
		for i := range names {
			seq++
			r := vitals.StoredReading{Seq: seq, Source: fmt.Sprintf("strap %d", i), Reading: vitals.Reading{Code: "8867-4", Value: float64(i), Unit: "/min", Time: at.Add(time.Duration(seq) * time.Second)}}
			if err := d.Append(ctx, hub.ID, seq, []vitals.StoredReading{r}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if want := store.MaxRelayedDevices + 1; cs.calls != want {
		t.Fatalf("%d store look-ups for %d readings of %d devices; want %d, one per device kept and one refused", cs.calls, names*rounds, names, want)
	}
	got, _, err := st.SearchObservations(ctx, store.ObservationQuery{PatientID: p.ID, Limit: names * rounds})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range got {
		if kept := int(o.Value) < store.MaxRelayedDevices; kept != (o.Relayed != 0) {
			t.Fatalf("reading of strap %d stored with relayed device %d", int(o.Value), o.Relayed)
		}
	}
	if len(got) != names*rounds {
		t.Fatalf("%d readings stored, want %d", len(got), names*rounds)
	}
}

// hubStore opens a store holding a patient and their hub's device
// credential.
func hubStore(t *testing.T) (*sqlite.DB, store.User, store.Credential) {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, t.TempDir()+"/bedside.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p, err := st.CreateUser(ctx, store.User{Email: "p@example.org", Name: "p", Role: store.RolePatient, TimeZone: "Europe/London"})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte("hub"), UserID: p.ID, Name: "hub", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return st, p, hub
}
