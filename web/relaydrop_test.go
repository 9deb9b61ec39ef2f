package web

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/vitals"
)

// TestRelayDropDisconnectsItsDevices: a relay (a hub, the patient's
// browser) says two Bluetooth devices connected and one of them went;
// when its socket ends, the one still connected is disconnected, on the
// viewers' stream and on the timeline, before the relay itself, each
// event naming the relay. So a relay that comes back without the device
// does not show the device's last values as live again.
func TestRelayDropDisconnectsItsDevices(t *testing.T) {
	f := newFixture(t)
	cred, err := f.st.CredentialByHash(t.Context(), store.CredentialDevice, auth.HashToken(f.devToken))
	if err != nil {
		t.Fatal(err)
	}
	relay := cred.Name
	viewer, _ := dialVitals(t, f, "doc@example.org")
	dev := dialDevice(t, f, f.devToken)
	at := time.Now().UTC().Truncate(time.Millisecond)
	for i, m := range []string{`"Polar H10 7E2F","event":"connected"`, `"Nonin 3230","event":"connected"`, `"Nonin 3230","event":"disconnected"`} {
		frame := fmt.Sprintf(`{"seq":%d,"device":{"name":%s,"time":%q}}`, i+1, m, at.Format(time.RFC3339Nano))
		if err := dev.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
	readAcks(t, dev, 3)
	dev.UnderlyingConn().Close() // a drop, as a reloaded page or a lost network

	type event struct{ Type, Event, Device, Relay string }
	var live []string
	for {
		var m event
		if err := json.Unmarshal(viewer.next(t), &m); err != nil {
			t.Fatal(err)
		}
		if m.Type != "device" {
			continue
		}
		live = append(live, m.Device+" via "+m.Relay+" "+m.Event)
		if m.Device == relay && m.Relay == "" && m.Event == store.DeviceDisconnected {
			break
		}
	}
	want := []string{
		relay + " via  connected",
		"Polar H10 7E2F via " + relay + " connected",
		"Nonin 3230 via " + relay + " connected",
		"Nonin 3230 via " + relay + " disconnected",
		"Polar H10 7E2F via " + relay + " disconnected",
		relay + " via  disconnected",
	}
	if !slices.Equal(live, want) {
		t.Errorf("device messages on the stream:\n%q\nwant\n%q", live, want)
	}

	evs, err := f.st.DeviceEventsBetween(t.Context(), f.pat.ID, at.Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for _, e := range evs {
		stored = append(stored, e.Device+" via "+e.Relay+" "+e.Kind)
	}
	// The relay's own disconnect is stored before it is published, so
	// every event is in the store by now; the two relayed connects and
	// the Nonin's disconnect carry the relay's time, before the server's.
	if len(stored) != len(want) || !slices.Equal(stored[len(stored)-2:], want[len(want)-2:]) {
		t.Errorf("device events stored:\n%q\nwant\n%q (the last two in that order)", stored, want)
	}
	for _, w := range want[1:4] {
		if !slices.Contains(stored, w) {
			t.Errorf("stored events %q lack %q", stored, w)
		}
	}
}

// TestBrowserRelayName: the name vitals refuses for a relayed device is
// the one the patient's browser streams as.
func TestBrowserRelayName(t *testing.T) {
	if vitals.BrowserRelay != browserDevice {
		t.Fatalf("vitals.BrowserRelay %q, the browser's device %q", vitals.BrowserRelay, browserDevice)
	}
}
