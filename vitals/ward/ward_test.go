package ward

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/vitals"
	"github.com/bedside-health/bedside/vitals/alert"
	"github.com/bedside-health/bedside/vitals/monitor"
)

// stream is a Publisher that keeps what each patient's stream got.
type stream struct {
	mu   sync.Mutex
	msgs map[int64][]json.RawMessage
}

func (s *stream) Publish(_ context.Context, patient int64, body []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.msgs == nil {
		s.msgs = make(map[int64][]json.RawMessage)
	}
	s.msgs[patient] = append(s.msgs[patient], append(json.RawMessage(nil), body...))
	return nil
}

type msg struct {
	Type      string `json:"type"`
	State     string `json:"state"`
	Rule      string `json:"rule"`
	Band      string `json:"band"`
	Direction string `json:"direction"`
	ID        string `json:"id"`
	Score     int    `json:"score"`
}

func (s *stream) all(t *testing.T, patient int64) []msg {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]msg, 0, len(s.msgs[patient]))
	for _, b := range s.msgs[patient] {
		var m msg
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("message %s: %v", b, err)
		}
		out = append(out, m)
	}
	return out
}

// bandAlerts lists the band-change alert events a patient's stream got.
func bandAlerts(t *testing.T, s *stream, patient int64) []msg {
	var out []msg
	for _, m := range s.all(t, patient) {
		if m.Type == "alert" && m.Rule == string(alert.RuleBand) {
			out = append(out, m)
		}
	}
	return out
}

// clock is a manual clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// vitalsSet is one second's readings: respiration, SpO2, systolic, pulse,
// temperature.
func vitalsSet(at time.Time, resp, spo2, sys, pulse, temp float64) []vitals.Reading {
	return []vitals.Reading{
		{Code: vitals.CodeRespRate, Value: resp, Unit: "/min", Time: at},
		{Code: vitals.CodeSpO2, Value: spo2, Unit: "%", Time: at},
		{Code: vitals.CodeSystolic, Value: sys, Unit: "mm[Hg]", Time: at},
		{Code: vitals.CodeHeartRate, Value: pulse, Unit: "/min", Time: at},
		{Code: vitals.CodeTemperature, Value: temp, Unit: "Cel", Time: at},
	}
}

func newTestWard(t *testing.T) (*Ward, *stream, *clock) {
	s := &stream{}
	c := &clock{t: time.Date(2030, 5, 6, 7, 0, 0, 0, time.UTC)}
	w := New(s, nil, Config{Now: c.Now})
	ctx := context.Background()
	for _, in := range []Input{{Kind: KindOxygen, Text: "air"}, {Kind: KindConsciousness, Text: "alert"}} {
		in.At = c.Now()
		if err := w.Enter(ctx, 1, in); err != nil {
			t.Fatal(err)
		}
	}
	return w, s, c
}

// run feeds n seconds of one set of vitals, ticking each second.
func run(w *Ward, c *clock, n int, resp, spo2, sys, pulse, temp float64) {
	ctx := context.Background()
	for range n {
		at := c.add(time.Second)
		w.Observe(ctx, 1, vitalsSet(at, resp, spo2, sys, pulse, temp))
		w.Tick(ctx)
	}
}

func TestBandChangeAlertsOnce(t *testing.T) {
	w, s, c := newTestWard(t)
	run(w, c, 60, 16, 98, 125, 72, 36.8) // NEWS2 0: low
	if got := bandAlerts(t, s, 1); len(got) != 0 {
		t.Fatalf("band alerts while low: %+v", got)
	}
	run(w, c, 90, 22, 95, 125, 120, 36.8) // 2 + 1 + 2 = 5: medium
	got := bandAlerts(t, s, 1)
	if len(got) != 1 || got[0].State != "raised" || got[0].Band != "medium" || got[0].Direction != "up" {
		t.Fatalf("band alerts after crossing into medium: %+v, want one raised to medium", got)
	}
	// The stream's last NEWS2 says medium with score 5.
	var last msg
	for _, m := range s.all(t, 1) {
		if m.Type == "news2" {
			last = m
		}
	}
	if last.Score != 5 || last.Band != "medium" {
		t.Fatalf("last news2 %+v, want score 5 band medium", last)
	}
}

func TestNoisyReadingDoesNotFlap(t *testing.T) {
	w, s, c := newTestWard(t)
	run(w, c, 60, 22, 95, 125, 120, 36.8) // medium
	if got := bandAlerts(t, s, 1); len(got) != 1 {
		t.Fatalf("band alerts reaching medium: %+v, want one", got)
	}
	// One normal reading set amid the medium ones, then medium again.
	run(w, c, 1, 16, 98, 125, 72, 36.8)
	run(w, c, 5, 22, 95, 125, 120, 36.8)
	// And one high spike.
	run(w, c, 1, 26, 91, 95, 135, 39.5)
	run(w, c, 60, 22, 95, 125, 120, 36.8)
	if got := bandAlerts(t, s, 1); len(got) != 1 {
		t.Fatalf("band alerts after noisy readings: %+v, want still only the first", got)
	}
}

