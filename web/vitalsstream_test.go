package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/vitals/live"
)

// streamMsg is any message on a vitals viewer socket.
type streamMsg struct {
	Type        string  `json:"type"`
	Patient     int64   `json:"patient"`
	Offset      int64   `json:"offset"`
	Appointment int64   `json:"appointment"`
	Epoch       string  `json:"epoch"`
	From        int64   `json:"from"`
	To          int64   `json:"to"`
	Code        string  `json:"code"`
	Value       float64 `json:"value"`
	Event       string  `json:"event"`
	Error       string  `json:"error"`
}

func (v *viewerClient) nextMsg(t *testing.T) streamMsg {
	t.Helper()
	b := v.next(t)
	var m streamMsg
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("viewer message %s: %v", b, err)
	}
	return m
}

// isStreamMessage reports whether m carries an offset of a patient's stream.
func isStreamMessage(m streamMsg) bool {
	switch m.Type {
	case "reading", "waveform", "device", "news2", "alert", "stale":
		return true
	}
	return false
}

// tally follows one viewer through a stream: every offset must come
// exactly once, in order, with gap markers for what is missing.
type tally struct {
	t        *testing.T
	epoch    string
	last     int64
	readings map[float64]int // value -> times seen
	gaps     []streamMsg
	events   []string
}

func newTally(t *testing.T) *tally { return &tally{t: t, readings: map[float64]int{}} }

// take applies one message; placed says whether the viewer had its stream
// message yet (messages before it are replay and need not follow on).
func (ty *tally) take(m streamMsg) {
	ty.t.Helper()
	switch {
	case m.Type == "stream":
		ty.epoch, ty.last = m.Epoch, m.Offset
	case m.Type == "gap":
		if m.Epoch == ty.epoch && m.From != ty.last+1 {
			ty.t.Fatalf("gap %+v does not follow on from offset %d", m, ty.last)
		}
		ty.gaps = append(ty.gaps, m)
		if m.Epoch == ty.epoch && m.To > 0 {
			ty.last = m.To
		}
	case isStreamMessage(m):
		if ty.epoch != "" && m.Offset != ty.last+1 {
			ty.t.Fatalf("offset %d after %d: a hole or a duplicate", m.Offset, ty.last)
		}
		if ty.epoch != "" {
			ty.last = m.Offset
		}
		if m.Type == "reading" {
			ty.readings[m.Value]++
		}
		if m.Type == "device" {
			ty.events = append(ty.events, m.Event)
		}
	}
}

// readUntil reads v into ty until done says enough.
func (ty *tally) readUntil(v *viewerClient, done func() bool) {
	ty.t.Helper()
	for !done() {
		ty.take(v.nextMsg(ty.t))
	}
}

// readUntilStream reads the replay of a new subscription up to its stream
// message, checking resumed replays follow on.
func (ty *tally) readUntilStream(v *viewerClient) {
	ty.t.Helper()
	for {
		m := v.nextMsg(ty.t)
		ty.take(m)
		if m.Type == "stream" {
			return
		}
	}
}

func (ty *tally) seenAll(from, to int) func() bool {
	return func() bool {
		for v := from; v <= to; v++ {
			if ty.readings[float64(v)] == 0 {
				return false
			}
		}
		return true
	}
}

func (ty *tally) checkOnce(t *testing.T, from, to int) {
	t.Helper()
	for v := from; v <= to; v++ {
		if n := ty.readings[float64(v)]; n != 1 {
			t.Fatalf("reading %d seen %d times, want exactly once", v, n)
		}
	}
}

// readAcks reads device replies until an ack of at least want.
func readAcks(t *testing.T, ws *websocket.Conn, want int64) int64 {
	t.Helper()
	for {
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		var r reply
		if err := ws.ReadJSON(&r); err != nil {
			t.Fatalf("device reply: %v", err)
		}
		if r.Ack != nil && *r.Ack >= want {
			return *r.Ack
		}
	}
}

