package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/vitals"
	"github.com/bedside-health/bedside/vitals/alert"
	"github.com/bedside-health/bedside/vitals/news2"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// sim drives a Monitor on a simulated clock and keeps every event.
type sim struct {
	t   *testing.T
	m   *Monitor
	now time.Time
	log []Event
}

func newSim(t *testing.T, cfg Config) *sim {
	return &sim{t: t, m: New(cfg), now: t0}
}

func (s *sim) add(evs []Event) []Event {
	for _, e := range evs {
		if _, err := Encode(e); err != nil {
			s.t.Fatalf("encode %T: %v", e, err)
		}
	}
	s.log = append(s.log, evs...)
	return evs
}

// read delivers a reading taken now.
func (s *sim) read(code string, v float64, flags ...string) []Event {
	unit, _ := vitals.Unit(code)
	return s.add(s.m.Observe(s.now, vitals.Reading{Code: code, Value: v, Unit: unit, Time: s.now, Flags: flags}))
}

// second advances the clock a second, ticks, and delivers a round of the
// given once-a-second readings.
func (s *sim) second(round map[string]float64) {
	s.now = s.now.Add(time.Second)
	s.add(s.m.Tick(s.now))
	for _, code := range slices.Sorted(maps.Keys(round)) {
		s.read(code, round[code])
	}
}

// normal is a round of once-a-second readings scoring 0.
func normal() map[string]float64 {
	return map[string]float64{vitals.CodeHeartRate: 72, vitals.CodeSpO2: 98, vitals.CodeRespRate: 15, vitals.CodeTemperature: 36.8}
}

// start enters the clinician's inputs and a blood pressure, then a
// second of normal readings: a complete score of 0.
func (s *sim) start() {
	s.add(s.m.SetOxygen(s.now, false))
	evs, err := s.m.SetConsciousness(s.now, news2.Alert)
	if err != nil {
		s.t.Fatal(err)
	}
	s.add(evs)
	s.read(vitals.CodeSystolic, 122)
	s.second(normal())
	if sc := s.m.Score(); !sc.Complete() || sc.Total != 0 {
		s.t.Fatalf("after start: %+v", sc)
	}
}

// since returns the events logged from index i on.
func (s *sim) since(i int) []Event { return s.log[i:] }

func alerts(evs []Event) []AlertEvent {
	var out []AlertEvent
	for _, e := range evs {
		if a, ok := e.(AlertEvent); ok {
			out = append(out, a)
		}
	}
	return out
}

func scores(evs []Event) []NEWS2Event {
	var out []NEWS2Event
	for _, e := range evs {
		if n, ok := e.(NEWS2Event); ok {
			out = append(out, n)
		}
	}
	return out
}

func stales(evs []Event) []StaleEvent {
	var out []StaleEvent
	for _, e := range evs {
		if n, ok := e.(StaleEvent); ok {
			out = append(out, n)
		}
	}
	return out
}

// brief describes alert events as "state rule[:param or code]".
func brief(as []AlertEvent) string {
	var b []string
	for _, a := range as {
		what := a.Param
		if a.Rule == alert.RuleThreshold {
			what = a.Code + ":" + a.Direction
		}
		if a.Rule == alert.RuleBand {
			what = a.Band
		}
		b = append(b, a.State+" "+string(a.Rule)+":"+what)
	}
	return strings.Join(b, ", ")
}

