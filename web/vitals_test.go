package web

import (
	"context"
	"encoding/base64"
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
)

// observation builds a device envelope with one numeric observation.
func envelope(seq int, code string, value float64, unit string, subject string) string {
	subj := ""
	if subject != "" {
		subj = fmt.Sprintf(`"subject":{"reference":%q},`, subject)
	}
	return fmt.Sprintf(`{"seq":%d,"observation":{"resourceType":"Observation","status":"final",%s
"code":{"coding":[{"system":"http://loinc.org","code":%q}]},
"effectiveDateTime":%q,
"valueQuantity":{"value":%v,"unit":%q,"system":"http://unitsofmeasure.org","code":%q}}}`,
		seq, subj, code, time.Now().UTC().Format(time.RFC3339Nano), value, unit, unit)
}

type reply struct {
	Ack   *int64 `json:"ack"`
	Error string `json:"error"`
	Seq   *int64 `json:"seq"`
}

func dialDevice(t *testing.T, f *fixture, token string) *websocket.Conn {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + token}}
	ws, resp, err := websocket.DefaultDialer.Dial(f.wsURL("/ws/device"), h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial device: %v (status %d)", err, status)
	}
	t.Cleanup(func() { ws.Close() })
	// The server says first where the device's sequence stands.
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var r reply
	if err := ws.ReadJSON(&r); err != nil || r.Ack == nil {
		t.Fatalf("first device message %+v (%v), want an ack", r, err)
	}
	return ws
}

// send writes one frame and reads replies until one matches want.
func sendFrame(t *testing.T, ws *websocket.Conn, frame string) []reply {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatal(err)
	}
	var out []reply
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("read reply: %v (so far %+v)", err, out)
		}
		var r reply
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("reply %s is not JSON: %v", b, err)
		}
		out = append(out, r)
		if r.Ack != nil || (r.Error != "" && r.Seq == nil) {
			return out
		}
	}
}

func lastAck(t *testing.T, rs []reply) int64 {
	t.Helper()
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].Ack != nil {
			return *rs[i].Ack
		}
	}
	t.Fatalf("no ack in %+v", rs)
	return 0
}

type liveReading struct {
	Type  string   `json:"type"`
	Code  string   `json:"code"`
	Value float64  `json:"value"`
	Unit  string   `json:"unit"`
	Flags []string `json:"flags"`
}

// viewerClient is a vitals viewer socket in a test: frames are JSON arrays
// of messages, handed out one at a time.
type viewerClient struct {
	*websocket.Conn
	pending []json.RawMessage
}

func dialVitals(t *testing.T, f *fixture, email string) (*viewerClient, int) {
	t.Helper()
	return dialVitalsPath(t, f, email, fmt.Sprintf("/ws/vitals/%d", f.visit.ID))
}

