package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/vitals"
	"github.com/bedside-health/bedside/vitals/alert"
	"github.com/bedside-health/bedside/vitals/live"
	"github.com/bedside-health/bedside/vitals/ward"
)

// news2Msg is a NEWS2, alert or snapshot message on a viewer socket.
type news2Msg struct {
	Type      string     `json:"type"`
	Offset    int64      `json:"offset"`
	Score     int        `json:"score"`
	Band      string     `json:"band"`
	State     string     `json:"state"`
	Rule      string     `json:"rule"`
	ID        string     `json:"id"`
	Direction string     `json:"direction"`
	Events    []news2Msg `json:"events"`
	Value     float64    `json:"value"`
}

// news2Clock is the NEWS2 monitors' clock in a test, moved on by hand; the
// test's readings are timed by it.
type news2Clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *news2Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *news2Clock) add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// news2Fixture is a fixture whose NEWS2 monitors run on a clock of the
// test's (from an hour ago, so the visit's window is open); no ticker
// runs, so only readings and entries move time on for them.
func news2Fixture(t *testing.T) (*fixture, *ward.Ward, *news2Clock) {
	t.Helper()
	var w *ward.Ward
	c := &news2Clock{t: time.Now().Add(-time.Hour).UTC()}
	f := newFixtureWith(t, func(d *Deps) {
		hub := live.NewHub(live.Config{})
		d.Live = hub
		w = ward.New(hub, NewWardRecords(d.Store), ward.Config{Now: c.Now})
		d.NEWS2 = w
	})
	return f, w, c
}

func enterDirect(t *testing.T, w *ward.Ward, c *news2Clock, patient int64, ins ...ward.Input) {
	t.Helper()
	for _, in := range ins {
		in.At = c.Now()
		if err := w.Enter(context.Background(), patient, in); err != nil {
			t.Fatal(err)
		}
	}
}

// vitalsEnvelopes are one device message per NEWS2 measurement, from seq,
// measured at when.
func vitalsEnvelopes(seq int, when time.Time, resp, spo2, sys, pulse, temp float64) []string {
	at := when.UTC().Format(time.RFC3339Nano)
	bp := fmt.Sprintf(`{"seq":%d,"observation":{"resourceType":"Observation","status":"final",
"code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"effectiveDateTime":%q,
"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":%v,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}}`, seq+2, at, sys)
	return []string{
		timedEnvelope(seq, at, "9279-1", resp, "/min"),
		timedEnvelope(seq+1, at, "59408-5", spo2, "%"),
		bp,
		timedEnvelope(seq+3, at, "8867-4", pulse, "/min"),
		timedEnvelope(seq+4, at, "8310-5", temp, "Cel"),
	}
}

func timedEnvelope(seq int, at, code string, value float64, unit string) string {
	return fmt.Sprintf(`{"seq":%d,"observation":{"resourceType":"Observation","status":"final",
"code":{"coding":[{"system":"http://loinc.org","code":%q}]},"effectiveDateTime":%q,
"valueQuantity":{"value":%v,"unit":%q,"system":"http://unitsofmeasure.org","code":%q}}}`, seq, code, at, value, unit, unit)
}

// sendVitals moves the clock on 10 s, posts one set of vitals measured
// then and waits for their acks; it returns the next sequence.
func sendVitals(t *testing.T, dev *websocket.Conn, c *news2Clock, seq int, resp, spo2, sys, pulse, temp float64) int {
	t.Helper()
	for _, e := range vitalsEnvelopes(seq, c.add(10*time.Second), resp, spo2, sys, pulse, temp) {
		rs := sendFrame(t, dev, e)
		for _, r := range rs {
			if r.Error != "" {
				t.Fatalf("device message refused: %s", r.Error)
			}
		}
	}
	return seq + 5
}