func TestNEWS2IsSentOnlyWhenItChanges(t *testing.T) {
	s := newSim(t, Config{})
	s.add(s.m.SetOxygen(s.now, false))
	first := scores(s.log)
	if len(first) != 1 || first[0].Complete || first[0].Params[news2.AirOrOxygen].Source != news2.Entered || first[0].Params[news2.AirOrOxygen].Value != "air" {
		t.Fatalf("first score %+v", first)
	}
	s.start()
	mark := len(s.log)
	for range 60 {
		r := normal()
		r[vitals.CodeHeartRate] = 70 + float64(len(s.log)%10) // moves, but scores 0
		s.second(r)
	}
	if evs := s.since(mark); len(evs) != 0 {
		t.Fatalf("a minute of unchanged scores sent %d events: %+v", len(evs), evs)
	}
	r := normal()
	r[vitals.CodeHeartRate] = 95
	s.second(r)
	got := scores(s.since(mark))
	if len(got) != 1 || got[0].Score != 1 || got[0].Params[news2.Pulse].Score != 1 || got[0].Band != news2.Low || got[0].Response.Monitoring != "Minimum 4-6-hourly" {
		t.Fatalf("after a pulse of 95: %+v", got)
	}
}

func TestStaleAndFresh(t *testing.T) {
	s := newSim(t, Config{})
	s.start()
	mark := len(s.log)
	// Only SpO2 arrives now: heart rate and respiration go stale after
	// 30 s and 1 min; temperature's window is 30 min.
	for range 61 {
		s.second(map[string]float64{vitals.CodeSpO2: 98})
	}
	st := stales(s.since(mark))
	if len(st) != 2 || st[0].Code != vitals.CodeHeartRate || !st[0].Stale || !st[0].Time.Equal(t0.Add(31*time.Second)) ||
		st[1].Code != vitals.CodeRespRate || !st[1].Time.Equal(t0.Add(61*time.Second)) {
		t.Fatalf("stale events %+v", st)
	}
	sc := scores(s.since(mark))
	last := sc[len(sc)-1]
	if last.Complete || !slices.Equal(last.Stale, []news2.Param{news2.RespirationRate, news2.Pulse}) || last.Params[news2.Pulse].Source != news2.Stale || last.Score != 0 {
		t.Fatalf("score with stale inputs %+v", last)
	}
	mark = len(s.log)
	s.read(vitals.CodeHeartRate, 80)
	if st := stales(s.since(mark)); len(st) != 1 || st[0].Stale || st[0].Code != vitals.CodeHeartRate {
		t.Fatalf("fresh again: %+v", st)
	}
	// A stale code is listed in a snapshot, with the current score.
	snap := s.m.Snapshot(s.now)
	if _, ok := snap[0].(NEWS2Event); !ok || len(stales(snap)) != 1 || stales(snap)[0].Code != vitals.CodeRespRate {
		t.Fatalf("snapshot %+v", snap)
	}
	// The clinician's entries go stale after an hour.
	s.now = s.now.Add(time.Hour)
	st = stales(s.add(s.m.Tick(s.now)))
	var params []string
	for _, e := range st {
		if e.Param != "" {
			params = append(params, e.Param)
		}
	}
	if !slices.Equal(params, []string{"air-or-oxygen", "consciousness"}) {
		t.Fatalf("stale entries %+v", st)
	}
	mark = len(s.log)
	s.add(s.m.SetOxygen(s.now, false))
	if st := stales(s.since(mark)); len(st) != 1 || st[0].Param != "air-or-oxygen" || st[0].Stale {
		t.Fatalf("re-entered: %+v", st)
	}
}

