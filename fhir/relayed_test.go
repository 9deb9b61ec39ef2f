package fhir

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

// relayedSeed is what seedRelayed stores beside seedVitals': Ada's
// browser, relaying a heart-rate strap and an oximeter during her held
// visit, and a heart rate it relayed before Bedside kept relayed devices.
type relayedSeed struct {
	vitalsSeed
	browser       store.Credential
	strap, oxi    store.RelayedDevice
	strapHR, oxHR int64 // a reading of each
	old           int64 // the reading that names no relayed device
}

func seedRelayed(t *testing.T, f *fixture) relayedSeed {
	t.Helper()
	ctx := context.Background()
	s := relayedSeed{vitalsSeed: seedVitals(t, f)}
	var err error
	s.browser, err = f.st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte("ada's browser"),
		UserID: f.ada.ID, Name: "Web browser", Browser: true, CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	if s.strap, err = f.st.RelayedDevice(ctx, s.browser.ID, "Polar H10 7E2F"); err != nil {
		t.Fatal(err)
	}
	if s.oxi, err = f.st.RelayedDevice(ctx, s.browser.ID, "Nonin 3230"); err != nil {
		t.Fatal(err)
	}
	at := func(min int) time.Time { return f.appt1.Start.Add(time.Duration(min) * time.Minute) }
	o := func(seq, relayed int64, code string, v float64, unit string, when time.Time) store.Observation {
		return store.Observation{PatientID: f.ada.ID, DeviceID: s.browser.ID, Seq: seq, Code: code, Value: v, Unit: unit,
			EffectiveAt: when, ReceivedAt: when.Add(time.Second), Relayed: relayed}
	}
	if err := f.st.AppendObservations(ctx, s.browser.ID, 4, []store.Observation{
		o(1, 0, "8867-4", 70, "/min", at(11)),
		o(2, s.strap.ID, "8867-4", 74, "/min", at(12)),
		o(3, s.oxi.ID, "59408-5", 97, "%", at(13)),
		o(4, s.oxi.ID, "8867-4", 75, "/min", at(13)),
	}); err != nil {
		t.Fatal(err)
	}
	all, err := f.st.ObservationsBetween(ctx, f.ada.ID, at(11), at(14))
	if err != nil || len(all) != 4 {
		t.Fatalf("relayed readings: %+v, %v", all, err)
	}
	s.old, s.strapHR, s.oxHR = all[0].ID, all[1].ID, all[2].ID
	return s
}

// TestRelayedDevice: a Bluetooth device the patient's browser relayed is
// a Device of its own, named as the browser names it, with the browser
// as its parent; the readings it measured reference it, and it is seen
// as the browser's Device is.
func TestRelayedDevice(t *testing.T) {
	f := newFixture(t)
	s := seedRelayed(t, f)
	strapID := fmt.Sprintf("%d-%d", s.browser.ID, s.strap.ID)
	var d Device
	f.do(t, "GET", "Device/"+strapID, "physician", "").want(t, http.StatusOK).decode(t, &d)
	want := Device{ResourceType: "Device", ID: strapID, Status: "active", DeviceName: []DeviceName{{Name: "Polar H10 7E2F", Type: "user-friendly-name"}},
		Patient: Reference{Reference: fmt.Sprint("Patient/", f.ada.ID)}, Parent: &Reference{Reference: fmt.Sprint("Device/", s.browser.ID)}}
	if d.Parent == nil || *d.Parent != *want.Parent {
		t.Errorf("Device/%s's parent %+v, want %+v", strapID, d.Parent, want.Parent)
	}
	d.Parent, want.Parent = nil, nil
	if fmt.Sprint(d) != fmt.Sprint(want) {
		t.Errorf("Device/%s: %+v, want %+v", strapID, d, want)
	}
	var relay Device
	f.do(t, "GET", fmt.Sprint("Device/", s.browser.ID), "physician", "").want(t, http.StatusOK).decode(t, &relay)
	if relay.Parent != nil || relay.DeviceName[0].Name != "Web browser" {
		t.Errorf("the relay's Device: %+v", relay)
	}

	// The same access as the relay's Device.
	for role, status := range map[string]int{"patient": 200, "physician": 200, "admin": 200, "scheduler": 403, "other-patient": 404, "other-physician": 404} {
		if r := f.do(t, "GET", "Device/"+strapID, role, ""); r.status != status {
			t.Errorf("%s GET Device/%s: %d, want %d", role, strapID, r.status, status)
		}
	}
	// Another relay's id with the device's, or an unknown device: none.
	for _, id := range []string{fmt.Sprintf("%d-%d", s.dev.ID, s.strap.ID), fmt.Sprintf("%d-99999", s.browser.ID), fmt.Sprintf("%d-0", s.browser.ID), "x-1", fmt.Sprintf("%d-%d-1", s.browser.ID, s.strap.ID)} {
		f.do(t, "GET", "Device/"+id, "admin", "").want(t, http.StatusNotFound)
	}

	// The patient's devices: the tokens', then the relayed ones.
	_, ids := searchIDs(t, f.do(t, "GET", fmt.Sprint("Device?patient=Patient/", f.ada.ID), "physician", "").want(t, http.StatusOK))
	if want := []string{fmt.Sprint(s.dev.ID), fmt.Sprint(s.browser.ID), strapID, fmt.Sprintf("%d-%d", s.browser.ID, s.oxi.ID)}; !slices.Equal(ids, want) {
		t.Errorf("Ada's devices %v, want %v", ids, want)
	}
	_, ids = searchIDs(t, f.do(t, "GET", fmt.Sprint("Device?patient=Patient/", f.ada.ID), "other-physician", "").want(t, http.StatusOK))
	if len(ids) != 0 {
		t.Errorf("another physician finds Ada's devices %v", ids)
	}

	// Each reading references the device that measured it.
	for id, dev := range map[int64]string{s.strapHR: "Device/" + strapID, s.oxHR: fmt.Sprintf("Device/%d-%d", s.browser.ID, s.oxi.ID), s.old: fmt.Sprint("Device/", s.browser.ID), s.hr: fmt.Sprint("Device/", s.dev.ID)} {
		var o Observation
		f.do(t, "GET", fmt.Sprint("Observation/", id), "patient", "").want(t, http.StatusOK).decode(t, &o)
		if o.Device == nil || o.Device.Reference != dev {
			t.Errorf("Observation/%d's device %+v, want %s", id, o.Device, dev)
		}
	}

	// A search by device finds the readings that reference it: the
	// relay's are those it relayed before relayed devices were kept.
	for _, tc := range []struct {
		query, role string
		want        []int64
	}{
		{"device=Device/" + strapID, "physician", []int64{s.strapHR}},
		{"device=" + strapID, "patient", []int64{s.strapHR}},
		{fmt.Sprintf("device=Device/%d-%d&code=8867-4", s.browser.ID, s.oxi.ID), "admin", []int64{s.oxHR + 1}},
		{fmt.Sprint("device=Device/", s.browser.ID), "physician", []int64{s.old}},
		{fmt.Sprintf("device=Device/%d-%d", s.dev.ID, s.strap.ID), "admin", nil},
		{"device=Device/" + strapID, "other-patient", nil},
		{fmt.Sprint("device=Device/", s.dev.ID, "&code=59408-5"), "physician", []int64{s.hr + 1}},
	} {
		_, ids := searchIDs(t, f.do(t, "GET", "Observation?"+tc.query, tc.role, "").want(t, http.StatusOK))
		var want []string
		for _, id := range tc.want {
			want = append(want, fmt.Sprint(id))
		}
		if fmt.Sprint(ids) != fmt.Sprint(want) && (len(ids) != 0 || len(want) != 0) {
			t.Errorf("%s as %s: %v, want %v", tc.query, tc.role, ids, want)
		}
	}
	for _, q := range []string{"device=Device/1-x", "device=Device/-1"} {
		f.do(t, "GET", "Observation?"+q, "admin", "").want(t, http.StatusBadRequest)
	}
}

