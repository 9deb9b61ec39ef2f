package web

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// gattFrame is a relayed characteristic value of the named Bluetooth
// device ("" for none), relayed now.
func gattFrame(seq int, device, characteristic string, value []byte) string {
	name := ""
	if device != "" {
		name = fmt.Sprintf(`"device":%q,`, device)
	}
	return fmt.Sprintf(`{"seq":%d,"gatt":{%s"characteristic":%q,"value":%q,"time":%q}}`,
		seq, name, characteristic, base64.StdEncoding.EncodeToString(value), time.Now().UTC().Format(time.RFC3339Nano))
}

// TestRelayedReadingsKeepTheirDevice: a hub relays the values of two
// Bluetooth devices over the device socket, over two connections; each
// device's readings are stored as that device's (one relayed device each,
// the same across the connections), and the visit's FHIR export names
// each as a Device whose parent is the hub. A direct device's readings,
// stored beside them, name no relayed device.
func TestRelayedReadingsKeepTheirDevice(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	if _, err := f.st.SetAppointmentStatus(ctx, f.visit.ID, scheduling.StatusArrived, store.Change{ActorID: f.doc.ID, At: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	hubToken, hash := auth.NewToken()
	hub, err := f.st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: hash, UserID: f.pat.ID, Name: "Home hub", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}

	relay := dialDevice(t, f, hubToken)
	heartRate := []byte{0x00, 0x48}             // 72 /min
	plx := []byte{0x00, 0x62, 0x00, 0x4B, 0x00} // SpO2 98 %, pulse 75 /min
	if ack := lastAck(t, sendFrame(t, relay, gattFrame(1, "Polar H10 7E2F", "2a37", heartRate))); ack != 1 {
		t.Fatalf("ack %d, want 1", ack)
	}
	if ack := lastAck(t, sendFrame(t, relay, gattFrame(2, "Nonin 3230", "2a5f", plx))); ack != 2 {
		t.Fatalf("ack %d, want 2", ack)
	}
	relay.Close()
	relay = dialDevice(t, f, hubToken)
	if ack := lastAck(t, sendFrame(t, relay, gattFrame(3, " Polar H10 7E2F ", "2a37", []byte{0x00, 0x49}))); ack != 3 {
		t.Fatalf("ack %d, want 3", ack)
	}
	direct := dialDevice(t, f, f.devToken)
	if ack := lastAck(t, sendFrame(t, direct, envelope(1, "8867-4", 70, "/min", ""))); ack != 1 {
		t.Fatalf("direct device's ack %d, want 1", ack)
	}

	relayed, err := f.st.RelayedDevices(ctx, f.pat.ID)
	if err != nil || len(relayed) != 2 || relayed[0].Name != "Polar H10 7E2F" || relayed[1].Name != "Nonin 3230" ||
		relayed[0].RelayID != hub.ID || relayed[1].RelayID != hub.ID {
		t.Fatalf("relayed devices %+v, %v; want the strap and the oximeter, both through the hub", relayed, err)
	}
	strap, oxi := relayed[0].ID, relayed[1].ID
	obs, err := f.st.ObservationsBetween(ctx, f.pat.ID, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range obs {
		got = append(got, fmt.Sprintf("%d/%d %s %v by %d", o.DeviceID, o.Seq, o.Code, o.Value, o.Relayed))
	}
	slices.Sort(got)
	want := []string{
		fmt.Sprintf("%d/1 8867-4 70 by 0", f.devID),
		fmt.Sprintf("%d/1 8867-4 72 by %d", hub.ID, strap),
		fmt.Sprintf("%d/2 59408-5 98 by %d", hub.ID, oxi),
		fmt.Sprintf("%d/2 8867-4 75 by %d", hub.ID, oxi),
		fmt.Sprintf("%d/3 8867-4 73 by %d", hub.ID, strap),
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("stored readings (device/seq code value by relayed device):\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The visit's export names each device, a relayed one with the hub as
	// its parent, and each reading references the device that measured it.
	doc := f.signIn(t, "doc@example.org")
	resp, err := doc.Get(fmt.Sprintf("%s/visits/%d/record/fhir", f.srv.URL, f.visit.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b struct {
		Entry []struct {
			Resource struct {
				ResourceType, ID string
				DeviceName       []struct{ Name string }
				Parent, Device   *struct{ Reference string }
				ValueQuantity    *struct{ Value float64 }
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("export: %d %v", resp.StatusCode, err)
	}
	var devices, readings []string
	for _, e := range b.Entry {
		r := e.Resource
		switch {
		case r.ResourceType == "Device":
			d := "Device/" + r.ID + " " + r.DeviceName[0].Name
			if r.Parent != nil {
				d += " parent " + r.Parent.Reference
			}
			devices = append(devices, d)
		case r.ResourceType == "Observation" && r.Device != nil && r.ValueQuantity != nil:
			readings = append(readings, fmt.Sprintf("%v from %s", r.ValueQuantity.Value, r.Device.Reference))
		}
	}
	slices.Sort(devices)
	slices.Sort(readings)
	hubRef := fmt.Sprint("Device/", hub.ID)
	strapRef, oxiRef := fmt.Sprintf("%s-%d", hubRef, strap), fmt.Sprintf("%s-%d", hubRef, oxi)
	wantDevices := []string{
		fmt.Sprintf("Device/%d Oximeter", f.devID),
		strapRef + " Polar H10 7E2F parent " + hubRef,
		oxiRef + " Nonin 3230 parent " + hubRef,
		hubRef + " Home hub",
	}
	slices.Sort(wantDevices)
	if !slices.Equal(devices, wantDevices) {
		t.Errorf("exported Devices:\n%s\nwant\n%s", strings.Join(devices, "\n"), strings.Join(wantDevices, "\n"))
	}
	wantReadings := []string{fmt.Sprintf("70 from Device/%d", f.devID), "72 from " + strapRef, "73 from " + strapRef, "75 from " + oxiRef, "98 from " + oxiRef}
	slices.Sort(wantReadings)
	if !slices.Equal(readings, wantReadings) {
		t.Errorf("exported readings:\n%s\nwant\n%s", strings.Join(readings, "\n"), strings.Join(wantReadings, "\n"))
	}
}