// TestDoubtfulReadings: flagged or improbable readings keep the display
// fresh but never move the score or an alert.
func TestDoubtfulReadings(t *testing.T) {
	s := newSim(t, Config{})
	s.start()
	if _, err := s.m.SetThresholds(s.now, []alert.Threshold{{Code: vitals.CodeHeartRate, High: ptr(120)}}); err != nil {
		t.Fatal(err)
	}
	mark := len(s.log)
	for range 25 {
		s.now = s.now.Add(time.Second)
		s.add(s.m.Tick(s.now))
		s.read(vitals.CodeHeartRate, 240, vitals.FlagImprobable)
		s.read(vitals.CodeSpO2, 98)
		s.read(vitals.CodeRespRate, 15)
	}
	if as := alerts(s.since(mark)); len(as) != 0 {
		t.Fatalf("doubtful readings alerted: %s", brief(as))
	}
	sc := scores(s.since(mark))
	if len(sc) != 1 || !sc[0].Params[news2.Pulse].Doubtful || sc[0].Params[news2.Pulse].Score != 0 || sc[0].Score != 0 {
		t.Fatalf("scores %+v", sc)
	}
	// The display does not go stale (readings keep coming), but NEWS2's
	// pulse does: its last sound value is now too old.
	for range 10 {
		s.now = s.now.Add(time.Second)
		s.add(s.m.Tick(s.now))
		s.read(vitals.CodeHeartRate, 150, "poor skin contact")
	}
	if st := stales(s.since(mark)); len(st) != 0 {
		t.Fatalf("stale events %+v", st)
	}
	if sc := s.m.Score(); sc.Sources[news2.Pulse] != news2.Stale || sc.Complete() {
		t.Fatalf("pulse from doubtful readings only: %+v", sc)
	}
	// Sound readings interleaved with doubtful ones: the doubtful ones
	// neither count toward the breach nor interrupt it.
	mark = len(s.log)
	for range 6 {
		s.now = s.now.Add(time.Second)
		s.read(vitals.CodeHeartRate, 130)
		s.read(vitals.CodeHeartRate, 60, "motion")
	}
	if got := brief(alerts(s.since(mark))); got != "raised threshold:8867-4:high" {
		t.Fatalf("interleaved: %s", got)
	}
}

// TestThresholdAlertLife: the hysteresis contract end to end, with
// acknowledgement and reminders.
func TestThresholdAlertLife(t *testing.T) {
	s := newSim(t, Config{Remind: time.Minute})
	s.start()
	if _, err := s.m.SetThresholds(s.now, []alert.Threshold{{Code: vitals.CodeHeartRate, High: ptr(120)}}); err != nil {
		t.Fatal(err)
	}
	hr := func(vs ...float64) {
		for _, v := range vs {
			r := normal()
			r[vitals.CodeHeartRate] = v
			s.second(r)
		}
	}
	mark := len(s.log)
	hr(90, 90, 175, 90, 90) // a single spike
	if as := alerts(s.since(mark)); len(as) != 0 {
		t.Fatalf("a spike alerted: %s", brief(as))
	}
	hr(125, 125, 125, 125, 125, 125, 125, 125)
	as := alerts(s.since(mark))
	if brief(as) != "raised threshold:8867-4:high" || *as[0].Value != 125 || *as[0].Limit != 120 || as[0].Title != "Heart rate above 120 /min" || as[0].Severity != alert.Warning {
		t.Fatalf("sustained breach: %+v", as)
	}
	id := as[0].ID
	// Oscillating around the limit, inside the deadband: nothing new.
	mark = len(s.log)
	for i := range 60 {
		hr([]float64{118, 122}[i%2])
	}
	if got := brief(alerts(s.since(mark))); got != "reminder threshold:8867-4:high" {
		t.Fatalf("oscillation: %s", got)
	}
	// Acknowledged: no more reminders, and still active.
	a, evs, err := s.m.Acknowledge(s.now, id, "Dr Doc")
	if err != nil || a.Ack == nil || !a.Active() || brief(alerts(s.add(evs))) != "acknowledged threshold:8867-4:high" {
		t.Fatalf("acknowledge: %+v %+v %v", a, evs, err)
	}
	if _, evs, _ := s.m.Acknowledge(s.now, id, "Dr Other"); len(evs) != 0 {
		t.Fatalf("a second acknowledgement announced: %+v", evs)
	}
	mark = len(s.log)
	for i := range 150 {
		hr([]float64{119, 121}[i%2])
	}
	if as := alerts(s.since(mark)); len(as) != 0 || len(s.m.Alerts()) != 1 {
		t.Fatalf("after acknowledging: %s; active %d", brief(as), len(s.m.Alerts()))
	}
	// Recovery clears it, once.
	hr(100, 100, 100, 100, 100, 100, 100, 100, 100, 100)
	if got := brief(alerts(s.since(mark))); got != "cleared threshold:8867-4:high" || len(s.m.Alerts()) != 0 {
		t.Fatalf("recovery: %s", got)
	}
	if _, _, err := s.m.Acknowledge(s.now, "nope@1", "x"); !errors.Is(err, alert.ErrUnknownAlert) {
		t.Fatalf("unknown alert: %v", err)
	}
}