func dialVitalsPath(t *testing.T, f *fixture, email, path string) (*viewerClient, int) {
	t.Helper()
	c := f.signIn(t, email)
	ws, resp, err := websocket.DefaultDialer.Dial(f.wsURL(path), f.cookieHeader(c))
	if err != nil {
		if resp == nil {
			t.Fatal(err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { ws.Close() })
	return &viewerClient{Conn: ws}, http.StatusSwitchingProtocols
}

// next returns the next message, reading a frame when none is left.
func (v *viewerClient) next(t *testing.T) json.RawMessage {
	t.Helper()
	for len(v.pending) == 0 {
		_ = v.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := v.ReadMessage()
		if err != nil {
			t.Fatalf("viewer read: %v", err)
		}
		if err := json.Unmarshal(b, &v.pending); err != nil || len(v.pending) == 0 {
			t.Fatalf("viewer frame %s is not a non-empty JSON array: %v", b, err)
		}
	}
	m := v.pending[0]
	v.pending = v.pending[1:]
	return m
}

func nextReading(t *testing.T, v *viewerClient) liveReading {
	t.Helper()
	for {
		b := v.next(t)
		var r liveReading
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("viewer message %s: %v", b, err)
		}
		if r.Type == "reading" {
			return r
		}
	}
}

func (f *fixture) storedCount(t *testing.T) int {
	t.Helper()
	obs, err := f.st.ObservationsBetween(context.Background(), f.pat.ID, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return len(obs)
}

func TestDeviceReadingReachesPhysician(t *testing.T) {
	f := newFixture(t)
	viewer, status := dialVitals(t, f, "doc@example.org")
	if viewer == nil {
		t.Fatalf("physician's vitals socket refused: %d", status)
	}
	dev := dialDevice(t, f, f.devToken)
	if ack := lastAck(t, sendFrame(t, dev, envelope(1, "8867-4", 72, "/min", ""))); ack != 1 {
		t.Fatalf("ack %d, want 1", ack)
	}
	r := nextReading(t, viewer)
	if r.Code != "8867-4" || r.Value != 72 || r.Unit != "/min" {
		t.Fatalf("viewer got %+v, want 8867-4 72 /min", r)
	}

	// Reconnect and resend seq 1 (unacked from the device's view) with seq 2:
	// seq 1 is acked again but neither stored nor shown twice.
	dev.Close()
	dev = dialDevice(t, f, f.devToken)
	sendFrame(t, dev, envelope(1, "8867-4", 72, "/min", ""))
	if ack := lastAck(t, sendFrame(t, dev, envelope(2, "59408-5", 97, "%", ""))); ack != 2 {
		t.Fatalf("ack after resend %d, want 2", ack)
	}
	if r := nextReading(t, viewer); r.Code != "59408-5" || r.Value != 97 {
		t.Fatalf("after resend the viewer got %+v, want the SpO2 reading (no duplicate heart rate)", r)
	}
	if n := f.storedCount(t); n != 2 {
		t.Fatalf("stored %d observations, want 2", n)
	}
}

// TestRelayedBluetoothValue: a browser relays a pulse oximeter's raw PLX
// value; the server parses it, the physician sees it flagged, and the
// store keeps it with its flags.
func TestRelayedBluetoothValue(t *testing.T) {
	f := newFixture(t)
	viewer, status := dialVitals(t, f, "doc@example.org")
	if viewer == nil {
		t.Fatalf("physician's vitals socket refused: %d", status)
	}
	dev := dialDevice(t, f, f.devToken)
	// PLX Continuous: SpO2 98 %, pulse 75 /min, sensor status "sensor displaced".
	value := base64.StdEncoding.EncodeToString([]byte{0x08, 0x62, 0x00, 0x4B, 0x00, 0x00, 0x20, 0x00})
	frame := fmt.Sprintf(`{"seq":1,"gatt":{"service":"00001822-0000-1000-8000-00805f9b34fb",
		"characteristic":"00002a5f-0000-1000-8000-00805f9b34fb","value":%q,"time":%q}}`, value, time.Now().UTC().Format(time.RFC3339Nano))
	if ack := lastAck(t, sendFrame(t, dev, frame)); ack != 1 {
		t.Fatalf("ack %d, want 1", ack)
	}
	for _, want := range []liveReading{{Code: "59408-5", Value: 98, Unit: "%"}, {Code: "8867-4", Value: 75, Unit: "/min"}} {
		r := nextReading(t, viewer)
		if r.Code != want.Code || r.Value != want.Value || r.Unit != want.Unit || !slices.Equal(r.Flags, []string{"sensor displaced"}) {
			t.Fatalf("viewer got %+v, want %s %v %s flagged sensor displaced", r, want.Code, want.Value, want.Unit)
		}
	}
	obs, err := f.st.ObservationsBetween(t.Context(), f.pat.ID, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil || len(obs) != 2 || !slices.Equal(obs[0].Flags, []string{"sensor displaced"}) {
		t.Fatalf("stored %+v, %v; want SpO2 and pulse, flagged", obs, err)
	}
}

func TestDeviceBadInputLeavesStoreIntact(t *testing.T) {
	f := newFixture(t)
	dev := dialDevice(t, f, f.devToken)
	lastAck(t, sendFrame(t, dev, envelope(1, "8867-4", 70, "/min", "")))

	cases := []struct {
		name, frame, field string
		withSeq            bool
	}{
		{"malformed JSON", `{"seq": 2, "observation": {`, "", false},
		{"wrong unit", envelope(2, "8867-4", 70, "mm[Hg]", ""), "unit", true},
		{"impossible value", envelope(3, "59408-5", 140, "%", ""), "value", true},
		{"another patient", envelope(4, "8867-4", 70, "/min", fmt.Sprintf("Patient/%d", f.other.ID)), "subject", true},
	}
	for _, c := range cases {
		rs := sendFrame(t, dev, c.frame)
		var errReply *reply
		for i := range rs {
			if rs[i].Error != "" {
				errReply = &rs[i]
			}
		}
		if errReply == nil {
			t.Errorf("%s: no error reply in %+v", c.name, rs)
			continue
		}
		if c.withSeq != (errReply.Seq != nil) {
			t.Errorf("%s: error %q seq present=%v, want %v", c.name, errReply.Error, errReply.Seq != nil, c.withSeq)
		}
		if !strings.Contains(errReply.Error, c.field) {
			t.Errorf("%s: error %q does not name the field %q", c.name, errReply.Error, c.field)
		}
	}
	if n := f.storedCount(t); n != 1 {
		t.Fatalf("after bad input the store holds %d observations, want 1", n)
	}

	// An oversized frame closes the connection with 1009 and stores nothing.
	big := envelope(5, "8867-4", 70, "/min", "")
	big = big[:len(big)-1] + `,"pad":"` + strings.Repeat("x", 70<<10) + `"}`
	if err := dev.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
		t.Fatal(err)
	}
	_ = dev.SetReadDeadline(time.Now().Add(5 * time.Second))
	var closeErr *websocket.CloseError
	for {
		_, _, err := dev.ReadMessage()
		if err == nil {
			continue
		}
		if !errors.As(err, &closeErr) || closeErr.Code != websocket.CloseMessageTooBig {
			t.Fatalf("oversized frame: %v, want close 1009", err)
		}
		break
	}
	if n := f.storedCount(t); n != 1 {
		t.Fatalf("after an oversized frame the store holds %d observations, want 1", n)
	}
	// The refusal is counted (once the handler has returned, just after the close).
	awaitMetric(t, f, `bedside_limit_refusals_total{limit="device-frame"} 1`)
}

// awaitMetric polls /metrics until it carries line: handlers count a
// refusal as they return, just after the client saw the close.
func awaitMetric(t *testing.T, f *fixture, line string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := scrape(t, f, "")
		if strings.Contains(body, line) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %s:\n%s", line, body)
		}
		time.Sleep(20 * time.Millisecond) // polling the metrics, not standing in for a signal
	}
}

