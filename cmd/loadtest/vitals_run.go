package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// vitalsConfig is what a vitals run measures.
type vitalsConfig struct {
	serverURL string // http(s)://host:port of the server
	pid       int
	creds     creds
	patients  int
	duration  time.Duration
	settle    time.Duration // idle time before memory is read
	watch     []int
	relayURL  string // ws://host:port of a relay; "" skips it
	relayPID  int
	rounds    int // times the relay and server phases run, alternating (0: once)
	byTenth   bool
}

// serverPhase builds the phase against the server, each viewer watching
// watch patients (1: the single-visit socket).
func serverPhase(c vitalsConfig, watch int, log io.Writer) (phase, error) {
	u, err := url.Parse(c.serverURL)
	if err != nil {
		return phase{}, fmt.Errorf("--url: %w", err)
	}
	ws := "ws://" + u.Host
	if u.Scheme == "https" {
		ws = "wss://" + u.Host
	}
	name := "server, 1 patient per viewer"
	if watch > 1 {
		name = fmt.Sprintf("server, %d patients per viewer", watch)
	}
	p := phase{name: name, pid: c.pid, duration: c.duration, settle: c.settle, acked: true, log: log,
		metricsURL: strings.TrimSuffix(c.serverURL, "/") + "/metrics"}
	pats := c.creds.Patients[:c.patients]
	for _, pt := range pats {
		p.devices = append(p.devices, deviceTarget{url: ws + "/ws/device", header: http.Header{"Authorization": {"Bearer " + pt.DeviceToken}}})
	}
	cookie := func(i int) http.Header {
		return http.Header{"Cookie": {"bedside_session=" + c.creds.Sessions[i]}}
	}
	if watch == 1 {
		for _, pt := range pats {
			p.viewers = append(p.viewers, viewerSpec{url: fmt.Sprintf("%s/ws/vitals/%d", ws, pt.Visit), header: cookie(pt.Physician), keys: []int64{pt.Patient}})
		}
		return p, nil
	}
	// Each viewer watches up to watch visits of one physician.
	var cur *viewerSpec
	phys := -1
	for _, pt := range pats {
		if cur == nil || pt.Physician != phys || len(cur.keys) == watch {
			if cur != nil {
				p.viewers = append(p.viewers, *cur)
			}
			phys = pt.Physician
			cur = &viewerSpec{url: ws + "/ws/vitals", header: cookie(phys)}
		}
		cur.keys = append(cur.keys, pt.Patient)
		cur.subscribe = append(cur.subscribe, pt.Visit)
	}
	p.viewers = append(p.viewers, *cur)
	for _, v := range p.viewers {
		if len(v.keys) != watch {
			return p, fmt.Errorf("--watch %d: a physician holds %d of the first %d patients; provision with --per-physician %d", watch, len(v.keys), c.patients, watch)
		}
	}
	return p, nil
}

// relayPhaseName names the relay's phase in the results.
const relayPhaseName = "bare relay"

// relayPhase builds the phase against the relay at base (ws://host:port).
func relayPhase(c vitalsConfig, log io.Writer) phase {
	p := phase{name: relayPhaseName, pid: c.relayPID, duration: c.duration, settle: c.settle, log: log,
		metricsURL: "http" + strings.TrimPrefix(c.relayURL, "ws") + "/metrics"}
	for i := range c.patients {
		p.devices = append(p.devices, deviceTarget{url: fmt.Sprintf("%s/device/%d", c.relayURL, i)})
		p.viewers = append(p.viewers, viewerSpec{url: fmt.Sprintf("%s/view/%d", c.relayURL, i), keys: []int64{int64(i)}, relay: true})
	}
	return p
}

// measure runs, c.rounds times, the relay phase (if any) and a server
// phase per watch value: on a shared machine, rounds show how much of a
// difference is the machine's.
func measure(ctx context.Context, c vitalsConfig, log io.Writer) ([]result, error) {
	var out []result
	for round := 1; round <= max(c.rounds, 1); round++ {
		if c.relayURL != "" {
			p := relayPhase(c, log)
			p.noRSS = round > 1
			r, err := p.run(ctx)
			if err != nil {
				return out, err
			}
			r.round = round
			out = append(out, r)
		}
		for i, w := range c.watch {
			p, err := serverPhase(c, w, log)
			if err != nil {
				return out, err
			}
			p.noRSS = round > 1 || i > 0
			r, err := p.run(ctx)
			if err != nil {
				return out, err
			}
			r.round = round
			out = append(out, r)
		}
	}
	return out, nil
}