func TestSetThresholds(t *testing.T) {
	s := newSim(t, Config{})
	s.start()
	set := []alert.Threshold{{Code: vitals.CodeSpO2Alt, Low: ptr(95)}, {Code: vitals.CodeSystolic, Low: ptr(100), High: ptr(180)}}
	if _, err := s.m.SetThresholds(s.now, set); err != nil {
		t.Fatal(err)
	}
	s.read(vitals.CodeSystolic, 95) // a cuff reading alerts at once
	for range 6 {
		r := normal()
		delete(r, vitals.CodeSpO2)
		r[vitals.CodeSpO2Alt] = 93
		s.second(r)
	}
	if got := brief(s.m.alertEvents()); got != "raised threshold:8480-6:low, raised threshold:59408-5:low" {
		t.Fatalf("active: %s", got)
	}
	// Setting the same SpO2 threshold again keeps its alert; dropping the
	// blood pressure one clears its alert.
	evs, err := s.m.SetThresholds(s.now, []alert.Threshold{{Code: vitals.CodeSpO2, Low: ptr(95)}})
	if err != nil || brief(alerts(evs)) != "cleared threshold:8480-6:low" || len(s.m.Alerts()) != 1 {
		t.Fatalf("replace: %s %v; active %d", brief(alerts(evs)), err, len(s.m.Alerts()))
	}
	// Changing it clears its alert too; the new one starts afresh.
	evs, _ = s.m.SetThresholds(s.now, []alert.Threshold{{Code: vitals.CodeSpO2, Low: ptr(88)}})
	if brief(alerts(evs)) != "cleared threshold:59408-5:low" {
		t.Fatalf("change: %s", brief(alerts(evs)))
	}
	for _, c := range []struct {
		ts   []alert.Threshold
		want string
	}{
		{[]alert.Threshold{{Code: vitals.CodeHeartRate, High: ptr(120)}, {Code: vitals.CodeHeartRate, Low: ptr(40)}}, "thresholds[1].code: "},
		{[]alert.Threshold{{Code: vitals.CodeHeartRate, High: ptr(120)}, {Code: vitals.CodeECG, High: ptr(1)}}, "thresholds[1].code: "},
		{[]alert.Threshold{{Code: vitals.CodeTemperature, High: ptr(99)}}, "thresholds[0].high: 99 Cel is not a possible body temperature"},
	} {
		if _, err := s.m.SetThresholds(s.now, c.ts); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.ts, err, c.want)
		}
	}
	if th := s.m.Thresholds(); len(th) != 1 || *th[0].Low != 88 {
		t.Fatalf("a refused set changed the thresholds: %+v", th)
	}
}

// alertEvents lists the active alerts as "raised" events, for brief.
func (m *Monitor) alertEvents() []AlertEvent {
	var out []AlertEvent
	for _, a := range m.Alerts() {
		out = append(out, alertEvent("raised", a))
	}
	return out
}