// awaitCloseCode reads ws until its close frame and checks the code and,
// if any are given, that the reason contains one of reasons.
func awaitCloseCode(t *testing.T, ws *websocket.Conn, want int, reasons ...string) {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != want ||
			len(reasons) > 0 && !slices.ContainsFunc(reasons, func(r string) bool { return strings.Contains(ce.Text, r) }) {
			t.Fatalf("connection ended with %v, want close %d saying one of %q", err, want, reasons)
		}
		return
	}
}

// TestDeviceRateRefusesAFlood: a device beyond its message budget is told
// so without a seq (nothing of that frame handled) and closed with 1008;
// reconnecting does not refill the budget; the refusals are counted and
// nothing refused is stored.
func TestDeviceRateRefusesAFlood(t *testing.T) {
	f := newFixtureWith(t, func(d *Deps) { d.DeviceRate = MessageRate{PerSecond: 1e-9, Burst: 3} })
	dev := dialDevice(t, f, f.devToken)
	for seq := 1; seq <= 3; seq++ {
		if ack := lastAck(t, sendFrame(t, dev, envelope(seq, "8867-4", 70, "/min", ""))); ack != int64(seq) {
			t.Fatalf("ack %d, want %d", ack, seq)
		}
	}
	refused := func(ws *websocket.Conn, seq int) {
		t.Helper()
		rs := sendFrame(t, ws, envelope(seq, "8867-4", 70, "/min", ""))
		last := rs[len(rs)-1]
		if last.Seq != nil || !strings.Contains(last.Error, "too many messages") {
			t.Fatalf("frame beyond the rate: replies %+v, want an error without seq", rs)
		}
		awaitCloseCode(t, ws, websocket.ClosePolicyViolation)
	}
	refused(dev, 4)
	// The device resends seq 4 after reconnecting; its budget is still spent.
	refused(dialDevice(t, f, f.devToken), 4)
	if n := f.storedCount(t); n != 3 {
		t.Fatalf("stored %d observations, want the 3 within the rate", n)
	}
	awaitMetric(t, f, `bedside_limit_refusals_total{limit="device-rate"} 2`)
}

