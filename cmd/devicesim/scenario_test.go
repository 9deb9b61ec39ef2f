package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/vitals"
)

func TestParseScenario(t *testing.T) {
	for _, name := range []string{"normal", "fever", "hypoxia", "afib", "deteriorating", "flaky", "faulty", "deteriorating+flaky", "faulty+afib+flaky"} {
		if _, err := parseScenario(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	sc, _ := parseScenario("flaky+deteriorating")
	if !sc.flaky || sc.worse == nil || sc.faulty || sc.afib {
		t.Errorf("flaky+deteriorating: %+v", sc)
	}
	sc, _ = parseScenario("faulty")
	if !sc.faulty || sc.base != physiologies["normal"].base {
		t.Errorf("faulty alone is a normal patient with a faulty device: %+v", sc)
	}
	for _, name := range []string{"", "zombie", "fever+hypoxia", "normal+", "flaky+zombie"} {
		if _, err := parseScenario(name); err == nil {
			t.Errorf("%q accepted", name)
		}
	}
}

// readingsAt measures one round at t and returns each numeric by code.
func readingsAt(t *testing.T, p *patient, at time.Time) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range p.numerics(at) {
		parsed, err := vitals.ParseObservation(m.Observation)
		if err != nil {
			t.Fatalf("%v: %v", at, err)
		}
		for _, r := range parsed.Readings {
			out[r.Code] = r.Value
		}
	}
	return out
}

// TestDeterioratingPatient checks that the patient starts well and ends, at
// the end of the ramp, with every NEWS2 parameter scoring: respiration 25+,
// SpO2 91 or less, systolic 100 or less, pulse 111+, temperature 39.1+.
func TestDeterioratingPatient(t *testing.T) {
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	ramp := 10 * time.Minute
	p := newPatient(physiologies["deteriorating"], 11, start, ramp)
	p.bpEvery = time.Second // a blood pressure every round, to read it at both ends
	first := readingsAt(t, p, start)
	well := map[string][2]float64{
		vitals.CodeRespRate: {12, 20}, vitals.CodeSpO2: {96, 100}, vitals.CodeSystolic: {111, 219},
		vitals.CodeHeartRate: {51, 90}, vitals.CodeTemperature: {36.1, 38.0},
	}
	for code, lim := range well {
		if v := first[code]; v < lim[0] || v > lim[1] {
			t.Errorf("at the start %s = %v, want %v (NEWS2 0)", code, v, lim)
		}
	}
	// Respiration climbs minute by minute.
	prev := 0.0
	for m := 0; m <= 10; m++ {
		var sum float64
		for s := range 60 {
			sum += readingsAt(t, p, start.Add(time.Duration(m)*time.Minute+time.Duration(s)*time.Second))[vitals.CodeRespRate]
		}
		mean := sum / 60
		if m > 0 && mean < prev-0.7 {
			t.Errorf("minute %d: respiration %.1f fell from %.1f", m, mean, prev)
		}
		prev = mean
	}
	last := readingsAt(t, p, start.Add(ramp+time.Minute))
	sick := map[string][2]float64{
		vitals.CodeRespRate: {25, 40}, vitals.CodeSpO2: {80, 91}, vitals.CodeSystolic: {60, 100},
		vitals.CodeHeartRate: {111, 160}, vitals.CodeTemperature: {39.1, 41},
	}
	for code, lim := range sick {
		if v := last[code]; v < lim[0] || v > lim[1] {
			t.Errorf("after the ramp %s = %v, want %v", code, v, lim)
		}
	}
}

// rrIntervals returns the seconds between R peaks of a minute of ECG.
func rrIntervals(t *testing.T, p *patient, start time.Time) []float64 {
	t.Helper()
	var samples []float64
	for i := 1; i <= 600; i++ {
		now := start.Add(time.Duration(i) * chunkEvery)
		if i%10 == 0 {
			p.numerics(now)
		}
		parsed, err := vitals.ParseObservation(p.ecgChunk(now))
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		for _, v := range parsed.Waveform.Data {
			samples = append(samples, parsed.Waveform.Origin+parsed.Waveform.Factor*v)
		}
	}
	var peaks []int
	for i := 1; i+1 < len(samples); i++ {
		if samples[i] > 0.7 && samples[i] >= samples[i-1] && samples[i] > samples[i+1] {
			peaks = append(peaks, i)
		}
	}
	var out []float64
	for i := 1; i < len(peaks); i++ {
		out = append(out, float64(peaks[i]-peaks[i-1])*samplePeriod.Seconds())
	}
	return out
}

// variation is the coefficient of variation of xs.
func variation(xs []float64) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / float64(len(xs))
	for _, x := range xs {
		sq += (x - mean) * (x - mean)
	}
	return math.Sqrt(sq/float64(len(xs))) / mean
}

