package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

// testRelayedDevices: the Bluetooth devices a relay pairs are kept once
// per relay and name, and each relayed reading names the one that
// measured it, in every way readings are read back; a direct device's
// readings name none.
func testRelayedDevices(t *testing.T, st store.Store) {
	ctx := context.Background()
	p := user(t, st, "p@example.org", store.RolePatient)
	other := user(t, st, "q@example.org", store.RolePatient)
	relay := device(t, st, p.ID, "Web browser")
	hub := device(t, st, p.ID, "hub")
	direct := device(t, st, p.ID, "Oximeter")
	otherRelay := device(t, st, other.ID, "other browser")

	strap, err := st.RelayedDevice(ctx, relay.ID, "Polar H10 7E2F")
	if err != nil {
		t.Fatal(err)
	}
	if strap.ID == 0 || strap.RelayID != relay.ID || strap.PatientID != p.ID || strap.Name != "Polar H10 7E2F" ||
		strap.Relay != "Web browser" || strap.CreatedAt.IsZero() || strap.CreatedAt.Location() != time.UTC {
		t.Fatalf("relayed device %+v", strap)
	}
	again, err := st.RelayedDevice(ctx, relay.ID, "Polar H10 7E2F")
	if err != nil || again != strap {
		t.Fatalf("the same relay and name again: %+v, %v; want %+v", again, err, strap)
	}
	cuff, err := st.RelayedDevice(ctx, relay.ID, "A&D UA-651")
	if err != nil || cuff.ID == strap.ID {
		t.Fatalf("another name of the relay: %+v, %v; want a device of its own", cuff, err)
	}
	viaHub, err := st.RelayedDevice(ctx, hub.ID, "Polar H10 7E2F")
	if err != nil || viaHub.ID == strap.ID || viaHub.RelayID != hub.ID || viaHub.Relay != "hub" {
		t.Fatalf("the same name through another relay: %+v, %v; want a device of its own", viaHub, err)
	}
	if _, err := st.RelayedDevice(ctx, otherRelay.ID, "Polar H10 7E2F"); err != nil {
		t.Fatal(err)
	}
	_, err = st.RelayedDevice(ctx, 99999, "Polar H10 7E2F")
	wantErr(t, "a relayed device of an unknown relay", err, store.ErrNotFound)
	api, err := st.CreateCredential(ctx, store.Credential{Kind: store.CredentialAPI, TokenHash: []byte("api"), UserID: p.ID, Name: "api"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.RelayedDevice(ctx, api.ID, "Polar H10 7E2F")
	wantErr(t, "a relayed device of an API token", err, store.ErrNotFound)
	if _, err := st.RelayedDevice(ctx, relay.ID, ""); err == nil {
		t.Fatal("a relayed device without a name was kept")
	}

	if got, err := st.RelayedDeviceByID(ctx, cuff.ID); err != nil || got != cuff {
		t.Fatalf("RelayedDeviceByID(%d) = %+v, %v; want %+v", cuff.ID, got, err, cuff)
	}
	_, err = st.RelayedDeviceByID(ctx, 99999)
	wantErr(t, "an unknown relayed device", err, store.ErrNotFound)
	list, err := st.RelayedDevices(ctx, p.ID)
	if err != nil || !slices.Equal(list, []store.RelayedDevice{strap, cuff, viaHub}) {
		t.Fatalf("the patient's relayed devices: %+v, %v; want the strap and the cuff through the browser, the strap through the hub", list, err)
	}

	// One commit of the relay's: the strap's heart rate, the cuff's panel,
	// and a reading stored before relayed devices were kept (Relayed 0);
	// the direct device's reading alongside.
	t0 := odd(t)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	o := func(dev, seq, relayed int64, code string, v float64, when time.Time) store.Observation {
		return store.Observation{PatientID: p.ID, DeviceID: dev, Seq: seq, Code: code, Value: v, Unit: "/min", EffectiveAt: when, Relayed: relayed}
	}
	if err := st.AppendObservations(ctx, relay.ID, 4, []store.Observation{
		o(relay.ID, 1, strap.ID, "8867-4", 70, at(1)),
		o(relay.ID, 2, cuff.ID, store.CodeSystolic, 120, at(2)),
		o(relay.ID, 2, cuff.ID, store.CodeDiastolic, 80, at(2)),
		o(relay.ID, 3, 0, "8867-4", 71, at(3)),
		o(relay.ID, 4, strap.ID, "8867-4", 72, at(4)),
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendObservations(ctx, direct.ID, 1, []store.Observation{o(direct.ID, 1, 0, "59408-5", 97, at(1))}); err != nil {
		t.Fatal(err)
	}
	type row struct {
		seq     int64
		code    string
		relayed int64
	}
	rows := func(obs []store.Observation) []row {
		var out []row
		for _, x := range obs {
			out = append(out, row{x.Seq, x.Code, x.Relayed})
		}
		return out
	}
	all, err := st.ObservationsBetween(ctx, p.ID, t0, at(10))
	if err != nil {
		t.Fatal(err)
	}
	want := []row{{1, "8867-4", strap.ID}, {1, "59408-5", 0}, {2, store.CodeSystolic, cuff.ID}, {2, store.CodeDiastolic, cuff.ID}, {3, "8867-4", 0}, {4, "8867-4", strap.ID}}
	if got := rows(all); !slices.Equal(got, want) {
		t.Fatalf("ObservationsBetween: %+v, want %+v", got, want)
	}
	if got, err := st.ObservationByID(ctx, all[0].ID); err != nil || got.Relayed != strap.ID {
		t.Fatalf("ObservationByID of the strap's reading: %+v, %v; want Relayed %d", got, err, strap.ID)
	}
	sample, _, err := st.SampleObservations(ctx, p.ID, t0, at(10), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range sample {
		if x.Code == "8867-4" && x.Relayed != strap.ID {
			t.Fatalf("SampleObservations: the last heart rate %+v, want the strap's (%d)", x, strap.ID)
		}
	}
	for _, c := range []struct {
		name string
		q    store.ObservationQuery
		want []row
	}{
		{"one relayed device", store.ObservationQuery{DeviceID: relay.ID, Relayed: strap.ID}, []row{{1, "8867-4", strap.ID}, {4, "8867-4", strap.ID}}},
		{"one relayed device, by code", store.ObservationQuery{DeviceID: relay.ID, Relayed: strap.ID, Codes: []string{"8867-4"}}, []row{{1, "8867-4", strap.ID}, {4, "8867-4", strap.ID}}},
		{"one relayed device's panels", store.ObservationQuery{PatientID: p.ID, Relayed: cuff.ID, Panels: true}, []row{{2, store.CodeSystolic, cuff.ID}}},
		{"the relay's own", store.ObservationQuery{DeviceID: relay.ID, Relayed: store.NotRelayed}, []row{{3, "8867-4", 0}}},
		{"the relay's own, by code", store.ObservationQuery{DeviceID: relay.ID, Relayed: store.NotRelayed, Codes: []string{"8867-4"}}, []row{{3, "8867-4", 0}}},
		{"everything through the relay", store.ObservationQuery{DeviceID: relay.ID}, []row{{1, "8867-4", strap.ID}, {2, store.CodeSystolic, cuff.ID}, {2, store.CodeDiastolic, cuff.ID}, {3, "8867-4", 0}, {4, "8867-4", strap.ID}}},
		{"a direct device", store.ObservationQuery{DeviceID: direct.ID, Relayed: store.NotRelayed}, []row{{1, "59408-5", 0}}},
		{"the strap through the hub", store.ObservationQuery{DeviceID: relay.ID, Relayed: viaHub.ID}, nil},
	} {
		page, total, err := st.SearchObservations(ctx, c.q)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := rows(page); !slices.Equal(got, c.want) || total != len(c.want) {
			t.Errorf("%s: %+v (total %d), want %+v", c.name, got, total, c.want)
		}
	}
	// A patient whose relays relayed nothing lists no relayed device.
	if list, err := st.RelayedDevices(ctx, user(t, st, "r@example.org", store.RolePatient).ID); err != nil || len(list) != 0 {
		t.Fatalf("a patient without relayed devices: %+v, %v", list, err)
	}
}

// RelayedBefore sets up, in a store whose schema predates relayed
// devices, a reading that a patient's browser relayed then, which insert
// writes as that schema has it (no relayed device). It returns the check
// to run once the migration that keeps relayed devices has run: the old
// reading is still there, names no relayed device and counts as the
// browser's own, and the browser's relayed readings name theirs.
func RelayedBefore(t *testing.T, st store.Store, insert func(o store.Observation)) (check func()) {
	t.Helper()
	ctx := context.Background()
	p := user(t, st, "before@example.org", store.RolePatient)
	browser, err := st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte("before"), UserID: p.ID,
		Name: "Web browser", Browser: true, LastSeq: 0})
	if err != nil {
		t.Fatal(err)
	}
	t0 := odd(t)
	insert(store.Observation{PatientID: p.ID, DeviceID: browser.ID, Seq: 1, Code: "8867-4", Value: 70, Unit: "/min", EffectiveAt: t0, ReceivedAt: t0})
	return func() {
		t.Helper()
		strap, err := st.RelayedDevice(ctx, browser.ID, "Polar H10 7E2F")
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AppendObservations(ctx, browser.ID, 2, []store.Observation{{PatientID: p.ID, DeviceID: browser.ID, Seq: 2,
			Code: "8867-4", Value: 71, Unit: "/min", EffectiveAt: t0.Add(time.Second), Relayed: strap.ID}}); err != nil {
			t.Fatal(err)
		}
		got, err := st.ObservationsBetween(ctx, p.ID, t0, t0.Add(time.Minute))
		if err != nil || len(got) != 2 || got[0].Value != 70 || got[0].DeviceID != browser.ID || got[0].Relayed != 0 || got[1].Relayed != strap.ID {
			t.Fatalf("after the migration: %+v, %v; want the old reading naming no relayed device, then the strap's", got, err)
		}
		own, total, err := st.SearchObservations(ctx, store.ObservationQuery{DeviceID: browser.ID, Relayed: store.NotRelayed})
		if err != nil || total != 1 || own[0].ID != got[0].ID {
			t.Fatalf("the browser's own readings: %+v (%d), %v; want the old one", own, total, err)
		}
	}
}

// testRelayedDevicesBounded: a relay keeps at most MaxRelayedDevices
// Bluetooth devices, so one that invents names cannot fill the store; the
// devices it has stay found, and other relays are not held to its count.
func testRelayedDevicesBounded(t *testing.T, st store.Store) {
	ctx := context.Background()
	p := user(t, st, "p@example.org", store.RolePatient)
	relay := device(t, st, p.ID, "hub")
	other := device(t, st, p.ID, "Web browser")
	var first store.RelayedDevice
	for i := range store.MaxRelayedDevices {
		d, err := st.RelayedDevice(ctx, relay.ID, fmt.Sprintf("strap %d", i))
		if err != nil {
			t.Fatalf("relayed device %d of %d: %v", i+1, store.MaxRelayedDevices, err)
		}
		if i == 0 {
			first = d
		}
	}
	_, err := st.RelayedDevice(ctx, relay.ID, "one more")
	wantErr(t, "a relayed device beyond the relay's bound", err, store.ErrTooManyRelayed)
	if again, err := st.RelayedDevice(ctx, relay.ID, "strap 0"); err != nil || again != first {
		t.Fatalf("a kept device of a full relay: %+v, %v; want %+v", again, err, first)
	}
	if _, err := st.RelayedDevice(ctx, other.ID, "one more"); err != nil {
		t.Fatalf("another relay's device: %v", err)
	}
	list, err := st.RelayedDevices(ctx, p.ID)
	if err != nil || len(list) != store.MaxRelayedDevices+1 {
		t.Fatalf("the patient's relayed devices: %d, %v; want %d", len(list), err, store.MaxRelayedDevices+1)
	}
	_, err = st.RelayedDevice(ctx, 99999, "strap 0")
	wantErr(t, "a relayed device of an unknown relay", err, store.ErrNotFound)
}