// TestRelayedDeviceExported: a visit's export includes each relayed
// device that measured its readings, after its relay, as a Device whose
// parent is the relay.
func TestRelayedDeviceExported(t *testing.T) {
	f := newFixture(t)
	s := seedRelayed(t, f)
	var b struct {
		Entry []struct {
			FullURL  string
			Resource struct {
				ResourceType, ID string
				DeviceName       []DeviceName
				Parent           *Reference
				Device           *Reference
			}
		}
	}
	f.do(t, "GET", fmt.Sprintf("Encounter/%d/$everything", s.visit.ID), "physician", "").want(t, http.StatusOK).decode(t, &b)
	var devices []string
	refs := map[string]bool{}
	for _, e := range b.Entry {
		r := e.Resource
		switch r.ResourceType {
		case "Device":
			parent := ""
			if r.Parent != nil {
				parent = " parent " + r.Parent.Reference
			}
			devices = append(devices, r.ID+" "+r.DeviceName[0].Name+parent)
			if e.FullURL != baseURL+"/fhir/Device/"+r.ID {
				t.Errorf("fullUrl %q", e.FullURL)
			}
		case "Observation":
			if r.Device != nil {
				refs[r.Device.Reference] = true
			}
		}
	}
	relay := fmt.Sprint("Device/", s.browser.ID)
	want := []string{
		fmt.Sprint(s.dev.ID, " Home hub"),
		fmt.Sprint(s.browser.ID, " Web browser"),
		fmt.Sprintf("%d-%d Polar H10 7E2F parent %s", s.browser.ID, s.strap.ID, relay),
		fmt.Sprintf("%d-%d Nonin 3230 parent %s", s.browser.ID, s.oxi.ID, relay),
	}
	if !slices.Equal(devices, want) {
		t.Errorf("exported Devices:\n%s\nwant\n%s", strings.Join(devices, "\n"), strings.Join(want, "\n"))
	}
	for _, d := range want {
		if r := "Device/" + strings.Fields(d)[0]; !refs[r] {
			t.Errorf("no exported Observation references %s", r)
		}
	}
}

// TestRelayedDeviceAudited: reading a relayed device's Device is audited
// as the relay's is, naming the Device read.
func TestRelayedDeviceAudited(t *testing.T) {
	f, _ := newAuditFixture(t)
	s := seedRelayed(t, f)
	strap := fmt.Sprintf("Device/%d-%d", s.browser.ID, s.strap.ID)
	f.do(t, "GET", strap, "physician", "").want(t, http.StatusOK)
	f.do(t, "GET", strap, "scheduler", "").want(t, http.StatusForbidden)
	f.do(t, "GET", fmt.Sprint("Device?patient=Patient/", f.ada.ID, "&_count=1&_offset=2"), "physician", "").want(t, http.StatusOK)
	var got []string
	for _, e := range f.trail(t, store.AuditQuery{PatientID: f.ada.ID}) {
		got = append(got, brief(e))
	}
	g, sc, a := f.grace.ID, f.scheduler.ID, f.ada.ID
	want := []string{
		fmt.Sprintf("%d physician read %s %d success", g, strap, a),
		fmt.Sprintf("%d scheduler read %s %d denied", sc, strap, a),
		fmt.Sprintf("%d physician search %s %d success", g, strap, a),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit trail:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
