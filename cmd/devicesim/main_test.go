package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/vitals"
	"github.com/bedside-health/bedside/wsconn"
)

func TestFlags(t *testing.T) {
	noEnv := func(string) string { return "" }
	bad := [][]string{
		{},
		{"--token", "x", "--scenario", "zombie"},
		{"--token", "x", "--rate", "0s"},
		{"--token", "x", "--duration", "-1s"},
		{"--token", "x", "stray"},
		{"--token", "x", "--ecg-format", "xml"},
		{"--nope"},
	}
	for _, args := range bad {
		if _, err := parseFlags(args, noEnv, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	o, err := parseFlags(nil, func(k string) string {
		if k == "DEVICESIM_TOKEN" {
			return "from-env"
		}
		return ""
	}, io.Discard)
	if err != nil || o.token != "from-env" || o.url != "ws://localhost:8080/ws/device" || o.rate != time.Second || o.scenario != "normal" || !o.ecg || o.ecgFormat != "json" || o.seed == 0 {
		t.Fatalf("defaults: %+v %v", o, err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, noEnv, &out, &out); err != nil || !strings.Contains(out.String(), "-scenario") {
		t.Fatalf("--help: %v\n%s", err, out.String())
	}
}

func TestOutbox(t *testing.T) {
	b := outbox{max: 4}
	for range 4 {
		if _, ok := b.add(message{Observation: json.RawMessage(`{}`)}); !ok {
			t.Fatal("add refused below the limit")
		}
	}
	if _, ok := b.add(message{Observation: json.RawMessage(`{}`)}); ok {
		t.Fatal("add accepted beyond the limit")
	}
	if b.ack(2) || len(b.pending) != 2 || b.pending[0].Seq != 3 || b.acked != 2 {
		t.Fatalf("after ack 2: %+v", b)
	}
	if b.ack(1) || len(b.pending) != 2 {
		t.Fatalf("an older ack changed the outbox: %+v", b)
	}
	// The server has seen this device up to 500 in an earlier run.
	if !b.ack(500) || b.pending[0].Seq != 501 || b.pending[1].Seq != 502 || b.next != 502 {
		t.Fatalf("after ack 500: %+v", b)
	}
	if e, _ := b.add(message{Observation: json.RawMessage(`{}`)}); e.Seq != 503 {
		t.Fatalf("next seq %d, want 503", e.Seq)
	}
}

// TestPatientNumericsValidate runs each patient for half an hour of 1 Hz
// rounds: every observation passes the server's validation, and the normal
// patient stays normal.
func TestPatientNumericsValidate(t *testing.T) {
	normal := map[string][2]float64{
		vitals.CodeHeartRate: {55, 90}, vitals.CodeSpO2: {97, 99}, vitals.CodeRespRate: {14, 16},
		vitals.CodeTemperature: {36.5, 37.1}, vitals.CodeSystolic: {100, 136}, vitals.CodeDiastolic: {62, 90},
	}
	for name, sc := range physiologies {
		t.Run(name, func(t *testing.T) {
			start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			p := newPatient(sc, 7, start, 10*time.Minute)
			counts := map[string]int{}
			var hrSum float64
			for i := range 1800 {
				now := start.Add(time.Duration(i) * time.Second)
				for _, m := range p.numerics(now) {
					obs := m.Observation
					parsed, err := vitals.ParseObservation(obs)
					if err != nil {
						t.Fatalf("second %d: %v\n%s", i, err, obs)
					}
					for _, r := range parsed.Readings {
						counts[r.Code]++
						if !r.Time.Equal(now) {
							t.Fatalf("reading time %v, want %v", r.Time, now)
						}
						if r.Code == vitals.CodeHeartRate {
							hrSum += r.Value
						}
						if lim, ok := normal[r.Code]; ok && name == "normal" && (r.Value < lim[0] || r.Value > lim[1]) {
							t.Fatalf("second %d: %s = %v is outside a resting adult's %v", i, r.Code, r.Value, lim)
						}
					}
				}
			}
			if counts[vitals.CodeHeartRate] != 1800 || counts[vitals.CodeSystolic] != 10 || counts[vitals.CodeDiastolic] != 10 {
				t.Fatalf("counts %v: want 1800 of each numeric and a blood pressure at once and every 3 minutes (10)", counts)
			}
			// Over half an hour a deteriorating patient spends 10 minutes
			// getting worse and 20 at its worst.
			want := sc.base.hr
			if sc.worse != nil {
				want = (sc.base.hr+sc.worse.hr)/2/3 + sc.worse.hr*2/3
			}
			if mean := hrSum / 1800; mean < want-5 || mean > want+5 {
				t.Fatalf("mean heart rate %.1f, want about %v", mean, want)
			}
		})
	}
}

// TestPatientECG checks the waveform: every chunk validates, chunks follow
// one another without gaps at 250 Hz, and the beats match the heart rate.
func TestPatientECG(t *testing.T) {
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	p := newPatient(physiologies["normal"], 3, start, time.Minute)
	var samples []float64
	var next time.Time
	for i := 1; i <= 600; i++ { // one minute of chunks
		now := start.Add(time.Duration(i) * chunkEvery)
		if i%10 == 0 {
			p.numerics(now) // the heart rate drifts as in the real loop
		}
		obs := p.ecgChunk(now)
		parsed, err := vitals.ParseObservation(obs)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		w := parsed.Waveform
		if w == nil || w.Period != 4 || w.Code != vitals.CodeECGLeadII {
			t.Fatalf("chunk %d: %+v", i, w)
		}
		if !next.IsZero() && !w.Time.Equal(next) {
			t.Fatalf("chunk %d starts at %v, want %v (no gap, no overlap)", i, w.Time, next)
		}
		if i > 1 && len(w.Data) != 25 {
			t.Fatalf("chunk %d has %d samples, want 25", i, len(w.Data))
		}
		next = w.Time.Add(time.Duration(len(w.Data)) * samplePeriod)
		for _, v := range w.Data {
			samples = append(samples, w.Origin+w.Factor*v)
		}
	}
	// Count R peaks: local maxima above 0.7 mV.
	beats := 0
	for i := 1; i+1 < len(samples); i++ {
		if samples[i] > 0.7 && samples[i] >= samples[i-1] && samples[i] > samples[i+1] {
			beats++
		}
	}
	if beats < 62 || beats > 82 {
		t.Fatalf("%d R peaks in a minute, want about 72", beats)
	}
	// After a pause the waveform restarts instead of sending a backlog.
	obs := p.ecgChunk(start.Add(2 * time.Hour))
	parsed, err := vitals.ParseObservation(obs)
	if err != nil || len(parsed.Waveform.Data) > 26 {
		t.Fatalf("after a pause: %v, %d samples", err, len(parsed.Waveform.Data))
	}
}

// testServer is a device endpoint built from the real vitals.ServeDevice and
// an in-memory store that keeps the store's rules. Tokens "good", "good2",
// "good3"... are devices of different patients. It can cut each device's
// first connection after a number of frames.
type testServer struct {
	*httptest.Server
	mu       sync.Mutex
	devs     map[string]*testDevice
	cutAfter int // frames; 0: never
}

// testDevice is what the server holds of one device.
type testDevice struct {
	id      int64
	lastSeq int64
	rows    map[string]bool
	conns   int
	binary  int // binary frames read on the first connection
	waves   int // waveform chunks published
}

// deviceSink stores one device's readings in the test server.
type deviceSink struct {
	s *testServer
	d *testDevice
}

func (k deviceSink) Append(_ context.Context, deviceID, lastSeq int64, rs []vitals.StoredReading) error {
	k.s.mu.Lock()
	defer k.s.mu.Unlock()
	for _, r := range rs {
		key := fmt.Sprintf("%d/%s", r.Seq, r.Reading.Code)
		if k.d.rows[key] {
			return fmt.Errorf("seq %d %s stored twice", r.Seq, r.Reading.Code)
		}
		k.d.rows[key] = true
	}
	k.d.lastSeq = lastSeq
	return nil
}

func (k deviceSink) Publish(_ context.Context, _ int64, msg []byte) error {
	var m struct{ Type string }
	if json.Unmarshal(msg, &m) == nil && m.Type == "waveform" {
		k.s.mu.Lock()
		k.d.waves++
		k.s.mu.Unlock()
	}
	return nil
}

// state is the first device's: its sequence, readings and connections.
func (s *testServer) state() (int64, int, int) { return s.stateOf("good") }

func (s *testServer) stateOf(token string) (int64, int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devs[token]
	if d == nil {
		return 0, 0, 0
	}
	return d.lastSeq, len(d.rows), d.conns
}

// setLastSeq says the device with token streamed up to seq before.
func (s *testServer) setLastSeq(token string, seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.device(token).lastSeq = seq
}

// device returns token's device, made on first use; s.mu must be held.
func (s *testServer) device(token string) *testDevice {
	d := s.devs[token]
	if d == nil {
		d = &testDevice{id: int64(len(s.devs) + 1), rows: map[string]bool{}}
		s.devs[token] = d
	}
	return d
}

func newTestServer(t *testing.T, cutAfter int) *testServer {
	s := &testServer{devs: map[string]*testDevice{}, cutAfter: cutAfter}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !strings.HasPrefix(token, "good") {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		up := websocket.Upgrader{}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conn := wsconn.New(ws, wsconn.Options{})
		defer conn.Close()
		s.mu.Lock()
		d := s.device(token)
		d.conns++
		first := d.conns == 1
		last := d.lastSeq
		s.mu.Unlock()
		sink := deviceSink{s, d}
		in := vitals.NewIngester(sink, sink, vitals.Device{ID: d.id, PatientID: 100 + d.id, LastSeq: last})
		if first && s.cutAfter > 0 {
			for range s.cutAfter {
				kind, frame, err := conn.Read(r.Context())
				if err != nil {
					return
				}
				handle := in.Handle
				if kind == websocket.BinaryMessage {
					handle = in.HandleBinary
					s.mu.Lock()
					d.binary++
					s.mu.Unlock()
				}
				for _, rep := range handle(r.Context(), frame) {
					_ = conn.Send(rep)
				}
			}
			return // drop the connection without a close frame
		}
		_ = vitals.ServeDevice(r.Context(), conn, in)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *testServer) wsURL() string { return "ws" + strings.TrimPrefix(s.URL, "http") }

// summary reads a client's closing line.
type summary struct{ measured, acked, rejected, unacked int }

func parseSummary(t *testing.T, line string) summary {
	t.Helper()
	var sm summary
	i := strings.Index(line, ": ")
	if i < 0 {
		t.Fatalf("summary %q", line)
	}
	if _, err := fmt.Sscanf(line[i+2:], "%d messages measured, %d acknowledged (%d of them rejected), %d unacknowledged",
		&sm.measured, &sm.acked, &sm.rejected, &sm.unacked); err != nil {
		t.Fatalf("summary %q: %v", line, err)
	}
	return sm
}

func TestRunStreamsAndResendsAfterReconnect(t *testing.T) {
	s := newTestServer(t, 12)
	var stdout, stderr bytes.Buffer
	args := []string{"--token", "good", "--url", s.wsURL(), "--rate", "100ms", "--duration", "2500ms", "--seed", "5"}
	if err := run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	lastSeq, rows, conns := s.state()
	var measured, acked, rejected, unacked int
	if _, err := fmt.Sscanf(stdout.String(), "devicesim: %d messages measured, %d acknowledged (%d of them rejected), %d unacknowledged",
		&measured, &acked, &rejected, &unacked); err != nil {
		t.Fatalf("summary %q: %v", stdout.String(), err)
	}
	t.Logf("%d connections; server at seq %d with %d readings; %s", conns, lastSeq, rows, strings.TrimSpace(stdout.String()))
	if conns < 2 || !strings.Contains(stderr.String(), "reconnecting") {
		t.Fatalf("the cut connection was not re-established:\n%s", stderr.String())
	}
	if rejected != 0 {
		t.Fatalf("the server rejected simulated observations:\n%s", stderr.String())
	}
	// Everything acknowledged is on the server, without a gap (the server's
	// sequence only moves over contiguous messages).
	if int64(acked) != lastSeq || acked+unacked != measured || acked < 100 {
		t.Fatalf("measured %d, acked %d, unacked %d; server at %d", measured, acked, unacked, lastSeq)
	}
	// 25 rounds of 4 numerics plus a blood pressure (2 readings) at least.
	if rows < 4*20+2 {
		t.Fatalf("only %d readings stored", rows)
	}
}

func TestRunRenumbersAfterAnEarlierRun(t *testing.T) {
	s := newTestServer(t, 0)
	s.setLastSeq("good", 1000) // this device token streamed before
	var stdout, stderr bytes.Buffer
	args := []string{"--token", "good", "--url", s.wsURL(), "--rate", "100ms", "--duration", "800ms", "--ecg=false"}
	if err := run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	lastSeq, rows, _ := s.state()
	if lastSeq <= 1005 || rows < 20 || !strings.Contains(stderr.String(), "renumbering") {
		t.Fatalf("server at %d with %d readings\n%s", lastSeq, rows, stderr.String())
	}
}

func TestRunRefusedToken(t *testing.T) {
	s := newTestServer(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := run(ctx, []string{"--token", "bad", "--url", s.wsURL()}, func(string) string { return "" }, io.Discard, io.Discard)
	if !errors.Is(err, errRefused) {
		t.Fatalf("run with a bad token: %v", err)
	}
}

func TestRunWithoutServerStopsCleanly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"--token", "x", "--url", "ws://127.0.0.1:1/ws/device", "--rate", "100ms"}, func(string) string { return "" }, &stdout, &stderr)
	if err != nil || !strings.Contains(stderr.String(), "retrying in") || !strings.Contains(stdout.String(), "0 acknowledged") {
		t.Fatalf("err %v\nstdout %s\nstderr %s", err, stdout.String(), stderr.String())
	}
}

// TestECGFrames: a chunk sent as a binary frame is the chunk sent as FHIR,
// under the envelope's sequence number.
func TestECGFrames(t *testing.T) {
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	asJSON := newPatient(physiologies["normal"], 9, start, 10*time.Minute)
	asFrame := newPatient(physiologies["normal"], 9, start, 10*time.Minute)
	for i := 1; i <= 20; i++ {
		now := start.Add(time.Duration(i) * chunkEvery)
		obs := asJSON.ecgChunk(now)
		kind, b, err := frame(envelope{Seq: int64(i), Wave: asFrame.ecgWave(now)})
		if err != nil || kind != websocket.BinaryMessage {
			t.Fatalf("chunk %d: kind %d, %v", i, kind, err)
		}
		seq, w, err := vitals.DecodeWaveFrame(b)
		if err != nil || seq != int64(i) {
			t.Fatalf("chunk %d: seq %d, %v", i, seq, err)
		}
		p, err := vitals.ParseObservation(obs)
		if err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(p.Waveform)
		f, _ := json.Marshal(w)
		if string(j) != string(f) {
			t.Fatalf("chunk %d differs:\nJSON  %s\nframe %s", i, j, f)
		}
	}
	if kind, b, err := frame(envelope{Seq: 3, Observation: json.RawMessage(`{"resourceType":"Observation"}`)}); err != nil || kind != websocket.TextMessage || !strings.HasPrefix(string(b), `{"seq":3,"observation":`) {
		t.Fatalf("JSON envelope: %d %s %v", kind, b, err)
	}
}

// TestRunStreamsBinaryECG streams with --ecg-format=binary through a cut
// connection: the ECG arrives as binary frames, every message is acked and
// none rejected, and the chunks reach viewers.
func TestRunStreamsBinaryECG(t *testing.T) {
	s := newTestServer(t, 30)
	var stdout, stderr bytes.Buffer
	args := []string{"--token", "good", "--url", s.wsURL(), "--rate", "200ms", "--duration", "2s", "--seed", "5", "--ecg-format", "binary"}
	if err := run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	sm := parseSummary(t, strings.TrimSpace(stdout.String()))
	lastSeq, _, conns := s.state()
	s.mu.Lock()
	binary, waves := s.devs["good"].binary, s.devs["good"].waves
	s.mu.Unlock()
	t.Logf("%d connections, %d binary frames on the first, %d chunks published; %s", conns, binary, waves, strings.TrimSpace(stdout.String()))
	if conns < 2 || binary < 5 || sm.rejected != 0 || int64(sm.acked) != lastSeq || sm.acked+sm.unacked != sm.measured {
		t.Fatalf("%+v, server at %d; %d binary frames\n%s", sm, lastSeq, binary, stderr.String())
	}
	// Every frame the first connection read was published, and no more
	// than ten chunks a second for two seconds in all.
	if waves < binary || waves > 21 {
		t.Fatalf("%d chunks published, %d binary frames read first", waves, binary)
	}
}

// TestBackoffBounded: however many attempts have failed (a network down
// for a while), the next comes within 4 s, so a hub is back streaming
// within seconds of its network.
func TestBackoffBounded(t *testing.T) {
	c := newClient(options{}, "tok", "devicesim", 1, io.Discard)
	for n := range 30 {
		for range 20 {
			if d := c.backoff(n); d < 250*time.Millisecond || d > 4*time.Second {
				t.Fatalf("backoff(%d) = %s, want between 250ms and 4s", n, d)
			}
		}
	}
}