// TestAtrialFibrillationIsIrregular checks the rhythm the strip will show:
// beat-to-beat intervals vary widely in atrial fibrillation and little in
// sinus rhythm.
func TestAtrialFibrillationIsIrregular(t *testing.T) {
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	sinus := variation(rrIntervals(t, newPatient(physiologies["normal"], 5, start, time.Minute), start))
	afib := rrIntervals(t, newPatient(physiologies["afib"], 5, start, time.Minute), start)
	cv := variation(afib)
	t.Logf("R-R variation: sinus %.3f, atrial fibrillation %.3f (%d beats)", sinus, cv, len(afib)+1)
	if sinus > 0.08 {
		t.Errorf("sinus rhythm R-R variation %.3f, want under 0.08", sinus)
	}
	if cv < 0.15 {
		t.Errorf("atrial fibrillation R-R variation %.3f, want over 0.15", cv)
	}
	if len(afib) < 90 || len(afib) > 135 {
		t.Errorf("%d beats in a minute, want about 112", len(afib)+1)
	}
}

// TestFaultyDeviceMessages checks each fault against the server's own
// decoders: all are refused except the loose cuff, which is kept flagged.
func TestFaultyDeviceMessages(t *testing.T) {
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	p := newPatient(physiologies["normal"], 1, start, time.Minute)
	for i, kind := range faults {
		m := p.fault(start.Add(time.Duration(i) * time.Second))
		var parsed vitals.Parsed
		var err error
		switch {
		case m.Garbled != nil:
			_, err = vitals.DecodeEnvelope(m.Garbled)
		case m.GATT != nil:
			parsed, err = vitals.ParseGATT(m.GATT)
		default:
			parsed, err = vitals.ParseObservation(m.Observation)
		}
		if kind == "loose cuff" {
			if err != nil || len(parsed.Readings) != 2 || !strings.Contains(strings.Join(parsed.Readings[0].Flags, ","), "cuff too loose") {
				t.Errorf("%s: %v %+v, want a blood pressure flagged cuff too loose", kind, err, parsed)
			}
			continue
		}
		var fe *vitals.FieldError
		if err == nil || (kind != "garbled" && !errors.As(err, &fe)) {
			t.Errorf("%s: %v, want a refusal naming the field", kind, err)
		}
	}
}

// TestFaultyDeviceEndToEnd streams a faulty device: the server rejects the
// bad messages, the device moves on, and everything else is acknowledged.
func TestFaultyDeviceEndToEnd(t *testing.T) {
	s := newTestServer(t, 0)
	var stdout, stderr bytes.Buffer
	args := []string{"--token", "good", "--url", s.wsURL(), "--scenario", "faulty", "--rate", "50ms", "--duration", "4s", "--ecg=false", "--seed", "3"}
	if err := run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	sm := parseSummary(t, stdout.String())
	lastSeq, _, _ := s.state()
	if sm.rejected < 3 || !strings.Contains(stderr.String(), "server rejected seq") || !strings.Contains(stdout.String(), "garbled frames") {
		t.Fatalf("want several rejections and garbled frames\nstdout %s\nstderr %s", stdout.String(), stderr.String())
	}
	if int64(sm.acked) != lastSeq || sm.acked+sm.unacked != sm.measured {
		t.Fatalf("%+v; server at %d", sm, lastSeq)
	}
}