// startRelay runs this program's relay mode as a child process, so that
// its CPU and memory are its own.
func startRelay(ctx context.Context) (wsURL string, cmd *exec.Cmd, err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd = exec.CommandContext(ctx, exe, "relay", "--addr", "127.0.0.1:0")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start relay: %w", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "relay listening on ")
	if err != nil || !ok {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return "", nil, fmt.Errorf("start relay: it said %q (%v)", line, err)
	}
	return "ws://" + addr, cmd, nil
}

func runVitals(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vitals run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	serverURL := fs.String("url", "http://127.0.0.1:8080", "the server's base URL")
	credsPath := fs.String("creds", "", "tokens written by loadtest vitals provision")
	pid := fs.Int("pid", 0, "the server's process id, for its CPU and memory (required)")
	n := fs.Int("patients", 0, "patients to stream (default: all provisioned)")
	dur := fs.Duration("duration", 30*time.Second, "how long the devices stream in each phase")
	watch := fs.String("watch", "1", "comma-separated patients per viewer, a server phase each: 1 uses /ws/vitals/{id}, more the multi-visit /ws/vitals")
	withRelay := fs.Bool("relay", true, "measure the bare relay first, as the floor")
	settle := fs.Duration("settle", 3*time.Second, "how long the connections stay idle before memory is read (longer to profile the idle server)")
	rounds := fs.Int("rounds", 1, "how many times to measure the relay and the server, alternating")
	byTenth := fs.Bool("by-tenth", false, "also show, for each phase, the % of deliveries over 5 ms late by the 5 ms step of the clock's tenth of a second they were sent in (the server's commit slots start on the tenths)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := vitalsConfig{serverURL: *serverURL, pid: *pid, duration: *dur, settle: *settle, rounds: *rounds, byTenth: *byTenth}
	if *pid <= 0 {
		return fmt.Errorf("vitals run: --pid (the server's process id) is required")
	}
	if *rounds < 1 {
		return fmt.Errorf("vitals run: --rounds %d: want 1 or more", *rounds)
	}
	var err error
	if c.creds, err = readCreds(*credsPath); err != nil {
		return fmt.Errorf("vitals run: %w", err)
	}
	c.patients = *n
	if c.patients <= 0 || c.patients > len(c.creds.Patients) {
		c.patients = len(c.creds.Patients)
	}
	for _, s := range strings.Split(*watch, ",") {
		w, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || w < 1 {
			return fmt.Errorf("vitals run: --watch %q: want numbers from 1", *watch)
		}
		c.watch = append(c.watch, w)
	}
	if *withRelay {
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		u, cmd, err := startRelay(rctx)
		if err != nil {
			return fmt.Errorf("vitals run: %w", err)
		}
		defer func() { cancel(); _ = cmd.Wait() }()
		c.relayURL, c.relayPID = u, cmd.Process.Pid
	}
	res, err := measure(ctx, c, stderr)
	report(stdout, c, res)
	return err
}

// report prints each phase, its ratios to the relay's of the same round,
// and, over several rounds, their medians.
func report(w io.Writer, c vitalsConfig, res []result) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "vitals: %d patients, 15 messages/s each (5 numerics, 10 ECG chunks), %s per phase; %s, %d CPUs, %s %s/%s\n",
		c.patients, c.duration, host, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tround\tconns\tsent\tdelivered/s\tundelivered\tdups\tholes\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\tarrival p50 ms\tarrival p99 ms\tarrival p99.9 ms\tsend late p99 ms\tserver core-s/M\tloadtest core-s/M\tKB/idle conn\tmsgs/frame\twaits >1 ms %\twaits >5 ms %\tloadtest waits >5 ms %\tstops >1 ms\tstops >5 ms\t")
	for _, r := range res {
		mpf := 0.0
		if r.frames > 0 {
			mpf = float64(r.delivered) / float64(r.frames)
		}
		kb := "-"
		if r.rssKnown {
			kb = strconv.FormatFloat(r.perConn/1024, 'f', 1, 64)
		}
		over1, over5, own5 := "-", "-", "-"
		if r.waitsKnown {
			over1, over5 = strconv.FormatFloat(r.waits.over1ms(), 'f', 2, 64), strconv.FormatFloat(r.waits.over5ms(), 'f', 2, 64)
		}
		if r.ownWaitsKnown {
			own5 = strconv.FormatFloat(r.ownWaits.over5ms(), 'f', 2, 64)
		}
		stops1, stops5 := "-", "-"
		if r.stopsKnown {
			stops1, stops5 = strconv.FormatUint(r.stops.longer1ms(), 10), strconv.FormatUint(r.stops.longer5ms(), 10)
		}
		a50, a99, a999 := "-", "-", "-"
		if r.wire.n > 0 {
			a50, a99, a999 = msString(r.wire.p50), msString(r.wire.p99), msString(r.wire.p999)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%.1f\t%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t\n",
			r.name, r.round, r.conns, r.sent, r.rate, r.lost, r.dups, r.holes, msString(r.lat.p50), msString(r.lat.p99), msString(r.lat.p999), msString(r.lat.mx),
			a50, a99, a999, msString(r.late.p99), r.serverPerM(), perMillion(r.selfCPU, r.delivered), kb, mpf, over1, over5, own5, stops1, stops5)
	}
	tw.Flush()
	if c.byTenth {
		fmt.Fprintln(w, "over 5 ms late, % by 5 ms step of the clock's tenth of a second they were sent in (0-5 ms first):")
		for _, r := range res {
			fmt.Fprintf(w, "  %s, round %d: %s\n", r.name, r.round, &r.tenth)
		}
	}
	for _, r := range res {
		if r.firstErr != "" || r.deviceErrs > 0 || r.epochs > 0 || r.gapMsgs > 0 {
			fmt.Fprintf(w, "%s, round %d: %d device errors, %d new epochs, %d gap markers; first problem: %s\n", r.name, r.round, r.deviceErrs, r.epochs, r.gapMsgs, r.firstErr)
		}
	}
	for _, s := range compareRounds(res) {
		for _, cr := range s.rounds {
			mem := "-"
			if cr.memRatio > 0 {
				mem = strconv.FormatFloat(cr.memRatio, 'f', 2, 64) + "×"
			}
			waits := ""
			if cr.waitsKnown {
				waits = fmt.Sprintf(", scheduler waits over 5 ms %.2f%% against %.2f%%", cr.waits.over5ms(), cr.floorWaits.over5ms())
			}
			if cr.stopsKnown {
				waits += fmt.Sprintf(", stops of the world over 5 ms %d against %d", cr.stops.longer5ms(), cr.floorStops.longer5ms())
			}
			arrival := ""
			if cr.wireKnown {
				arrival = fmt.Sprintf(" (on arrival %s ms against %s ms)", msString(cr.wireP99), msString(cr.floorWireP99))
			}
			fmt.Fprintf(w, "round %d: %s / relay: CPU per delivery %.2f× (target ≤ 1.5), p99 %s ms against %s ms (%.2f×; target < %d ms)%s, bytes per idle conn %s%s\n",
				cr.round, s.name, cr.cpuRatio, msString(cr.p99), msString(cr.floorP99), float64(cr.p99)/float64(cr.floorP99), p99Target.Milliseconds(), arrival, mem, waits)
		}
		if len(s.rounds) < 2 {
			continue
		}
		var cpu, p99, floor []float64
		for _, cr := range s.rounds {
			cpu = append(cpu, cr.cpuRatio)
			p99 = append(p99, float64(cr.p99)/1e6)
			floor = append(floor, float64(cr.floorP99)/1e6)
		}
		fmt.Fprintf(w, "%s over %d rounds: median CPU per delivery / relay %s; p99 %s, the relay's %s; p99 under %d ms in %d of %d rounds; every message delivered exactly once in %d of %d\n",
			s.name, len(s.rounds), medianRange(cpu, "×"), medianRange(p99, " ms"), medianRange(floor, " ms"), p99Target.Milliseconds(), s.underTarget, len(s.rounds), s.whole, len(s.rounds))
		if s.wireRounds > 0 {
			var wire, wireFloor []float64
			for _, cr := range s.rounds {
				if cr.wireKnown {
					wire = append(wire, float64(cr.wireP99)/1e6)
					wireFloor = append(wireFloor, float64(cr.floorWireP99)/1e6)
				}
			}
			fmt.Fprintf(w, "%s on arrival: p99 %s, the relay's %s; under %d ms in %d of %d rounds\n",
				s.name, medianRange(wire, " ms"), medianRange(wireFloor, " ms"), p99Target.Milliseconds(), s.wireUnderTarget, s.wireRounds)
		}
	}
}