func TestDeviceAndViewerAccess(t *testing.T) {
	f := newFixture(t)
	// Unknown token, no token, cross-site origin.
	for name, h := range map[string]http.Header{
		"no token":      {},
		"unknown token": {"Authorization": {"Bearer not-a-token"}},
		"cross-site":    {"Authorization": {"Bearer " + f.devToken}, "Origin": {"https://evil.example"}},
	} {
		_, resp, err := websocket.DefaultDialer.Dial(f.wsURL("/ws/device"), h)
		if err == nil || resp == nil || (resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden) {
			t.Errorf("%s: device socket accepted (err %v)", name, err)
		}
	}
	// The other patient's device streams, but its readings never reach this visit.
	viewer, _ := dialVitals(t, f, "doc@example.org")
	other := dialDevice(t, f, f.otherToken)
	lastAck(t, sendFrame(t, other, envelope(1, "8867-4", 111, "/min", "")))
	dev := dialDevice(t, f, f.devToken)
	lastAck(t, sendFrame(t, dev, envelope(1, "8867-4", 64, "/min", "")))
	if r := nextReading(t, viewer); r.Value != 64 {
		t.Fatalf("viewer of this visit got %+v, want only its patient's 64", r)
	}
	// Only the visit's physician may watch its vitals.
	for _, who := range []string{"doc2@example.org", "sched@example.org"} {
		if ws, status := dialVitals(t, f, who); ws != nil || status != http.StatusForbidden {
			t.Errorf("%s watching vitals: status %d, want 403", who, status)
		}
	}
}

func TestPatientBrowserStreamsWithItsVisitSession(t *testing.T) {
	f := newFixture(t)
	viewer, _ := dialVitals(t, f, "doc@example.org")
	patient := f.joinClient(t, f.visit)
	ws, first := dialBrowser(t, f, patient)
	if first != 0 {
		t.Fatalf("first ack %d, want 0: the browser's device has sent nothing yet", first)
	}
	if ack := lastAck(t, sendFrame(t, ws, envelope(1, "59408-5", 96, "%", ""))); ack != 1 {
		t.Fatalf("ack %d, want 1", ack)
	}
	if r := nextReading(t, viewer); r.Code != "59408-5" || r.Value != 96 {
		t.Fatalf("viewer got %+v", r)
	}
	// A staff session is not a device.
	staff := f.signIn(t, "doc@example.org")
	if _, resp, err := websocket.DefaultDialer.Dial(f.wsURL("/ws/device"), f.cookieHeader(staff)); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("physician session on /ws/device: %v, want 401", err)
	}
}

// TestLiveVitalsOnlyAroundTheVisit: the physician watches a patient's live
// vitals from 30 minutes before the visit until 2 hours after it, and never
// for a cancelled visit; each refusal is audited.
func TestLiveVitalsOnlyAroundTheVisit(t *testing.T) {
	clk := &testClock{t: time.Now()}
	f := newFixtureWith(t, func(d *Deps) {
		d.Now = clk.now
		d.Audit = &audit.Recorder{Store: d.Store}
	})
	start, end := f.visit.Start, f.visit.End
	cases := []struct {
		name string
		at   time.Time
		want int
	}{
		{"an hour before", start.Add(-time.Hour), http.StatusForbidden},
		{"29 minutes before", start.Add(-29 * time.Minute), http.StatusSwitchingProtocols},
		{"an hour after", end.Add(time.Hour), http.StatusSwitchingProtocols},
		{"three hours after", end.Add(3 * time.Hour), http.StatusForbidden},
	}
	for _, c := range cases {
		clk.add(c.at.Sub(clk.now()))
		if _, got := dialVitals(t, f, "doc@example.org"); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	clk.add(start.Sub(clk.now()))
	if _, err := f.st.SetAppointmentStatus(t.Context(), f.visit.ID, scheduling.StatusCancelled, store.Change{Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, got := dialVitals(t, f, "doc@example.org"); got != http.StatusForbidden {
		t.Errorf("a cancelled visit's vitals: %d, want 403", got)
	}
	events, _, err := f.st.AuditEvents(t.Context(), store.AuditQuery{PatientID: f.pat.ID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var denied []store.AuditEvent
	for _, e := range events {
		if e.Outcome == "denied" && strings.HasSuffix(e.Resource, "/vitals") {
			denied = append(denied, e)
		}
	}
	if len(denied) != 3 {
		t.Errorf("%d denied audit events for the patient, want the 3 refusals", len(denied))
	}
}

// TestCancellingEndsThePatientsVisitSession: the session a join link
// opened ends with the link when the visit is cancelled.
func TestCancellingEndsThePatientsVisitSession(t *testing.T) {
	f := newFixture(t)
	c := f.joinClient(t, f.visit)
	visitURL := fmt.Sprintf("%s/visit/%d", f.srv.URL, f.visit.ID)
	if st, _ := getPage(t, c, visitURL); st != http.StatusOK {
		t.Fatalf("the patient's visit page: %d", st)
	}
	if _, err := f.st.SetAppointmentStatus(t.Context(), f.visit.ID, scheduling.StatusCancelled, store.Change{Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if st, _ := getPage(t, c, visitURL); st == http.StatusOK {
		t.Fatal("the cancelled visit's page still opens with the old session")
	}
}