// TestDeviceDropMidStream: the device's TCP connection is cut while
// messages are in flight; it reconnects and resends from its last ack.
// Every reading is stored exactly once and the viewer sees every offset
// exactly once, the device's coming and going included.
func TestDeviceDropMidStream(t *testing.T) {
	f := newFixture(t)
	viewer, _ := dialVitals(t, f, "doc@example.org")
	ty := newTally(t)
	ty.readUntilStream(viewer)
	dev := dialDevice(t, f, f.devToken)
	for seq := 1; seq <= 20; seq++ {
		if err := dev.WriteMessage(websocket.TextMessage, []byte(envelope(seq, "8867-4", float64(40+seq), "/min", ""))); err != nil {
			t.Fatal(err)
		}
	}
	acked := readAcks(t, dev, 5)
	dev.UnderlyingConn().Close() // a forced drop: no close frame, replies lost
	dev = dialDevice(t, f, f.devToken)
	for seq := acked + 1; seq <= 40; seq++ {
		if err := dev.WriteMessage(websocket.TextMessage, []byte(envelope(int(seq), "8867-4", float64(40+seq), "/min", ""))); err != nil {
			t.Fatal(err)
		}
	}
	readAcks(t, dev, 40)
	ty.readUntil(viewer, ty.seenAll(41, 80))
	ty.checkOnce(t, 41, 80)
	if len(ty.gaps) != 0 {
		t.Fatalf("gap markers %+v, but nothing was lost", ty.gaps)
	}
	if n := f.storedCount(t); n != 40 {
		t.Fatalf("stored %d readings, want 40", n)
	}
	if !slices.Contains(ty.events, "connected") {
		t.Fatalf("device events on the stream: %q, want the connection", ty.events)
	}
	evs, err := f.st.DeviceEventsBetween(t.Context(), f.pat.ID, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	kinds := make([]string, 0, len(evs))
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	// The second connection replaced the first, which was disconnected.
	if len(kinds) < 3 || kinds[0] != store.DeviceConnected || !slices.Contains(kinds, store.DeviceDisconnected) {
		t.Fatalf("stored device events %q, want connected, disconnected, connected", kinds)
	}
}

// TestViewerDropMidStreamResumes: the viewer's TCP connection is cut
// mid-stream; it reconnects with the epoch and offset it had and ends with
// every offset exactly once. With a history too short for what it missed,
// it gets a gap marker naming exactly what is gone.
func TestViewerDropMidStreamResumes(t *testing.T) {
	for _, c := range []struct {
		name    string
		history int
	}{{"history holds it", 0}, {"history exceeded", 5}} {
		t.Run(c.name, func(t *testing.T) {
			hub := live.NewHub(live.Config{HistoryMessages: c.history})
			f := newFixtureWith(t, func(d *Deps) { d.Live = hub })
			dev := dialDevice(t, f, f.devToken)
			viewer, _ := dialVitals(t, f, "doc@example.org")
			ty := newTally(t)
			ty.readUntilStream(viewer)
			for seq := 1; seq <= 10; seq++ {
				lastAck(t, sendFrame(t, dev, envelope(seq, "8867-4", float64(100+seq), "/min", "")))
			}
			ty.readUntil(viewer, ty.seenAll(101, 105))
			viewer.UnderlyingConn().Close() // what was read but not taken is lost with it
			for seq := 11; seq <= 30; seq++ {
				lastAck(t, sendFrame(t, dev, envelope(seq, "8867-4", float64(100+seq), "/min", "")))
			}
			epoch, last := hub.Position(f.pat.ID)
			if epoch != ty.epoch {
				t.Fatalf("the stream's epoch changed from %q to %q", ty.epoch, epoch)
			}
			at := ty.last
			viewer, _ = dialVitalsPath(t, f, "doc@example.org", fmt.Sprintf("/ws/vitals/%d?epoch=%s&offset=%d", f.visit.ID, ty.epoch, at))
			ty.readUntilStream(viewer)
			if ty.last != last {
				t.Fatalf("after resuming the viewer stands at %d, the stream at %d", ty.last, last)
			}
			if c.history == 0 {
				if len(ty.gaps) != 0 {
					t.Fatalf("gap markers %+v with the history holding everything", ty.gaps)
				}
				ty.checkOnce(t, 101, 130)
				return
			}
			want := streamMsg{Type: "gap", Patient: f.pat.ID, Epoch: epoch, From: at + 1, To: last - 5}
			if len(ty.gaps) != 1 || ty.gaps[0] != want {
				t.Fatalf("gap markers %+v, want exactly %+v", ty.gaps, want)
			}
			for v := 126; v <= 130; v++ {
				if ty.readings[float64(v)] != 1 {
					t.Fatalf("reading %d, in the history, seen %d times", v, ty.readings[float64(v)])
				}
			}
		})
	}
}

// TestSlowViewerDoesNotHoldBackOthers: a viewer that stops reading (its
// TCP receive window fills) neither delays another viewer nor the device's
// acks; it is disconnected with close 4001 and may resume.
func TestSlowViewerDoesNotHoldBackOthers(t *testing.T) {
	hub := live.NewHub(live.Config{HistoryMessages: 16, QueueMessages: 32})
	f := newFixtureWith(t, func(d *Deps) {
		d.Live = hub
		d.DeviceRate = MessageRate{PerSecond: 1e6, Burst: 1e6}
		// The slow viewer reads again only once all is sent, however long
		// a loaded machine takes; its blocked write must last until then.
		d.VitalsWriteTimeout = time.Minute
	})
	// The slow viewer's socket is never read until the end, so its TCP
	// receive window and the server's send buffer fill.
	slowClient, _ := dialVitals(t, f, "doc@example.org")
	slow := slowClient.Conn
	fast, _ := dialVitals(t, f, "doc@example.org")
	ty := newTally(t)
	ty.readUntilStream(fast)

	// Big waveform chunks fill the slow socket's buffers quickly.
	samples := strings.TrimSpace(strings.Repeat("1234 ", 4000))
	dev := dialDevice(t, f, f.devToken)
	const n = 320 // about 6.5 MB: more than the loopback buffers of both ends hold
	// The fast viewer reads as it comes.
	fastDone := make(chan error, 1)
	go func() {
		waves := 0
		for waves < n {
			_ = fast.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, b, err := fast.ReadMessage()
			if err != nil {
				fastDone <- fmt.Errorf("fast viewer after %d chunks: %w", waves, err)
				return
			}
			var frame []streamMsg
			if err := json.Unmarshal(b, &frame); err != nil {
				fastDone <- err
				return
			}
			for _, m := range frame {
				if m.Type == "gap" {
					fastDone <- fmt.Errorf("the fast viewer got a gap marker %+v", m)
					return
				}
				if m.Type == "waveform" {
					if m.Offset != ty.last+1 {
						fastDone <- fmt.Errorf("fast viewer: offset %d after %d", m.Offset, ty.last)
						return
					}
					waves++
				}
				if isStreamMessage(m) {
					ty.last = m.Offset
				}
			}
		}
		fastDone <- nil
	}()
	done := make(chan error, 1)
	go func() {
		for seq := 1; seq <= n; seq++ {
			frame := fmt.Sprintf(`{"seq":%d,"observation":{"resourceType":"Observation","status":"final",
"code":{"coding":[{"system":"urn:oid:2.16.840.1.113883.6.24","code":"131330"}]},"effectiveDateTime":%q,
"valueSampledData":{"origin":{"value":0,"unit":"mV"},"period":4,"factor":0.001,"dimensions":1,"data":%q}}}`,
				seq, time.Now().UTC().Format(time.RFC3339Nano), samples)
			if err := dev.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	if got := readAcks(t, dev, n); got != n {
		t.Fatalf("device acked to %d, want %d", got, n)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-fastDone; err != nil {
		t.Fatal(err)
	}
	// All of it reached the fast viewer and the device while the slow one
	// read nothing. Now it reads: what was in flight, then the close.
	_ = slow.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, _, err := slow.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != closeFellBehind || !strings.Contains(ce.Text, "resume") {
			t.Fatalf("the slow viewer ended with %v, want close %d", err, closeFellBehind)
		}
		break
	}
}

// TestMultiVisitViewerAuthorization: one socket watches several visits;
// each subscription is checked like the single-visit socket and audited,
// another physician's visit is refused (and the refusal audited), and the
// patients' messages arrive batched, each naming its patient.
func TestMultiVisitViewerAuthorization(t *testing.T) {
	f := newFixtureWith(t, func(d *Deps) { d.Audit = &audit.Recorder{Store: d.Store} })
	ctx := t.Context()
	start := f.visit.End
	// Just before the fixture's visit, so its live window is open too.
	mine2, err := f.st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: f.doc.ID, PatientID: f.other.ID,
		Start: f.visit.Start.Add(-30 * time.Minute), End: f.visit.Start}, store.Change{})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := f.st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: f.doc2.ID, PatientID: f.other.ID,
		Start: start.Add(time.Hour), End: start.Add(90 * time.Minute)}, store.Change{})
	if err != nil {
		t.Fatal(err)
	}
	v, status := dialVitalsPath(t, f, "doc@example.org", "/ws/vitals")
	if v == nil {
		t.Fatalf("multi-visit socket: %d", status)
	}
	send := func(s string) {
		t.Helper()
		if err := v.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	send(`{"type":"subscribe","appointment":` + fmt.Sprint(theirs.ID) + `}`)
	if m := v.nextMsg(t); m.Type != "error" || m.Appointment != theirs.ID || !strings.Contains(m.Error, "physician") {
		t.Fatalf("another physician's visit: %+v, want a refusal naming it", m)
	}
	send(`{"type":"subscribe","appointment":"x"}`)
	if m := v.nextMsg(t); m.Type != "error" || !strings.Contains(m.Error, "appointment") {
		t.Fatalf("a malformed request: %+v, want an error naming appointment", m)
	}
	patients := map[int64]int64{}
	for _, a := range []scheduling.Appointment{f.visit, mine2} {
		send(`{"type":"subscribe","appointment":` + fmt.Sprint(a.ID) + `}`)
		if m := v.nextMsg(t); m.Type != "snapshot" || m.Patient != a.PatientID {
			t.Fatalf("subscribing to %d: %+v, want the patient's NEWS2 snapshot first", a.ID, m)
		}
		m := v.nextMsg(t)
		if m.Type != "stream" || m.Appointment != a.ID || m.Patient != a.PatientID {
			t.Fatalf("subscribing to %d: %+v", a.ID, m)
		}
		patients[a.PatientID] = a.ID
	}
	dev := dialDevice(t, f, f.devToken)
	other := dialDevice(t, f, f.otherToken)
	lastAck(t, sendFrame(t, dev, envelope(1, "8867-4", 61, "/min", "")))
	lastAck(t, sendFrame(t, other, envelope(1, "8867-4", 62, "/min", "")))
	got := map[int64]float64{}
	for len(got) < 2 {
		m := v.nextMsg(t)
		if m.Type == "reading" {
			got[m.Patient] = m.Value
		}
	}
	if got[f.pat.ID] != 61 || got[f.other.ID] != 62 {
		t.Fatalf("readings by patient %v, want 61 for %d and 62 for %d", got, f.pat.ID, f.other.ID)
	}
	events, _, err := f.st.AuditEvents(ctx, store.AuditQuery{ActorID: f.doc.ID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var ok, denied []string
	for _, e := range events {
		if strings.HasSuffix(e.Resource, "/vitals") {
			if e.Outcome == audit.OutcomeDenied {
				denied = append(denied, e.Resource)
			} else {
				ok = append(ok, e.Resource)
			}
		}
	}
	if len(ok) != 2 || len(denied) != 1 || denied[0] != audit.Ref("Appointment", theirs.ID)+"/vitals" {
		t.Fatalf("audited %q allowed and %q denied; want both own visits and the refusal", ok, denied)
	}
	// Unsubscribing stops a patient's messages.
	send(`{"type":"unsubscribe","appointment":` + fmt.Sprint(mine2.ID) + `}`)
	for m := v.nextMsg(t); m.Type != "unsubscribed"; m = v.nextMsg(t) {
	}
	lastAck(t, sendFrame(t, other, envelope(2, "8867-4", 63, "/min", "")))
	lastAck(t, sendFrame(t, dev, envelope(2, "8867-4", 64, "/min", "")))
	for {
		m := v.nextMsg(t)
		if m.Type == "reading" && m.Patient == f.other.ID {
			t.Fatalf("a reading of an unsubscribed visit arrived: %+v", m)
		}
		if m.Type == "reading" && m.Value == 64 {
			break
		}
	}
	_ = http.StatusOK
}

// TestDeviceRelayedEvent: a relay reports a paired Bluetooth device coming
// and going; both are kept on the patient's timeline under the device's
// own name and time, once each although the relay sends them twice.
func TestDeviceRelayedEvent(t *testing.T) {
	f := newFixture(t)
	dev := dialDevice(t, f, f.devToken)
	at := time.Now().UTC().Truncate(time.Millisecond)
	msgs := []string{
		fmt.Sprintf(`{"seq":1,"device":{"name":"Polar H10 7E2F","event":"connected","time":%q}}`, at.Format(time.RFC3339Nano)),
		fmt.Sprintf(`{"seq":2,"device":{"name":"Polar H10 7E2F","event":"disconnected","time":%q}}`, at.Add(time.Second).Format(time.RFC3339Nano)),
	}
	for _, m := range append(msgs, msgs...) {
		if err := dev.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	readAcks(t, dev, 2)
	evs, err := f.st.DeviceEventsBetween(t.Context(), f.pat.ID, at.Add(-time.Hour), at.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		if e.Device == "Polar H10 7E2F" {
			got = append(got, e.Kind+"@"+e.At.UTC().Sub(at).String())
		}
	}
	if want := []string{"connected@0s", "disconnected@1s"}; !slices.Equal(got, want) {
		t.Fatalf("relayed events stored %q, want %q", got, want)
	}
}
