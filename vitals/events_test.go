package vitals

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

// eventLog is an EventRecorder that keeps what it is given.
type eventLog struct {
	mu     sync.Mutex
	events []RelayedEvent
}

var _ EventRecorder = (*eventLog)(nil)

func (l *eventLog) RecordDeviceEvent(_ context.Context, dev Device, e RelayedEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func devEnv(seq int64, msg string) []byte {
	return []byte(`{"seq":` + itoa(seq) + `,"device":` + msg + `}`)
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestParseDeviceEvent(t *testing.T) {
	e, err := ParseDeviceEvent([]byte(`{"name":" Polar H10 7E2F ","event":"disconnected","time":"2026-11-25T11:00:00.5+01:00"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := RelayedEvent{Name: "Polar H10 7E2F", Event: DeviceDisconnected, Time: time.Date(2026, 11, 25, 10, 0, 0, 5e8, time.UTC)}
	if e != want {
		t.Fatalf("got %+v, want %+v", e, want)
	}
	for _, c := range []struct{ msg, field string }{
		{`{"event":"connected","time":"2026-11-25T10:00:00Z"}`, "device.name: missing"},
		{`{"name":"  ","event":"connected","time":"2026-11-25T10:00:00Z"}`, "device.name: empty"},
		{`{"name":"` + strings.Repeat("é", 65) + `","event":"connected","time":"2026-11-25T10:00:00Z"}`, "device.name: 65 characters, at most 64"},
		{`{"name":"a\u0007b","event":"connected","time":"2026-11-25T10:00:00Z"}`, "device.name: holds a control character"},
		{`{"name":"Cuff","event":"paired","time":"2026-11-25T10:00:00Z"}`, `device.event: "paired", want "connected" or "disconnected"`},
		{`{"name":"Cuff","event":"connected"}`, "device.time: missing"},
		{`{"name":"Cuff","event":"connected","time":"2026-11-25T10:00:00"}`, "device.time: \"2026-11-25T10:00:00\" is not a FHIR dateTime"},
		{`[1]`, "device"},
	} {
		if _, err := ParseDeviceEvent([]byte(c.msg)); err == nil || !strings.HasPrefix(err.Error(), c.field) {
			t.Errorf("%s: error %v, want %q", c.msg, err, c.field)
		}
	}
}

// TestIngesterDeviceEvents: a relayed event takes a seq like any message,
// is recorded and published once, even when the relay sends it again
// after a reconnect, and a bad one is rejected by number.
func TestIngesterDeviceEvents(t *testing.T) {
	in, st, pub := newTestIngester(t, 0)
	log := &eventLog{}
	in.RecordEvents(log)
	connected := `{"name":"Omron X4","event":"connected","time":"2026-11-25T10:00:00Z"}`
	if r := handle(t, in, devEnv(1, connected)); r.ack != 1 || len(r.errs) != 0 {
		t.Fatalf("seq 1: %+v", r)
	}
	if r := handle(t, in, gattEnv(2, gattMsg("2a37", "00 48"))); r.ack != 2 || len(r.errs) != 0 {
		t.Fatalf("seq 2: %+v", r)
	}
	// The relay lost the acks and sends both again: nothing new.
	for seq, f := range [][]byte{devEnv(1, connected), gattEnv(2, gattMsg("2a37", "00 48"))} {
		if r := handle(t, in, f); r.ack != 2 || len(r.errs) != 0 {
			t.Fatalf("resent seq %d: %+v", seq+1, r)
		}
	}
	r := handle(t, in, devEnv(3, `{"name":"Omron X4","event":"gone","time":"2026-11-25T10:00:01Z"}`))
	if r.ack != 3 || len(r.rejected) != 1 || r.rejected[0] != 3 || !strings.HasPrefix(r.errs[0], "device.event:") {
		t.Fatalf("bad event: %+v", r)
	}
	if len(log.events) != 1 || log.events[0].Name != "Omron X4" || log.events[0].Event != DeviceConnected {
		t.Fatalf("recorded %+v, want the one connect", log.events)
	}
	if st.count() != 1 || pub.count(patientID) != 2 {
		t.Fatalf("stored %d readings, published %d messages; want 1 and 2", st.count(), pub.count(patientID))
	}
	var live LiveDevice
	if err := json.Unmarshal(pub.msgs[patientID][0], &live); err != nil || live.Type != "device" || live.Device != "Omron X4" || live.Event != DeviceConnected {
		t.Fatalf("live message %s (%v)", pub.msgs[patientID][0], err)
	}
	// An event may not ride with a reading.
	both := []byte(`{"seq":4,"device":` + connected + `,"gatt":` + gattMsg("2a37", "00 48") + `}`)
	if r := handle(t, in, both); r.ack != 4 || len(r.rejected) != 1 || !strings.HasPrefix(r.errs[0], "device:") {
		t.Fatalf("event with a reading: %+v", r)
	}
}
