package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "devicesim:", err)
		os.Exit(1)
	}
}

// options are the command line settings.
type options struct {
	token      string
	tokensFile string
	tokens     []string // one simulated patient each
	url        string
	rate       time.Duration
	scenario   string
	sc         scenario
	ramp       time.Duration
	duration   time.Duration
	ecg        bool
	ecgFormat  string
	seed       uint64
	// A flaky link drops about every flakyEvery after connecting and comes
	// back after about flakyOutage.
	flakyEvery, flakyOutage time.Duration
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("devicesim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: devicesim --token TOKEN [flags]\n\nStreams a simulated patient's vitals to Bedside's device endpoint.\n\nFlags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.token, "token", "", "the device `token` printed by: bedside device add (default $DEVICESIM_TOKEN); several, comma-separated, stream one patient each")
	fs.StringVar(&o.tokensFile, "tokens-file", "", "a `file` of device tokens, one per line (# comments), one patient each, as well as --token")
	fs.StringVar(&o.url, "url", "ws://localhost:8080/ws/device", "the server's device endpoint")
	fs.DurationVar(&o.rate, "rate", time.Second, "time between rounds of numeric measurements")
	fs.StringVar(&o.scenario, "scenario", "normal", "the simulated patient: "+scenarioNames()+"; a patient may be combined with behaviours, e.g. deteriorating+flaky")
	fs.DurationVar(&o.ramp, "ramp", 10*time.Minute, "how long a deteriorating patient takes to go from well to NEWS2 high")
	fs.DurationVar(&o.flakyEvery, "flaky-every", 30*time.Second, "a flaky link drops about this long after each connection")
	fs.DurationVar(&o.flakyOutage, "flaky-outage", 8*time.Second, "and stays down about this long")
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (0: until interrupted)")
	fs.BoolVar(&o.ecg, "ecg", true, "also stream a 250 Hz ECG in 10 chunks a second")
	fs.StringVar(&o.ecgFormat, "ecg-format", "json", "how the ECG chunks are sent: json (FHIR SampledData) or binary (waveform frames)")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed (0: from the clock)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.token == "" && o.tokensFile == "" {
		o.token = getenv("DEVICESIM_TOKEN")
	}
	for t := range strings.SplitSeq(o.token, ",") {
		if t = strings.TrimSpace(t); t != "" {
			o.tokens = append(o.tokens, t)
		}
	}
	if o.tokensFile != "" {
		toks, err := readTokens(o.tokensFile)
		if err != nil {
			return o, err
		}
		o.tokens = append(o.tokens, toks...)
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case len(o.tokens) == 0:
		return o, errors.New("--token is required (print one with: bedside device add --patient EMAIL --name NAME)")
	case o.rate <= 0:
		return o, errors.New("--rate must be positive")
	case o.duration < 0:
		return o, errors.New("--duration must not be negative")
	case o.ramp <= 0:
		return o, errors.New("--ramp must be positive")
	case o.flakyEvery <= 0 || o.flakyOutage <= 0:
		return o, errors.New("--flaky-every and --flaky-outage must be positive")
	case o.ecgFormat != "json" && o.ecgFormat != "binary":
		return o, fmt.Errorf("unknown --ecg-format %q; choose json or binary", o.ecgFormat)
	}
	var err error
	if o.sc, err = parseScenario(o.scenario); err != nil {
		return o, fmt.Errorf("--scenario: %w", err)
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	return o, nil
}

// run streams until ctx ends, --duration passes, or the server refuses the
// token. Progress goes to stderr, a final summary to stdout.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	if len(o.tokens) == 1 {
		c := newClient(o, o.tokens[0], "devicesim", o.seed, stderr)
		err = c.loop(ctx)
		fmt.Fprintln(stdout, c.summary())
		return err
	}
	// Several patients: one client each, sharing nothing but the log.
	log := &lockedWriter{w: stderr}
	clients := make([]*client, len(o.tokens))
	errs := make([]error, len(o.tokens))
	var wg sync.WaitGroup
	for i, tok := range o.tokens {
		clients[i] = newClient(o, tok, fmt.Sprintf("devicesim[%d]", i+1), o.seed+uint64(i)*0x9e3779b9, log)
		wg.Go(func() { errs[i] = clients[i].loop(ctx) })
	}
	wg.Wait()
	var measured, acked, rejected, unacked int
	for _, c := range clients {
		fmt.Fprintln(stdout, c.summary())
		measured += c.box.generated
		acked += c.box.acked
		rejected += c.rejected
		unacked += len(c.box.pending)
	}
	fmt.Fprintf(stdout, "devicesim: %d patients: %d messages measured, %d acknowledged (%d of them rejected), %d unacknowledged\n",
		len(clients), measured, acked, rejected, unacked)
	for i, err := range errs {
		if err != nil {
			errs[i] = fmt.Errorf("patient %d: %w", i+1, err)
		}
	}
	return errors.Join(errs...)
}

// readTokens reads device tokens, one per line; blank lines and lines
// starting with # are skipped.
func readTokens(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--tokens-file: %w", err)
	}
	var toks []string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, fmt.Errorf("--tokens-file %s: %q is not a token (one token per line)", path, truncateToken(line))
		}
		toks = append(toks, line)
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("--tokens-file %s holds no token", path)
	}
	return toks, nil
}

// truncateToken shows the start of a line without printing a whole secret.
func truncateToken(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

// lockedWriter lets several clients write whole lines to one log.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