func TestEnteredValues(t *testing.T) {
	s := newSim(t, Config{})
	s.add(s.m.SetOxygen(s.now, false))
	if _, err := s.m.SetConsciousness(s.now, news2.Level(12)); err == nil {
		t.Fatal("an unknown level was entered")
	}
	mark := len(s.log)
	evs, err := s.m.SetConsciousness(s.now, news2.Confusion)
	if err != nil || brief(alerts(s.add(evs))) != "raised news2-parameter:consciousness" {
		t.Fatalf("new confusion: %s %v", brief(alerts(evs)), err)
	}
	if a := alerts(s.since(mark))[0]; a.Value != nil || a.Code != "" {
		t.Fatalf("consciousness alert carries %+v", a)
	}
	// A counted respiration rate stands in until a device measures one.
	evs, err = s.m.EnterValue(s.now, vitals.CodeRespRate, 18)
	if err != nil {
		t.Fatal(err)
	}
	ps := scores(s.add(evs))[0].Params[news2.RespirationRate]
	if ps.Source != news2.Entered || !ps.Entered || ps.Value != 18.0 || ps.Code != vitals.CodeRespRate || !ps.Time.Equal(s.now) {
		t.Fatalf("entered respiration: %+v", ps)
	}
	s.now = s.now.Add(time.Second)
	evs = s.read(vitals.CodeRespRate, 22)
	if ps := scores(evs)[0].Params[news2.RespirationRate]; ps.Source != news2.Measured || ps.Entered || ps.Score != 2 {
		t.Fatalf("measured after entered: %+v", ps)
	}
	if _, err := s.m.EnterValue(s.now, vitals.CodeWeight, 70); err == nil || !strings.HasPrefix(err.Error(), "code: ") {
		t.Fatalf("weight entered for NEWS2: %v", err)
	}
	if _, err := s.m.EnterValue(s.now, vitals.CodeHeartRate, 400); err == nil || !strings.HasPrefix(err.Error(), "value: ") {
		t.Fatalf("impossible value entered: %v", err)
	}
	// Withdrawing the consciousness entry clears its alert.
	mark = len(s.log)
	evs, err = s.m.ClearEntry(s.now, news2.Consciousness)
	if err != nil || brief(alerts(s.add(evs))) != "cleared news2-parameter:consciousness" || s.m.Score().Sources[news2.Consciousness] != news2.Missing {
		t.Fatalf("clear entry: %s %v", brief(alerts(evs)), err)
	}
	if _, err := s.m.ClearEntry(s.now, news2.Consciousness); !errors.Is(err, ErrNotEntered) {
		t.Fatalf("clear twice: %v", err)
	}
}

// TestReadingTimes: an old reading (a backlog resent after a reconnect)
// does not replace a newer one, and a device clock running ahead is fresh
// only from arrival.
func TestReadingTimes(t *testing.T) {
	s := newSim(t, Config{})
	s.start()
	s.add(s.m.Observe(s.now, vitals.Reading{Code: vitals.CodeHeartRate, Value: 140, Time: s.now.Add(-10 * time.Second)}))
	if sc := s.m.Score(); sc.Points[news2.Pulse] != 0 {
		t.Fatalf("an older reading replaced the newer one: %+v", sc)
	}
	// Ten minutes ahead of the server: stale 30 s after it arrived.
	s.add(s.m.Observe(s.now, vitals.Reading{Code: vitals.CodeHeartRate, Value: 100, Time: s.now.Add(10 * time.Minute)}))
	mark := len(s.log)
	s.now = s.now.Add(31 * time.Second)
	st := stales(s.add(s.m.Tick(s.now)))
	if !slices.ContainsFunc(st, func(e StaleEvent) bool { return e.Code == vitals.CodeHeartRate && e.Stale }) {
		t.Fatalf("a reading from the future stayed fresh: %+v", s.since(mark))
	}
	if s.m.Observe(s.now, vitals.Reading{Code: vitals.CodeECG, Value: 1, Time: s.now}) != nil {
		t.Fatal("a waveform code changed something")
	}
}