// readNEWS2 reads the viewer until a news2 message with score want, and
// returns the band-change alert events seen on the way.
func readNEWS2(t *testing.T, v *viewerClient, want int) (bandAlerts []news2Msg) {
	t.Helper()
	for {
		var m news2Msg
		if err := json.Unmarshal(v.next(t), &m); err != nil {
			t.Fatal(err)
		}
		switch {
		case m.Type == "alert" && m.Rule == "news2-band":
			if m.Offset == 0 {
				t.Fatalf("band alert %+v carries no stream offset", m)
			}
			bandAlerts = append(bandAlerts, m)
		case m.Type == "news2" && m.Score == want:
			if m.Offset == 0 {
				t.Fatalf("news2 %+v carries no stream offset", m)
			}
			return bandAlerts
		}
	}
}

// TestBandChangeReachesViewerOnce: readings crossing from band low into
// medium (every 10 s, so the new band holds its 30 s) give the physician's
// viewer exactly one band-change alert, a noisy set of readings amid them
// none, and a viewer who joins later the current state first.
func TestBandChangeReachesViewerOnce(t *testing.T) {
	f, w, c := news2Fixture(t)
	enterDirect(t, w, c, f.pat.ID, ward.Input{Kind: ward.KindOxygen, Text: "air"}, ward.Input{Kind: ward.KindConsciousness, Text: "alert"})
	viewer, status := dialVitals(t, f, "doc@example.org")
	if viewer == nil {
		t.Fatalf("physician's vitals socket refused: %d", status)
	}
	var first news2Msg
	if err := json.Unmarshal(viewer.next(t), &first); err != nil || first.Type != "snapshot" || len(first.Events) == 0 || first.Events[0].Type != "news2" {
		t.Fatalf("first message %+v (%v), want the NEWS2 snapshot", first, err)
	}
	dev := dialDevice(t, f, f.devToken)
	seq := 1
	var alerts []news2Msg
	for range 4 {
		seq = sendVitals(t, dev, c, seq, 16, 98, 125, 72, 36.8) // score 0
	}
	alerts = append(alerts, readNEWS2(t, viewer, 0)...)
	for range 5 {
		seq = sendVitals(t, dev, c, seq, 22, 95, 125, 120, 36.8) // 2 + 1 + 2 = 5
	}
	alerts = append(alerts, readNEWS2(t, viewer, 5)...)
	// A noisy set amid the medium ones: score 0 once, then 5 again.
	seq = sendVitals(t, dev, c, seq, 16, 98, 125, 72, 36.8)
	for range 3 {
		seq = sendVitals(t, dev, c, seq, 22, 95, 125, 120, 36.8)
	}
	alerts = append(alerts, readNEWS2(t, viewer, 0)...)
	alerts = append(alerts, readNEWS2(t, viewer, 5)...)
	// A marker reading after everything: all events before it are in.
	sendFrame(t, dev, envelope(seq, "29463-7", 70, "kg", ""))
	for r := nextReading(t, viewer); r.Code != "29463-7"; r = nextReading(t, viewer) {
	}
	var raised []news2Msg
	for _, a := range alerts {
		if a.State == "raised" || a.State == "notice" {
			raised = append(raised, a)
		}
	}
	if len(raised) != 1 || raised[0].Band != "medium" || raised[0].Direction != "up" {
		t.Fatalf("band alerts %+v, want exactly one raised to medium", alerts)
	}

	// A viewer joining now is told the state first: medium and the alert.
	late, _ := dialVitals(t, f, "doc@example.org")
	var snap news2Msg
	if err := json.Unmarshal(late.next(t), &snap); err != nil || snap.Type != "snapshot" {
		t.Fatalf("late viewer's first message %+v (%v), want a snapshot", snap, err)
	}
	var sawAlert bool
	for _, e := range snap.Events {
		sawAlert = sawAlert || (e.Type == "alert" && e.ID == raised[0].ID && e.State == "raised")
	}
	if snap.Events[0].Band != "medium" || !sawAlert {
		t.Fatalf("snapshot %+v, want band medium and the active alert", snap)
	}
}

