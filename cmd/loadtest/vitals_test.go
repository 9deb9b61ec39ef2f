package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/cluster"
	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/metrics"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/store/sqlite"
	"github.com/bedside-health/bedside/web"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, c := range []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99.9, 7 * time.Millisecond},
		{"median of four is the second", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p99.9 of 100 is the largest", ms(hundred...), 99.9, 100 * time.Millisecond},
		{"p50 of 100", ms(hundred...), 50, 50 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := percentile(c.in, c.p); got != c.want {
				t.Errorf("percentile(%v) = %v, want %v", c.p, got, c.want)
			}
		})
	}
	l := summarise(ms(5, 1, 3, 2, 4))
	if l.n != 5 || l.p50 != 3*time.Millisecond || l.mx != 5*time.Millisecond {
		t.Errorf("summarise sorts: %+v", l)
	}
}

func TestTallyCountsHolesAndDuplicates(t *testing.T) {
	var ty tally
	now := time.Now()
	ty.take(3, true, now, now, time.Time{}) // before placement: not counted
	ty.place(10)
	for _, off := range []int64{9, 10, 11, 11, 13, 14, 14, 14, 17} {
		ty.take(off, off != 17, now.Add(-time.Millisecond), now, time.Time{})
	}
	if ty.before != 2 {
		t.Errorf("before = %d, want 2 (offsets 3 and 9)", ty.before)
	}
	if got := ty.holes(); got != 3 {
		t.Errorf("holes = %d, want 3 (12, 15, 16)", got)
	}
	if ty.dups != 3 {
		t.Errorf("dups = %d, want 3", ty.dups)
	}
	// 17 is not a measurement (a device event): an offset, no latency.
	if got := ty.delivered.Load(); got != 4 || len(ty.lat) != 4 {
		t.Errorf("delivered %d with %d latencies, want 4 (10, 11, 13, 14)", got, len(ty.lat))
	}
	if len(ty.wire) != 0 {
		t.Errorf("%d arrival latencies, none known", len(ty.wire))
	}
	ty.take(18, true, now.Add(-3*time.Millisecond), now, now.Add(-time.Millisecond))
	if n := len(ty.wire); n != 1 || ty.wire[0] != 2*time.Millisecond || ty.lat[len(ty.lat)-1] != 3*time.Millisecond {
		t.Errorf("arrival latencies %v, read %v; want 2 ms on arrival beside 3 ms read", ty.wire, ty.lat)
	}
	ty.place(1)
	if ty.epochs != 1 || ty.holes() != 0 {
		t.Errorf("a new placement starts afresh: epochs %d, holes %d", ty.epochs, ty.holes())
	}
}

// TestByTenthPlacesEachDelivery: a delivery is counted in the 5 ms step of
// the clock's tenth of a second its send was scheduled in, and as late
// when it came more than 5 ms after.
func TestByTenthPlacesEachDelivery(t *testing.T) {
	var b byTenth
	tenth := time.Unix(1_800_000_000, 300_000_000)         // on a tenth
	b.add(tenth, 6*time.Millisecond)                       // step 0, late
	b.add(tenth.Add(4*time.Millisecond), time.Millisecond) // step 0
	b.add(tenth.Add(12*time.Millisecond), 5*time.Millisecond)
	b.add(tenth.Add(99*time.Millisecond), 20*time.Millisecond)
	want := byTenth{}
	want[0].n, want[0].late = 2, 1
	want[2].n = 1 // 5 ms exactly is not over 5 ms
	want[19].n, want[19].late = 1, 1
	if b != want {
		t.Errorf("counts %v, want %v", b, want)
	}
	var sum byTenth
	sum.merge(&b)
	sum.merge(&b)
	if sum[0].n != 4 || sum[19].late != 2 {
		t.Errorf("merged twice: %v", sum)
	}
	if got, wantStr := b.String(), "50.00 - 0.00 - - - - - - - - - - - - - - - - 100.00"; got != wantStr {
		t.Errorf("String %q, want %q", got, wantStr)
	}
}