func TestSnapshotAndAcknowledge(t *testing.T) {
	w, s, c := newTestWard(t)
	ctx := context.Background()
	run(w, c, 60, 22, 95, 125, 120, 36.8)
	alerts := bandAlerts(t, s, 1)
	if len(alerts) != 1 {
		t.Fatalf("band alerts %+v, want one", alerts)
	}
	b, err := w.Snapshot(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	var snap struct {
		Type    string `json:"type"`
		Patient int64  `json:"patient"`
		Events  []msg  `json:"events"`
	}
	if err := json.Unmarshal(b, &snap); err != nil {
		t.Fatal(err)
	}
	if snap.Type != "snapshot" || snap.Patient != 1 || len(snap.Events) < 2 || snap.Events[0].Type != "news2" || snap.Events[0].Band != "medium" {
		t.Fatalf("snapshot %s, want news2 medium then the alert", b)
	}
	if _, err := w.Acknowledge(ctx, 1, "no-such-alert", "Dr A"); err == nil {
		t.Fatal("acknowledging an unknown alert succeeded")
	}
	a, err := w.Acknowledge(ctx, 1, alerts[0].ID, "Dr A")
	if err != nil {
		t.Fatal(err)
	}
	if a.Ack == nil || a.Ack.By != "Dr A" {
		t.Fatalf("acknowledged alert %+v", a)
	}
	var acks int
	for _, m := range s.all(t, 1) {
		if m.Type == "alert" && m.State == "acknowledged" && m.ID == alerts[0].ID {
			acks++
		}
	}
	if acks != 1 {
		t.Fatalf("%d acknowledged events, want 1", acks)
	}
}

func TestEnterRefusesBadInput(t *testing.T) {
	w, _, c := newTestWard(t)
	for _, in := range []Input{
		{Kind: KindConsciousness, Text: "sleepy"},
		{Kind: KindOxygen, Text: "helium"},
		{Kind: KindValue, Code: vitals.CodeHeartRate, Value: 400},
		{Kind: KindValue, Code: vitals.CodeWeight, Value: 70},
		{Kind: "mood", Text: "fine"},
	} {
		in.At = c.Now()
		if err := Check(in); err == nil {
			t.Errorf("Check(%+v) accepted", in)
		}
		if err := w.Enter(context.Background(), 1, in); err == nil {
			t.Errorf("Enter(%+v) accepted", in)
		}
	}
}

// memRecords is Records in memory.
type memRecords struct {
	mu     sync.Mutex
	inputs []Input
	ts     []alert.Threshold
	alerts []string // state of each recorded alert event
}

func (r *memRecords) Restore(context.Context, int64) ([]Input, []alert.Threshold, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Input(nil), r.inputs...), r.ts, nil
}

func (r *memRecords) RecordAlerts(_ context.Context, _ int64, evs []monitor.AlertEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range evs {
		r.alerts = append(r.alerts, e.State)
	}
	return nil
}

// TestRestoreAndRecord: a ward restores a patient's entries (in time
// order, whatever order they come in) and thresholds, and records alert
// events but not reminders.
func TestRestoreAndRecord(t *testing.T) {
	c := &clock{t: time.Date(2030, 5, 6, 7, 0, 0, 0, time.UTC)}
	high := 38.0
	rec := &memRecords{
		inputs: []Input{
			{Kind: KindConsciousness, Text: "voice", At: c.Now().Add(-time.Minute)},
			{Kind: KindConsciousness, Text: "alert", At: c.Now().Add(-2 * time.Minute)},
			{Kind: KindOxygen, Text: "air", At: c.Now().Add(-time.Minute)},
		},
		ts: []alert.Threshold{{Code: vitals.CodeTemperature, High: &high}},
	}
	s := &stream{}
	w := New(s, rec, Config{Now: c.Now, Monitor: monitor.Config{Remind: time.Minute}})
	ctx := context.Background()
	b, err := w.Snapshot(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"value":"voice"`) {
		t.Fatalf("snapshot %s: want the later consciousness entry, voice", b)
	}
	w.Observe(ctx, 1, []vitals.Reading{{Code: vitals.CodeTemperature, Value: 38.4, Unit: "Cel", Time: c.add(time.Second)}})
	for range 3 {
		c.add(time.Minute)
		w.Tick(ctx)
	}
	var reminders int
	for _, m := range s.all(t, 1) {
		if m.Type == "alert" && m.State == "reminder" {
			reminders++
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if reminders == 0 || slices.Contains(rec.alerts, "reminder") || !slices.Contains(rec.alerts, "raised") {
		t.Fatalf("%d reminders published; recorded %v: want raised alerts recorded, reminders not", reminders, rec.alerts)
	}
}

// FuzzApply: a change carried from another node, whatever its bytes, is
// applied or refused with an error; it never panics, and a forwarded
// reading this version does not know is refused.
func FuzzApply(f *testing.F) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, seed := range []string{
		`{"input":{"Kind":"consciousness","Text":"voice","At":"2026-01-02T03:04:05Z"},"at":"2026-01-02T03:04:05Z"}`,
		`{"input":{"Kind":"value","Code":"8867-4","Value":1e308},"at":"2026-01-02T03:04:05Z"}`,
		`{"thresholds":[{"Code":"8867-4","High":120}],"setThresholds":true,"at":"2026-01-02T03:04:05Z"}`,
		`{"ackId":"news2:pulse@1","ackBy":"User/1"}`,
		`{"readings":[{"Code":"8480-6","Value":85,"Unit":"mm[Hg]","Time":"2026-01-02T03:04:05Z"}]}`,
		`{"readings":[{"Code":"8480-6","Value":85,"Unit":"%","Time":"2026-01-02T03:04:05Z"}]}`,
		`{"input":null}`, `[]`, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		w := New(&stream{}, nil, Config{Now: func() time.Time { return at }})
		if _, err := w.Snapshot(context.Background(), 1); err != nil { // hold the patient
			t.Fatal(err)
		}
		err := w.Apply(context.Background(), 1, msg)
		var c control
		if err == nil && json.Unmarshal(msg, &c) == nil {
			for _, r := range c.Readings {
				if checkForwarded(r) != nil {
					t.Fatalf("Apply took the reading %+v", r)
				}
			}
		}
	})
}