func TestEventJSON(t *testing.T) {
	s := newSim(t, Config{})
	s.start()
	b, _ := Encode(s.m.Snapshot(s.now)[0])
	want := `{"type":"news2","time":"2026-11-25T10:00:01Z","score":0,"band":"low","complete":true,"scale":1,"params":[` +
		`{"param":"respiration-rate","score":0,"source":"measured","code":"9279-1"},` +
		`{"param":"spo2","score":0,"source":"measured","code":"59408-5"},` +
		`{"param":"air-or-oxygen","score":0,"source":"entered","entered":true,"value":"air","time":"2026-11-25T10:00:00Z"},` +
		`{"param":"systolic","score":0,"source":"measured","code":"8480-6"},` +
		`{"param":"pulse","score":0,"source":"measured","code":"8867-4"},` +
		`{"param":"consciousness","score":0,"source":"entered","entered":true,"value":"alert","time":"2026-11-25T10:00:00Z"},` +
		`{"param":"temperature","score":0,"source":"measured","code":"8310-5"}],` +
		`"response":{"risk":"Low","trigger":"Aggregate score 0","urgency":"Ward-based response","action":"Continue routine NEWS monitoring.","monitoring":"Minimum 12-hourly"}}`
	if string(b) != want {
		t.Fatalf("news2\n got %s\nwant %s", b, want)
	}
	cleared := t0.Add(time.Minute)
	b, _ = Encode(alertEvent("cleared", alert.Alert{ID: "threshold:8867-4:high@1", Rule: alert.RuleThreshold, Severity: alert.Warning,
		Title: "Heart rate above 120 /min", Code: "8867-4", Direction: "high", Limit: ptr(120), Value: ptr(131),
		Raised: t0, Cleared: cleared, Ack: &alert.Ack{By: "Dr Doc", At: t0}}))
	want = `{"type":"alert","state":"cleared","id":"threshold:8867-4:high@1","rule":"threshold","severity":"warning",` +
		`"title":"Heart rate above 120 /min","code":"8867-4","direction":"high","limit":120,"value":131,` +
		`"raised":"2026-11-25T10:00:00Z","cleared":"2026-11-25T10:01:00Z","ack":{"by":"Dr Doc","at":"2026-11-25T10:00:00Z"}}`
	if string(b) != want {
		t.Fatalf("alert\n got %s\nwant %s", b, want)
	}
	b, _ = Encode(StaleEvent{Type: "stale", Code: "8867-4", Stale: true, Last: t0, Time: cleared})
	if want := `{"type":"stale","code":"8867-4","stale":true,"last":"2026-11-25T10:00:00Z","time":"2026-11-25T10:01:00Z"}`; string(b) != want {
		t.Fatalf("stale\n got %s\nwant %s", b, want)
	}
	for _, e := range []Event{NEWS2Event{}, AlertEvent{}, StaleEvent{}} {
		var typ struct{ Type string }
		b, _ := json.Marshal(map[string]string{"type": e.EventType()})
		_ = json.Unmarshal(b, &typ)
		if typ.Type == "" {
			t.Errorf("%T has no type", e)
		}
	}
}

func ptr(v float64) *float64 { return &v }

// BenchmarkObserve feeds a monitored patient a once-a-second round of
// readings that change nothing: the common case.
func BenchmarkObserve(b *testing.B) {
	m := New(Config{})
	now := t0
	m.SetOxygen(now, false)
	m.SetConsciousness(now, news2.Alert)
	m.Observe(now, vitals.Reading{Code: vitals.CodeSystolic, Value: 120, Time: now})
	m.SetThresholds(now, []alert.Threshold{{Code: vitals.CodeHeartRate, High: ptr(120)}, {Code: vitals.CodeSpO2, Low: ptr(92)}})
	codes := []string{vitals.CodeHeartRate, vitals.CodeSpO2, vitals.CodeRespRate, vitals.CodeTemperature}
	values := []float64{72, 98, 15, 36.8}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%4 == 0 {
			now = now.Add(time.Millisecond) // a thousand patients' rounds a second
		}
		if i%(4*600_000) == 0 { // every ten simulated minutes: a cuff reading and the entries confirmed
			m.SetOxygen(now, false)
			m.SetConsciousness(now, news2.Alert)
			m.Observe(now, vitals.Reading{Code: vitals.CodeSystolic, Value: 120, Time: now})
		}
		if evs := m.Observe(now, vitals.Reading{Code: codes[i%4], Value: values[i%4], Time: now}); len(evs) > 0 && i > 8 {
			b.Fatalf("events on an unchanged round: %s", fmt.Sprint(evs))
		}
	}
}
