package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  loadtest vitals provision --data DIR --patients N [--per-physician K] [--out FILE]
  loadtest vitals run --url URL --creds FILE --pid PID [--patients N] [--duration D] [--watch 1,10]
  loadtest relay [--addr 127.0.0.1:0]
  loadtest media provision --data DIR --consults N [--out FILE]
  loadtest media run --url URL --creds FILE --pid PID [--consults N] [--duration D] [--warmup D] [--forwarder=true]
  loadtest forwarder [--addr 127.0.0.1:0]`

// run dispatches to a mode.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "vitals":
		if len(args) > 1 {
			switch args[1] {
			case "provision":
				return runProvision(ctx, args[2:], getenv, stdout, stderr)
			case "run":
				return runVitals(ctx, args[2:], stdout, stderr)
			}
		}
	case "relay":
		return runRelay(ctx, args[1:], stdout, stderr)
	case "media":
		if len(args) > 1 {
			switch args[1] {
			case "provision":
				return runMediaProvision(ctx, args[2:], getenv, stdout, stderr)
			case "run":
				return runMedia(ctx, args[2:], stdout, stderr)
			}
		}
	case "forwarder":
		return runForwarder(ctx, args[1:], stdout, stderr)
	}
	return errors.New(usage)
}