// p99Target is the latency the server's p99 is to stay under.
const p99Target = 10 * time.Millisecond

func msString(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) }

// perMillion is cpu per million of n, in seconds; 0 if n is.
func perMillion(cpu time.Duration, n int64) float64 {
	if n == 0 {
		return 0
	}
	return cpu.Seconds() / float64(n) * 1e6
}

// serverPerM is the target's CPU seconds per million deliveries.
func (r *result) serverPerM() float64 { return perMillion(r.serverCPU, r.delivered) }

// serverRounds is one server phase (by name) beside the relay, round by
// round.
type serverRounds struct {
	name        string
	rounds      []roundRatio
	underTarget int // rounds whose p99 was under p99Target
	// wireRounds: rounds whose arrival latencies are known, of the server
	// and its relay; wireUnderTarget: those whose arrival p99 was under
	// p99Target.
	wireRounds, wireUnderTarget int
	whole                       int // rounds that delivered every message sent, exactly once
}

// roundRatio is one round of a server phase against that round's relay.
type roundRatio struct {
	round         int
	cpuRatio      float64 // server CPU per delivery / the relay's
	memRatio      float64 // bytes per idle connection / the relay's; 0 unknown
	p99, floorP99 time.Duration
	// waits, floorWaits: each process's scheduler waits while it streamed,
	// if both were read.
	waits, floorWaits schedWaits
	waitsKnown        bool
	// stops, floorStops: each process's stops of the world while it
	// streamed, if both were read.
	stops, floorStops schedWaits
	stopsKnown        bool
	// wireP99, floorWireP99: each p99 on arrival at the tool's machine,
	// if both are known.
	wireP99, floorWireP99 time.Duration
	wireKnown             bool
}