// postJSON posts body as the signed-in client and returns the status and
// the decoded answer.
func postJSON(t *testing.T, c *http.Client, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestPhysicianInputsAreStoredAndRestored: the visit's physician enters
// consciousness and oxygen and sets thresholds; bad input is refused with
// the field named and stores nothing; the viewer's NEWS2 shows the
// entries; a monitor started afresh (a restart) is restored from the store.
func TestPhysicianInputsAreStoredAndRestored(t *testing.T) {
	f, _, c := news2Fixture(t)
	doc := f.signIn(t, "doc@example.org")
	base := fmt.Sprintf("%s/consult/%d", f.srv.URL, f.visit.ID)
	viewer, _ := dialVitals(t, f, "doc@example.org")
	for _, bad := range []struct{ body, field string }{
		{`{"kind":"consciousness","text":"sleepy"}`, "consciousness"},
		{`{"kind":"value","code":"8867-4","value":400}`, "value"},
		{`{"kind":"value","code":"8867-4"}`, "value"},
		{`{"kind":"oxygen","text":"air","extra":1}`, "extra"},
		{`{"kind":"mood","text":"fine"}`, "kind"},
		{`[1,2]`, "JSON object"},
	} {
		status, out := postJSON(t, doc, base+"/news2", bad.body)
		if status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["error"]), bad.field) {
			t.Errorf("%s: %d %v, want 400 naming %s", bad.body, status, out, bad.field)
		}
	}
	if es, _ := f.st.NEWS2EntriesSince(context.Background(), f.pat.ID, time.Time{}); len(es) != 0 {
		t.Fatalf("refused inputs stored %+v", es)
	}
	for _, body := range []string{`{"kind":"consciousness","text":"voice"}`, `{"kind":"oxygen","text":"oxygen"}`} {
		if status, out := postJSON(t, doc, base+"/news2", body); status != http.StatusOK {
			t.Fatalf("%s: %d %v", body, status, out)
		}
	}
	// The viewer's NEWS2 now scores consciousness 3 and oxygen 2, entered.
	for {
		var m struct {
			Type   string `json:"type"`
			Score  int    `json:"score"`
			Params []struct {
				Param   string `json:"param"`
				Entered bool   `json:"entered"`
				Value   any    `json:"value"`
			} `json:"params"`
		}
		if err := json.Unmarshal(viewer.next(t), &m); err != nil {
			t.Fatal(err)
		}
		if m.Type == "news2" && m.Score == 5 {
			if m.Params[5].Param != "consciousness" || !m.Params[5].Entered || m.Params[5].Value != "voice" {
				t.Fatalf("consciousness in news2: %+v", m.Params[5])
			}
			break
		}
	}
	if status, out := postJSON(t, doc, base+"/thresholds", `{"thresholds":[{"code":"8310-5","high":38}, {"code":"8310-5","low":35}]}`); status != http.StatusBadRequest ||
		!strings.Contains(fmt.Sprint(out["error"]), "thresholds[1].code") {
		t.Fatalf("duplicate thresholds: %d %v, want 400 naming thresholds[1].code", status, out)
	}
	if status, out := postJSON(t, doc, base+"/thresholds", `{"thresholds":[{"code":"8310-5","high":38}]}`); status != http.StatusOK {
		t.Fatalf("thresholds: %d %v", status, out)
	}
	es, err := f.st.NEWS2EntriesSince(context.Background(), f.pat.ID, time.Time{})
	if err != nil || len(es) != 2 || es[0].Text != "voice" || es[1].Text != "oxygen" || es[0].By != f.doc.ID || es[0].AppointmentID != f.visit.ID {
		t.Fatalf("stored entries %+v (%v)", es, err)
	}

	// A restart: a new monitor restored from the store has the entries and
	// the threshold.
	pub := &recorder{}
	w2 := ward.New(pub, NewWardRecords(f.st), ward.Config{Now: c.Now})
	b, err := w2.Snapshot(context.Background(), f.pat.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"value":"voice"`) || !strings.Contains(string(b), `"value":"oxygen"`) {
		t.Fatalf("restored snapshot %s, want the entered consciousness and oxygen", b)
	}
	w2.Observe(context.Background(), f.pat.ID, []vitals.Reading{{Code: vitals.CodeTemperature, Value: 38.6, Unit: "Cel", Time: c.add(time.Second)}})
	if !pub.has(`"rule":"threshold"`) {
		t.Fatalf("a temperature above the restored threshold raised no alert: %s", pub.all())
	}
}

// recorder is a Publisher that keeps what it was given.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (p *recorder) Publish(_ context.Context, _ int64, body []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, string(body))
	return nil
}

func (p *recorder) all() string       { p.mu.Lock(); defer p.mu.Unlock(); return strings.Join(p.msgs, "\n") }
func (p *recorder) has(s string) bool { return strings.Contains(p.all(), s) }

// TestAcknowledgeIsStored: acknowledging an active alert is stored on the
// alert timeline with who and when, once; an unknown alert is a 404.
func TestAcknowledgeIsStored(t *testing.T) {
	f, w, c := news2Fixture(t)
	enterDirect(t, w, c, f.pat.ID, ward.Input{Kind: ward.KindOxygen, Text: "air"}, ward.Input{Kind: ward.KindConsciousness, Text: "alert"})
	ctx := context.Background()
	// A temperature threshold raises an alert at once (a spot measurement).
	high := 38.0
	if _, err := w.SetThresholds(ctx, f.pat.ID, []alert.Threshold{{Code: vitals.CodeTemperature, High: &high}}); err != nil {
		t.Fatal(err)
	}
	w.Observe(ctx, f.pat.ID, []vitals.Reading{{Code: vitals.CodeTemperature, Value: 38.5, Unit: "Cel", Time: c.add(time.Second)}})
	tl, err := f.st.AlertEventsBetween(ctx, f.pat.ID, time.Time{}, time.Now().Add(time.Hour))
	if err != nil || len(tl) != 1 || tl[0].State != "raised" || tl[0].Rule != "threshold" {
		t.Fatalf("timeline after raising %+v (%v)", tl, err)
	}
	doc := f.signIn(t, "doc@example.org")
	url := fmt.Sprintf("%s/consult/%d/alerts/", f.srv.URL, f.visit.ID)
	if status, _ := postJSON(t, doc, url+"no-such/ack", ``); status != http.StatusNotFound {
		t.Fatalf("acknowledging an unknown alert: %d, want 404", status)
	}
	for range 2 {
		if status, out := postJSON(t, doc, url+tl[0].AlertID+"/ack", ``); status != http.StatusOK {
			t.Fatalf("acknowledge: %d %v", status, out)
		}
	}
	tl, err = f.st.AlertEventsBetween(ctx, f.pat.ID, time.Time{}, time.Now().Add(time.Hour))
	if err != nil || len(tl) != 2 || tl[1].State != "acknowledged" || tl[1].By != fmt.Sprintf("User/%d", f.doc.ID) || tl[1].AlertID != tl[0].AlertID {
		t.Fatalf("timeline after acknowledging twice %+v (%v), want one acknowledgement by the physician", tl, err)
	}
}

// TestNEWS2InputCrossSiteRefused: another site cannot make the
// physician's browser enter NEWS2 inputs, even with their session.
func TestNEWS2InputCrossSiteRefused(t *testing.T) {
	f, _, _ := news2Fixture(t)
	doc := f.signIn(t, "doc@example.org")
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/consult/%d/news2", f.srv.URL, f.visit.ID), strings.NewReader(`{"kind":"oxygen","text":"oxygen"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := doc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site NEWS2 input: %d, want 403", resp.StatusCode)
	}
	if es, _ := f.st.NEWS2EntriesSince(context.Background(), f.pat.ID, time.Time{}); len(es) != 0 {
		t.Fatalf("a cross-site input was stored: %+v", es)
	}
}