// TestMeasureCountsEveryMessage runs the loadtest's own phases, briefly and
// with three patients, against an in-process relay and a real server, and
// checks that every message sent is accounted for exactly once.
func TestMeasureCountsEveryMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := sqlite.Open(ctx, t.TempDir()+"/bedside.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := provision(ctx, st, 3, 3, "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sfu, err := media.New(media.Config{AllowLoopback: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer sfu.Close()
	reg := metrics.NewRegistry() // as the server's, with its scheduler waits and stops
	metrics.RegisterSchedulerLatency(reg)
	metrics.RegisterStoppedWorld(reg)
	srv := httptest.NewServer(web.NewServer(web.Deps{Log: log, Store: st, Bus: cluster.NewLocal(), Metrics: reg,
		Calls: signaling.NewHub(sfu, log), Secret: []byte("a test key of thirty-two bytes, or more")}))
	defer srv.Close()
	rel := httptest.NewServer(newRelay())
	defer rel.Close()
	keepTimestampsOn(t) // every delivery has its arrival time

	// Both targets run in this process, whose CPU stands for theirs: enough
	// for the report to pair them, round by round.
	cfg := vitalsConfig{serverURL: srv.URL, creds: c, patients: 3, duration: time.Second, watch: []int{1, 3},
		relayURL: "ws" + strings.TrimPrefix(rel.URL, "http"), pid: os.Getpid(), relayPID: os.Getpid(),
		settle: 100 * time.Millisecond, rounds: 2, byTenth: true}
	res, err := measure(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		round int
		name  string
	}{{1, relayPhaseName}, {1, "server, 1 patient per viewer"}, {1, "server, 3 patients per viewer"},
		{2, relayPhaseName}, {2, "server, 1 patient per viewer"}, {2, "server, 3 patients per viewer"}}
	if len(res) != len(want) {
		t.Fatalf("%d phases, want the relay and two server phases, twice", len(res))
	}
	for i, r := range res {
		if r.round != want[i].round || r.name != want[i].name {
			t.Errorf("phase %d is %q of round %d, want %q of round %d", i, r.name, r.round, want[i].name, want[i].round)
		}
		// 15 messages a second per patient, for one second; in the second
		// round the devices go on from the sequence the server acked.
		if r.sent != 45 || r.delivered != r.sent || r.lost != 0 || r.dups != 0 || r.holes != 0 || r.lat.n != int(r.sent) {
			t.Errorf("%s, round %d: sent %d, delivered %d, lost %d, dups %d, holes %d, %d latencies; want 45 each exactly once",
				r.name, r.round, r.sent, r.delivered, r.lost, r.dups, r.holes, r.lat.n)
		}
		if r.deviceErrs != 0 || r.firstErr != "" {
			t.Errorf("%s, round %d: %d device errors, first: %s", r.name, r.round, r.deviceErrs, r.firstErr)
		}
		var byStep int64
		for _, c := range r.tenth {
			byStep += c.n
		}
		if byStep != r.delivered {
			t.Errorf("%s, round %d: %d deliveries placed in the tenth of a second, want all %d", r.name, r.round, byStep, r.delivered)
		}
		if r.frames == 0 {
			t.Errorf("%s, round %d: no frames counted", r.name, r.round)
		}
		if r.lat.p50 <= 0 || r.serverCPU <= 0 {
			t.Errorf("%s, round %d: median latency %v, CPU %v; want both above 0 (latency from the scheduled send time)", r.name, r.round, r.lat.p50, r.serverCPU)
		}
		// Both targets' /metrics answer (from loopback), before and after.
		if !r.waitsKnown || r.waits.n == 0 || r.waits.within1ms > r.waits.within5ms || r.waits.within5ms > r.waits.n {
			t.Errorf("%s, round %d: scheduler waits %+v (known %v); want some, the 1 ms ones among the 5 ms ones", r.name, r.round, r.waits, r.waitsKnown)
		}
		// Both give their stops of the world (there may be none in so
		// short a phase).
		if !r.stopsKnown || r.stops.within1ms > r.stops.within5ms || r.stops.within5ms > r.stops.n {
			t.Errorf("%s, round %d: stops of the world %+v (known %v); want them read, the 1 ms ones among the 5 ms ones", r.name, r.round, r.stops, r.stopsKnown)
		}
		// Every write's lateness; every delivery's arrival, each no later
		// than its reader read it, so no percentile is either.
		if r.late.n != int(r.sent) {
			t.Errorf("%s, round %d: %d send times for %d sent", r.name, r.round, r.late.n, r.sent)
		}
		if runtime.GOOS == "linux" && (r.wire.n != r.lat.n || r.wire.p50 <= 0 || r.wire.p99 > r.lat.p99 || r.wire.mx > r.lat.mx) {
			t.Errorf("%s, round %d: on arrival %+v, read %+v; want one for each, none later than its read", r.name, r.round, r.wire, r.lat)
		}
		if !r.ownWaitsKnown || r.ownWaits.n == 0 {
			t.Errorf("%s, round %d: the tool's own scheduler waits %+v (known %v)", r.name, r.round, r.ownWaits, r.ownWaitsKnown)
		}
		// Memory per connection only where the process is fresh to it.
		if wantRSS := i == 0 || i == 1; r.rssKnown != wantRSS {
			t.Errorf("%s, round %d: memory per connection known %v, want %v", r.name, r.round, r.rssKnown, wantRSS)
		}
	}
	var out strings.Builder
	report(&out, cfg, res)
	t.Log("\n" + out.String())
	lines := []string{
		"round 2: server, 3 patients per viewer / relay: CPU per delivery",
		"server, 1 patient per viewer over 2 rounds: median CPU per delivery / relay",
		"every message delivered exactly once in 2 of 2",
		"scheduler waits over 5 ms",
		"stops of the world over 5 ms",
		"over 5 ms late, % by 5 ms step of the clock's tenth",
	}
	if runtime.GOOS == "linux" {
		lines = append(lines, "server, 3 patients per viewer on arrival: p99 ")
	}
	for _, line := range lines {
		if !strings.Contains(out.String(), line) {
			t.Errorf("the report lacks %q", line)
		}
	}
}

// TestCompareRoundsPairsEachRoundWithItsRelay: a server phase is held to
// the relay of its own round, never another's, and the summary counts
// rounds, not phases.
func TestCompareRoundsPairsEachRoundWithItsRelay(t *testing.T) {
	ms := func(v float64) time.Duration { return time.Duration(v * 1e6) }
	phase := func(name string, round int, cpuSec, p99 float64, holes int64) result {
		return result{name: name, round: round, sent: 1e6, delivered: 1e6, holes: holes,
			serverCPU: time.Duration(cpuSec * 1e9), lat: latencies{p99: ms(p99)}}
	}
	const one, many = "server, 1 patient per viewer", "server, 10 patients per viewer"
	res := []result{
		phase(relayPhaseName, 1, 40, 4, 0), phase(one, 1, 60, 12, 0), phase(many, 1, 30, 8, 0),
		phase(relayPhaseName, 2, 50, 6, 0), phase(one, 2, 50, 9, 3), phase(many, 2, 25, 30, 0),
		// A round whose relay delivered nothing has no floor.
		{name: relayPhaseName, round: 3}, phase(one, 3, 1, 1, 0),
	}
	// Scheduler waits read from both targets in round 1, from the server
	// alone in round 2: only round 1 compares them.
	res[0].waits, res[0].waitsKnown = schedWaits{n: 100, within1ms: 99, within5ms: 100}, true
	res[1].waits, res[1].waitsKnown = schedWaits{n: 200, within1ms: 180, within5ms: 196}, true
	res[4].waits, res[4].waitsKnown = schedWaits{n: 10, within1ms: 10, within5ms: 10}, true
	// Arrival latencies known for both in round 1, for the server alone in
	// round 2: only round 1 counts on arrival.
	res[0].wire, res[1].wire, res[4].wire = latencies{n: 1, p99: ms(3)}, latencies{n: 1, p99: ms(9)}, latencies{n: 1, p99: ms(2)}
	got := compareRounds(res)
	if len(got) != 2 || got[0].name != one || got[1].name != many {
		t.Fatalf("compareRounds grouped %+v, want %q then %q", got, one, many)
	}
	if r := got[0].rounds; len(r) != 2 || r[0].round != 1 || r[0].cpuRatio != 1.5 || r[1].round != 2 || r[1].cpuRatio != 1.0 ||
		r[0].floorP99 != ms(4) || r[1].floorP99 != ms(6) {
		t.Errorf("%s: %+v, want round 1 at 1.5× over a 4 ms floor and round 2 at 1.0× over 6 ms", one, r)
	}
	if r := got[0].rounds; !r[0].waitsKnown || r[0].waits.over5ms() != 2 || r[0].floorWaits.n != 100 || r[1].waitsKnown {
		t.Errorf("%s: scheduler waits %+v; want round 1's 2 %% over 5 ms against the relay's, and round 2's unknown (no relay figure)", one, r)
	}
	if r := got[0].rounds; !r[0].wireKnown || r[0].wireP99 != ms(9) || r[0].floorWireP99 != ms(3) || r[1].wireKnown {
		t.Errorf("%s: on arrival %+v; want round 1's 9 ms against 3 ms, round 2's unknown", one, r)
	}
	if got[0].wireRounds != 1 || got[0].wireUnderTarget != 1 || got[1].wireRounds != 0 {
		t.Errorf("on arrival: %d rounds (%d under target), then %d; want 1 (1), then 0", got[0].wireRounds, got[0].wireUnderTarget, got[1].wireRounds)
	}
	if got[0].underTarget != 1 || got[0].whole != 1 {
		t.Errorf("%s: p99 under target in %d rounds, whole in %d; want 1 and 1", one, got[0].underTarget, got[0].whole)
	}
	if r := got[1].rounds; len(r) != 2 || r[0].cpuRatio != 0.75 || r[1].cpuRatio != 0.5 {
		t.Errorf("%s: %+v, want 0.75× and 0.5×", many, r)
	}
	if got[1].underTarget != 1 || got[1].whole != 2 {
		t.Errorf("%s: p99 under target in %d rounds, whole in %d; want 1 and 2", many, got[1].underTarget, got[1].whole)
	}
	if s := medianRange([]float64{3, 1, 2, 10}, " ms"); s != "2.50 ms (from 1.00 to 10.00)" {
		t.Errorf("medianRange = %q", s)
	}
}

// TestParseWaits reads the scheduler latency's buckets, and the stops of
// the world's when the page has them, out of a whole /metrics page, and
// refuses a page without the scheduler latency.
func TestParseWaits(t *testing.T) {
	page := func(stops bool) string {
		reg := metrics.NewRegistry()
		reg.GaugeFunc("bedside_goroutines", "Goroutines.", func() int64 { return 7 })
		reg.HistogramCollector(metrics.SchedulerLatencyName, "Waits.", func() metrics.Histogram {
			return metrics.Histogram{Bounds: []float64{0.0005, 0.001, 0.005, 0.01}, Counts: []uint64{50, 80, 95, 99}, Count: 100}
		})
		if stops {
			reg.HistogramCollector(metrics.StoppedWorldName, "Stops.", func() metrics.Histogram {
				return metrics.Histogram{Bounds: []float64{0.0005, 0.001, 0.005, 0.01}, Counts: []uint64{30, 35, 39, 40}, Count: 40}
			})
		}
		var b strings.Builder
		if err := reg.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	f, err := parseWaits(strings.NewReader(page(true)))
	if err != nil {
		t.Fatal(err)
	}
	w := f.waits
	if w != (schedWaits{n: 100, within1ms: 80, within5ms: 95}) {
		t.Errorf("read waits %+v from\n%s", w, page(true))
	}
	if !f.stopsKnown || f.stops != (schedWaits{n: 40, within1ms: 35, within5ms: 39}) {
		t.Errorf("read stops %+v (known %v) from\n%s", f.stops, f.stopsKnown, page(true))
	}
	if f.stops.longer1ms() != 5 || f.stops.longer5ms() != 1 {
		t.Errorf("stops longer than 1 ms %d, than 5 ms %d; want 5 and 1", f.stops.longer1ms(), f.stops.longer5ms())
	}
	if w.over1ms() != 20 || w.over5ms() != 5 {
		t.Errorf("over 1 ms %v %%, over 5 ms %v %%; want 20 and 5", w.over1ms(), w.over5ms())
	}
	later := schedWaits{n: 150, within1ms: 110, within5ms: 140}
	if d, err := later.since(w); err != nil || d != (schedWaits{n: 50, within1ms: 30, within5ms: 45}) {
		t.Errorf("difference %+v, %v", d, err)
	}
	if _, err := w.since(later); err == nil {
		t.Error("counts that went down (another process) gave a difference")
	}
	laterF := runtimeFigures{waits: later, stops: schedWaits{n: 45, within1ms: 38, within5ms: 42}, stopsKnown: true}
	if d, err := laterF.since(f); err != nil || d.stops != (schedWaits{n: 5, within1ms: 3, within5ms: 3}) || !d.stopsKnown {
		t.Errorf("difference of stops %+v, %v", d, err)
	}
	// A server without the stops: the waits still read, the stops unknown.
	old, err := parseWaits(strings.NewReader(page(false)))
	if err != nil || old.waits != w || old.stopsKnown {
		t.Errorf("a page without stops: %+v, %v; want the waits and no stops", old, err)
	}
	if d, err := laterF.since(old); err != nil || d.stopsKnown {
		t.Errorf("stops known at one end only: %+v, %v; want them unknown", d, err)
	}
	if _, err := parseWaits(strings.NewReader("bedside_goroutines 7\n")); err == nil {
		t.Error("a page without the scheduler latency was read")
	}
}

// TestScrapeWaitsSendsTheMetricsToken: a server with a metrics token
// answers the tool that has it (from BEDSIDE_METRICS_TOKEN), and the tool
// without it gets a clear refusal.
func TestScrapeWaitsSendsTheMetricsToken(t *testing.T) {
	reg := metrics.NewRegistry()
	metrics.RegisterSchedulerLatency(reg)
	srv := httptest.NewServer(web.NewServer(web.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: reg,
		MetricsToken: "scrape-me", Secret: []byte("a test key of thirty-two bytes, or more")}))
	defer srv.Close()
	t.Setenv("BEDSIDE_METRICS_TOKEN", "")
	if _, err := scrapeWaits(t.Context(), srv.URL+"/metrics"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("without the token: %v, want a 401", err)
	}
	t.Setenv("BEDSIDE_METRICS_TOKEN", "scrape-me")
	f, err := scrapeWaits(t.Context(), srv.URL+"/metrics")
	if err != nil || f.waits.n == 0 {
		t.Errorf("with the token: %+v, %v; want the waits", f, err)
	}
}