// TestFlakyLinkLosesNothing drops the link several times: every message is
// still acknowledged once, in order, with no gap. The run lasts until, after
// two drops, a connection's first acknowledgement covers 60 messages: a
// busy machine slows the run down but does not cut it short.
func TestFlakyLinkLosesNothing(t *testing.T) {
	s := newTestServer(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout bytes.Buffer
	stderr := &resumeWatch{want: 60, drops: 2, reached: cancel}
	args := []string{"--token", "good", "--url", s.wsURL(), "--scenario", "deteriorating+flaky", "--rate", "50ms",
		"--flaky-every", "400ms", "--flaky-outage", "200ms", "--duration", "1m", "--seed", "9"}
	if err := run(ctx, args, func(string) string { return "" }, &stdout, stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if ctx.Err() == nil {
		t.Fatalf("a minute passed without %d messages acknowledged after %d drops:\n%s", stderr.want, stderr.drops, stderr.String())
	}
	sm := parseSummary(t, stdout.String())
	lastSeq, rows, conns := s.state()
	t.Logf("%d connections, server at %d with %d readings; %s", conns, lastSeq, rows, strings.TrimSpace(stdout.String()))
	if conns < 3 || strings.Count(stderr.String(), "link dropped") < 2 {
		t.Fatalf("want at least two simulated drops:\n%s", stderr.String())
	}
	// The run may stop while the link is down, after the server handled a
	// message whose acknowledgement never arrived: the device still holds
	// it (and would resend it, to be ignored). So the server is at or past
	// what was acknowledged and never past what was sent, and every
	// measured message is either acknowledged or still held.
	if sm.rejected != 0 || lastSeq < int64(sm.acked) || lastSeq > int64(sm.acked+sm.unacked) ||
		sm.acked+sm.unacked != sm.measured || sm.acked < stderr.want {
		t.Fatalf("%+v; server at %d", sm, lastSeq)
	}
}

// resumeWatch is a devicesim log that calls reached once, after drops
// simulated link drops, a connection's first acknowledgement covers want
// messages.
type resumeWatch struct {
	want, drops int
	reached     func()
	mu          sync.Mutex
	buf         bytes.Buffer
	seen        int // drops so far
	done        bool
}

func (w *resumeWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for line := range strings.Lines(string(p)) {
		if strings.Contains(line, "link dropped") {
			w.seen++
		}
		var n int
		if _, after, ok := strings.Cut(line, "the server has everything up to "); ok && w.seen >= w.drops && !w.done {
			if _, err := fmt.Sscanf(after, "%d", &n); err == nil && n >= w.want {
				w.done = true
				w.reached()
			}
		}
	}
	return w.buf.Write(p)
}

func (w *resumeWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestManyPatients streams three patients at once, two from --token and one
// from --tokens-file: each device's readings arrive under its own token.
func TestManyPatients(t *testing.T) {
	s := newTestServer(t, 0)
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("# the third patient\ngood3\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	args := []string{"--token", "good,good2", "--tokens-file", file, "--url", s.wsURL(), "--rate", "100ms", "--duration", "1500ms", "--ecg=false"}
	if err := run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[3], "devicesim: 3 patients: ") {
		t.Fatalf("summary:\n%s", stdout.String())
	}
	for i, tok := range []string{"good", "good2", "good3"} {
		sm := parseSummary(t, lines[i])
		lastSeq, rows, _ := s.stateOf(tok)
		if !strings.HasPrefix(lines[i], "devicesim[") || int64(sm.acked) != lastSeq || rows < 20 {
			t.Errorf("%s: %q; server at %d with %d readings", tok, lines[i], lastSeq, rows)
		}
	}
	// A bad line in the tokens file is refused before anything streams.
	if err := os.WriteFile(file, []byte("good3 extra\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := parseFlags([]string{"--tokens-file", file}, func(string) string { return "" }, &stderr); err == nil {
		t.Fatal("a line with two words was taken as a token")
	}
}
