package vitals

import (
	"encoding/json"
	"strings"
	"testing"
)

// withDevice adds a relayed device's name to a gatt message.
func withDevice(msg, name string) string {
	b, _ := json.Marshal(name)
	return `{"device":` + string(b) + `,` + strings.TrimPrefix(msg, "{")
}

// TestRelayedSource: a relayed value that names its Bluetooth device is
// published as that device's, relayed by the connection's device, as the
// relay's events for it are; a value that names none stays the
// connection's own. A viewer can so tell which values a Bluetooth
// device's disconnect takes with it.
func TestRelayedSource(t *testing.T) {
	in, st, pub := newTestIngester(t, 0)
	frames := [][]byte{
		devEnv(1, `{"name":"Polar H10 7E2F","event":"connected","time":"2026-11-25T10:00:00Z"}`),
		gattEnv(2, withDevice(gattMsg("2a37", "00 48"), " Polar H10 7E2F ")),
		gattEnv(3, withDevice(gattMsg("2a5f", "00 62 00 4B 00"), "Nonin 3230")),
		gattEnv(4, gattMsg("2a37", "00 49")),
		devEnv(5, `{"name":"Polar H10 7E2F","event":"disconnected","time":"2026-11-25T10:00:05Z"}`),
	}
	for i, f := range frames {
		if r := handle(t, in, f); r.ack != int64(i+1) || len(r.errs) != 0 {
			t.Fatalf("seq %d: %+v", i+1, r)
		}
	}
	type msg struct {
		Type, Code, Event, Device, Relay string
		Value                            float64
	}
	var got []msg
	for _, b := range pub.msgs[patientID] {
		var m msg
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	want := []msg{
		{Type: "device", Event: DeviceConnected, Device: "Polar H10 7E2F", Relay: "Home hub"},
		{Type: "reading", Code: "8867-4", Value: 72, Device: "Polar H10 7E2F", Relay: "Home hub"},
		{Type: "reading", Code: "59408-5", Value: 98, Device: "Nonin 3230", Relay: "Home hub"},
		{Type: "reading", Code: "8867-4", Value: 75, Device: "Nonin 3230", Relay: "Home hub"},
		{Type: "reading", Code: "8867-4", Value: 73, Device: "Home hub"},
		{Type: "device", Event: DeviceDisconnected, Device: "Polar H10 7E2F", Relay: "Home hub"},
	}
	if len(got) != len(want) {
		t.Fatalf("published %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if st.count() != 4 {
		t.Errorf("stored %d readings, want 4", st.count())
	}
	// The same bytes as encodeLive gives, which the other paths use.
	p, err := ParseGATT([]byte(withDevice(gattMsg("2a37", "00 48"), "Polar H10 7E2F")))
	if err != nil {
		t.Fatal(err)
	}
	if enc := encodeLive(p, "Home hub", serverNow); len(enc) != 1 || string(enc[0]) != string(pub.msgs[patientID][1]) {
		t.Errorf("encodeLive %q, want %q", enc, pub.msgs[patientID][1])
	}

	for _, c := range []struct{ name, field string }{
		{"  ", "gatt.device: empty"},
		{strings.Repeat("é", 65), "gatt.device: 65 characters, at most 64"},
		{"a\u0007b", "gatt.device: holds a control character"},
	} {
		if _, err := ParseGATT([]byte(withDevice(gattMsg("2a37", "00 48"), c.name))); err == nil || !strings.HasPrefix(err.Error(), c.field) {
			t.Errorf("device %q: error %v, want %q", c.name, err, c.field)
		}
	}
	if _, err := ParseGATT([]byte(`{"device":7,"characteristic":"2a37","value":"AEg=","time":"2026-11-25T10:00:00Z"}`)); err == nil || !strings.HasPrefix(err.Error(), "gatt") {
		t.Errorf("a device that is not a string: error %v", err)
	}
}
