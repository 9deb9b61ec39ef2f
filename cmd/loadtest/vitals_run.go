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
	p := phase{name: name, pid: c.pid, duration: c.duration, settle: c.settle, acked: true, log: log}
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

// relayPhase builds the phase against the relay at base (ws://host:port).
func relayPhase(c vitalsConfig, log io.Writer) phase {
	p := phase{name: "bare relay", pid: c.relayPID, duration: c.duration, settle: c.settle, log: log}
	for i := range c.patients {
		p.devices = append(p.devices, deviceTarget{url: fmt.Sprintf("%s/device/%d", c.relayURL, i)})
		p.viewers = append(p.viewers, viewerSpec{url: fmt.Sprintf("%s/view/%d", c.relayURL, i), keys: []int64{int64(i)}, relay: true})
	}
	return p
}

// measure runs the relay phase (if any) and a server phase per watch value.
func measure(ctx context.Context, c vitalsConfig, log io.Writer) ([]result, error) {
	var out []result
	if c.relayURL != "" {
		r, err := relayPhase(c, log).run(ctx)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	for i, w := range c.watch {
		p, err := serverPhase(c, w, log)
		if err != nil {
			return out, err
		}
		p.noRSS = i > 0
		r, err := p.run(ctx)
		if err != nil {
			return out, err
		}
		out = append(out, r)
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
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := vitalsConfig{serverURL: *serverURL, pid: *pid, duration: *dur, settle: *settle}
	if *pid <= 0 {
		return fmt.Errorf("vitals run: --pid (the server's process id) is required")
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

// report prints each phase and its ratios to the relay's.
func report(w io.Writer, c vitalsConfig, res []result) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "vitals: %d patients, 15 messages/s each (5 numerics, 10 ECG chunks), %s per phase; %s, %d CPUs, %s %s/%s\n",
		c.patients, c.duration, host, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tconns\tsent\tdelivered/s\tundelivered\tdups\tholes\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\tserver core-s/M\tloadtest core-s/M\tKB/idle conn\tmsgs/frame\t")
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) }
	perM := func(cpu time.Duration, n int64) float64 {
		if n == 0 {
			return 0
		}
		return cpu.Seconds() / float64(n) * 1e6
	}
	for _, r := range res {
		mpf := 0.0
		if r.frames > 0 {
			mpf = float64(r.delivered) / float64(r.frames)
		}
		kb := "-"
		if r.rssKnown {
			kb = strconv.FormatFloat(r.perConn/1024, 'f', 1, 64)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%.1f\t%.1f\t%s\t%.2f\t\n",
			r.name, r.conns, r.sent, r.rate, r.lost, r.dups, r.holes, ms(r.lat.p50), ms(r.lat.p99), ms(r.lat.p999), ms(r.lat.mx),
			perM(r.serverCPU, r.delivered), perM(r.selfCPU, r.delivered), kb, mpf)
	}
	tw.Flush()
	for _, r := range res {
		if r.firstErr != "" || r.deviceErrs > 0 || r.epochs > 0 || r.gapMsgs > 0 {
			fmt.Fprintf(w, "%s: %d device errors, %d new epochs, %d gap markers; first problem: %s\n", r.name, r.deviceErrs, r.epochs, r.gapMsgs, r.firstErr)
		}
	}
	if len(res) < 2 || res[0].name != "bare relay" || res[0].delivered == 0 {
		return
	}
	floor := res[0]
	for _, r := range res[1:] {
		if r.delivered == 0 {
			continue
		}
		cpu := perM(r.serverCPU, r.delivered) / perM(floor.serverCPU, floor.delivered)
		mem := "-"
		if r.rssKnown && floor.rssKnown {
			mem = strconv.FormatFloat(r.perConn/floor.perConn, 'f', 2, 64) + "×"
		}
		fmt.Fprintf(w, "%s / relay: CPU per delivery %.2f× (target ≤ 1.5), p99 %.2f×, bytes per idle conn %s\n",
			r.name, cpu, float64(r.lat.p99)/float64(floor.lat.p99), mem)
	}
}
