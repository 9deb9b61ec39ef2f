package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
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
	token    string
	url      string
	rate     time.Duration
	scenario string
	duration time.Duration
	ecg      bool
	seed     uint64
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("devicesim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: devicesim --token TOKEN [flags]\n\nStreams a simulated patient's vitals to Bedside's device endpoint.\n\nFlags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.token, "token", "", "the device `token` printed by: bedside device add (default $DEVICESIM_TOKEN)")
	fs.StringVar(&o.url, "url", "ws://localhost:8080/ws/device", "the server's device endpoint")
	fs.DurationVar(&o.rate, "rate", time.Second, "time between rounds of numeric measurements")
	fs.StringVar(&o.scenario, "scenario", "normal", "the simulated patient: "+scenarioNames())
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (0: until interrupted)")
	fs.BoolVar(&o.ecg, "ecg", true, "also stream a 250 Hz ECG in 10 chunks a second")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed (0: from the clock)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.token == "" {
		o.token = getenv("DEVICESIM_TOKEN")
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.token == "":
		return o, errors.New("--token is required (print one with: bedside device add --patient EMAIL --name NAME)")
	case o.rate <= 0:
		return o, errors.New("--rate must be positive")
	case o.duration < 0:
		return o, errors.New("--duration must not be negative")
	}
	if _, ok := scenarios[o.scenario]; !ok {
		return o, fmt.Errorf("unknown --scenario %q; choose one of %s", o.scenario, scenarioNames())
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
	c := newClient(o, stderr)
	err = c.loop(ctx)
	fmt.Fprintf(stdout, "devicesim: %d messages measured, %d acknowledged (%d of them rejected), %d unacknowledged\n",
		c.box.generated, c.box.acked, c.rejected, len(c.box.pending))
	return err
}
