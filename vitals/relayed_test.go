package vitals

import (
	"encoding/json"
	"slices"
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
	// What is stored names the device that measured it, as the live
	// stream does: the store keeps it with the reading.
	st.mu.Lock()
	var sources []string
	for _, r := range st.rows {
		sources = append(sources, r.Source)
	}
	st.mu.Unlock()
	if want := []string{"Polar H10 7E2F", "Nonin 3230", "Nonin 3230", ""}; !slices.Equal(sources, want) {
		t.Errorf("stored readings' sources %q, want %q", sources, want)
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

// TestRelayedNameIsNotTheRelays: a relayed device named as the relay
// itself (its credential's name, in any case or spacing) or as the
// patient's browser would make its values and events read as the
// relay's own, so that its going says the relay went while it streams.
// Such values and events are refused, naming the field; nothing of them
// is published or stored.
func TestRelayedNameIsNotTheRelays(t *testing.T) {
	in, st, pub := newTestIngester(t, 0) // the relay is "Home hub"
	frames := [][]byte{
		devEnv(1, `{"name":"Home hub","event":"disconnected","time":"2026-11-25T10:00:00Z"}`),
		devEnv(2, `{"name":" home  HUB ","event":"disconnected","time":"2026-11-25T10:00:00Z"}`),
		gattEnv(3, withDevice(gattMsg("2a37", "00 48"), "Home hub")),
		gattEnv(4, withDevice(gattMsg("2a37", "00 48"), "HOME hub")),
		devEnv(5, `{"name":"Web browser","event":"disconnected","time":"2026-11-25T10:00:00Z"}`),
		gattEnv(6, withDevice(gattMsg("2a37", "00 48"), "web browser")),
	}
	for i, f := range frames {
		r := handle(t, in, f)
		if len(r.rejected) != 1 {
			t.Errorf("seq %d, a relayed device named as the relay or the browser: %+v, want it rejected", i+1, r)
		}
	}
	if n := len(pub.msgs[patientID]); n != 0 {
		t.Errorf("published %q, want nothing", pub.msgs[patientID])
	}
	if st.count() != 0 {
		t.Errorf("stored %d readings, want none", st.count())
	}
	for _, c := range []struct{ msg, want string }{
		{withDevice(gattMsg("2a37", "00 48"), "Web  Browser"), `gatt.device: "Web  Browser" is the patient's browser's own name`},
	} {
		if _, err := ParseGATT([]byte(c.msg)); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.msg, err, c.want)
		}
	}
	if err := checkRelayedBy("device.name", "home hub", "Home hub"); err == nil || !strings.HasPrefix(err.Error(), `device.name: "home hub" is the relaying device's own name`) {
		t.Errorf("a relayed device named as its relay: %v", err)
	}
	// Names that only look alike are another device's.
	for _, name := range []string{"Home hub 2", "Homehub", "Web browser (2)"} {
		if _, err := relayedName("gatt.device", name); err != nil || checkRelayedBy("gatt.device", name, "Home hub") != nil {
			t.Errorf("%q refused: %v", name, err)
		}
	}
}

// TestRelayedNameInvisibleCharacters: a name holding characters that do
// not show or that reorder the rest (Unicode's Other categories: format
// characters such as zero-width spaces and direction overrides, private
// use; line and paragraph separators) would show on the physician's page
// as another device's name, so a relayed value or event naming one is
// refused.
func TestRelayedNameInvisibleCharacters(t *testing.T) {
	for _, name := range []string{
		"Web\u200bbrowser",       // zero-width space (Cf)
		"Home hub\u200b",         // shows exactly as the hub
		"\u202eresworb beW",      // right-to-left override (Cf): shows as "Web browser"
		"Polar\u2028H10",         // line separator (Zl)
		"Polar\u2029H10",         // paragraph separator (Zp)
		"Nonin\u2066 3230\u2069", // directional isolates (Cf)
		"Nonin\ufeff3230",        // zero-width no-break space (Cf)
		"Omron\ue000",            // private use (Co)
		"a\u00adb",               // soft hyphen (Cf)
	} {
		want := "holds an invisible or reordering character"
		if _, err := ParseGATT([]byte(withDevice(gattMsg("2a37", "00 48"), name))); err == nil || err.Error() != "gatt.device: "+want {
			t.Errorf("gatt.device %+q: error %v, want %q", name, err, want)
		}
		ev, _ := json.Marshal(name)
		if _, err := ParseDeviceEvent([]byte(`{"name":` + string(ev) + `,"event":"connected","time":"2026-11-25T10:00:00Z"}`)); err == nil || err.Error() != "device.name: "+want {
			t.Errorf("device.name %+q: error %v, want %q", name, err, want)
		}
	}
	// What shows is accepted, whatever its script.
	for _, name := range []string{"Polar H10 7E2F", "Thermomètre Braun", "血压计 BP-1", "ميزان", "Omron\u00a0M7"} {
		if _, err := relayedName("device.name", name); err != nil {
			t.Errorf("%+q refused: %v", name, err)
		}
	}
}
