package vitals

import (
	"context"
	"encoding/json"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Device connection events on a patient's live stream and timeline.
const (
	DeviceConnected    = "connected"
	DeviceDisconnected = "disconnected"
)

// LiveDevice is the live-vitals message for a device connecting or
// disconnecting. Relay names the device that relays it (the patient's
// browser, a hub) when it is a Bluetooth device paired to one: a relay
// that disconnects takes its devices' values with it.
type LiveDevice struct {
	Type   string    `json:"type"` // "device"
	Event  string    `json:"event"`
	Device string    `json:"device"`
	Relay  string    `json:"relay,omitempty"`
	Time   time.Time `json:"time"`
}

// EncodeDeviceEvent encodes a device event's live message.
func EncodeDeviceEvent(event, device string, at time.Time) []byte {
	return EncodeRelayedEvent(event, device, "", at)
}

// EncodeRelayedEvent encodes the live message of an event that relay
// reports for a device it paired.
func EncodeRelayedEvent(event, device, relay string, at time.Time) []byte {
	b, _ := json.Marshal(LiveDevice{Type: "device", Event: event, Device: device, Relay: relay, Time: at.UTC()})
	return b
}

// maxDeviceName is the longest relayed device name accepted, in characters.
const maxDeviceName = 64

// RelayedEvent is a device event that a relay (the patient's browser, or a
// device hub) reports for a Bluetooth device it paired: the envelope
// {"seq": N, "device": {"name", "event", "time"}}.
type RelayedEvent struct {
	Name  string    // the device's name as the relay knows it
	Event string    // DeviceConnected or DeviceDisconnected
	Time  time.Time // when the relay saw it
}

// EventRecorder keeps relayed device events for the patient's timeline.
// It is called once per handled event, after its sequence is acknowledged;
// a failure is the recorder's to report, and does not undo the handling.
type EventRecorder interface {
	RecordDeviceEvent(ctx context.Context, dev Device, e RelayedEvent)
}

// ParseDeviceEvent reads a relayed device event ({"name", "event", "time"}).
func ParseDeviceEvent(raw json.RawMessage) (RelayedEvent, error) {
	var m struct {
		Name  *string `json:"name"`
		Event string  `json:"event"`
		Time  string  `json:"time"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return RelayedEvent{}, decodeError("device", err)
	}
	if m.Name == nil {
		return RelayedEvent{}, fieldErr("device.name", "missing")
	}
	name, err := relayedName("device.name", *m.Name)
	if err != nil {
		return RelayedEvent{}, err
	}
	if m.Event != DeviceConnected && m.Event != DeviceDisconnected {
		return RelayedEvent{}, fieldErr("device.event", "%q, want %q or %q", truncate(m.Event, 40), DeviceConnected, DeviceDisconnected)
	}
	if m.Time == "" {
		return RelayedEvent{}, fieldErr("device.time", "missing")
	}
	when, err := parseDateTime("device.time", m.Time)
	if err != nil {
		return RelayedEvent{}, err
	}
	return RelayedEvent{Name: name, Event: m.Event, Time: when}, nil
}

// BrowserRelay is the name a patient's browser relays under (its device
// credential's, account.BrowserDevice): no device a relay paired may take it.
const BrowserRelay = "Web browser"

// relayedName checks the name of a device a relay paired, as its events
// and values carry it in field: trimmed, 1 to maxDeviceName characters,
// nothing invisible or reordering (invisibleRune), and not the patient's
// browser's name, which the physician's page would show as the browser
// itself coming or going.
func relayedName(field, s string) (string, error) {
	name := strings.TrimSpace(s)
	switch n := utf8.RuneCountInString(name); {
	case n == 0:
		return "", fieldErr(field, "empty")
	case n > maxDeviceName:
		return "", fieldErr(field, "%d characters, at most %d", n, maxDeviceName)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "", fieldErr(field, "holds a control character")
	case strings.IndexFunc(name, invisibleRune) >= 0:
		return "", fieldErr(field, "holds an invisible or reordering character")
	case sameName(name, BrowserRelay):
		return "", fieldErr(field, "%q is the patient's browser's own name; name the Bluetooth device", name)
	}
	return name, nil
}

// checkRelayedBy refuses a relayed device that field names as relay, the
// device relaying it: its events and values would read as the relay's own.
func checkRelayedBy(field, name, relay string) error {
	if sameName(name, relay) {
		return fieldErr(field, "%q is the relaying device's own name; name the Bluetooth device", name)
	}
	return nil
}

// invisibleRune reports the characters a device name may not hold since
// they do not show, or change how the rest shows: Unicode's Other
// categories (control Cc, format Cf such as zero-width spaces and
// direction overrides, private use Co, surrogates Cs) and the line and
// paragraph separators (Zl, Zp). static/bluetooth.js strips the same.
func invisibleRune(r rune) bool {
	return unicode.In(r, unicode.C, unicode.Zl, unicode.Zp)
}

// sameName reports whether two device names read the same: equal but for
// case and runs of spaces.
func sameName(a, b string) bool {
	return strings.EqualFold(strings.Join(strings.Fields(a), " "), strings.Join(strings.Fields(b), " "))
}