// compareRounds pairs each server phase with the relay phase of its round,
// grouped by phase name in the order they first ran. A round whose relay
// phase delivered nothing has no floor and is left out.
func compareRounds(res []result) []serverRounds {
	floors := map[int]*result{}
	for i := range res {
		if res[i].name == relayPhaseName && res[i].delivered > 0 && res[i].serverPerM() > 0 {
			floors[res[i].round] = &res[i]
		}
	}
	var out []serverRounds
	idx := map[string]int{}
	for i := range res {
		r := &res[i]
		f := floors[r.round]
		if r.name == relayPhaseName || f == nil || r.delivered == 0 {
			continue
		}
		k, ok := idx[r.name]
		if !ok {
			k = len(out)
			idx[r.name] = k
			out = append(out, serverRounds{name: r.name})
		}
		cr := roundRatio{round: r.round, cpuRatio: r.serverPerM() / f.serverPerM(), p99: r.lat.p99, floorP99: f.lat.p99,
			waits: r.waits, floorWaits: f.waits, waitsKnown: r.waitsKnown && f.waitsKnown,
			stops: r.stops, floorStops: f.stops, stopsKnown: r.stopsKnown && f.stopsKnown,
			wireP99: r.wire.p99, floorWireP99: f.wire.p99, wireKnown: r.wire.n > 0 && f.wire.n > 0}
		if r.rssKnown && f.rssKnown && f.perConn > 0 {
			cr.memRatio = r.perConn / f.perConn
		}
		s := &out[k]
		s.rounds = append(s.rounds, cr)
		if r.lat.p99 < p99Target {
			s.underTarget++
		}
		if cr.wireKnown {
			s.wireRounds++
			if cr.wireP99 < p99Target {
				s.wireUnderTarget++
			}
		}
		if r.lost == 0 && r.dups == 0 && r.holes == 0 {
			s.whole++
		}
	}
	return out
}
