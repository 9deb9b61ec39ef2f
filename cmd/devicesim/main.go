// Command devicesim is a simulated home vitals hub: it streams a patient's
// measurements as FHIR Observations to Bedside's /ws/device endpoint, keeps
// what the server has not acknowledged and resends it after reconnecting.
//
//	go run ./cmd/devicesim --token <device token> [--url ws://localhost:8080/ws/device] [--rate 1s]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
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

type options struct {
	token    string
	url      string
	rate     time.Duration
	scenario string
	duration time.Duration
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("devicesim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.token, "token", getenv("DEVICESIM_TOKEN"), "device token from `bedside device add` (DEVICESIM_TOKEN)")
	fs.StringVar(&o.url, "url", "ws://localhost:8080/ws/device", "the server's device endpoint")
	fs.DurationVar(&o.rate, "rate", time.Second, "time between rounds of numeric measurements")
	fs.StringVar(&o.scenario, "scenario", "normal", "what the patient does: normal")
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (0: until interrupted)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.token == "":
		return o, errors.New("--token is required (print one with: bedside device add --patient EMAIL --name NAME)")
	case o.rate <= 0:
		return o, errors.New("--rate must be positive")
	case o.scenario != "normal":
		return o, fmt.Errorf("scenario %q is not available yet; use normal", o.scenario)
	}
	return o, nil
}

// outbox holds sent envelopes until the server acknowledges them.
type outbox struct {
	next    int64
	pending []envelope
}

type envelope struct {
	Seq         int64           `json:"seq"`
	Observation json.RawMessage `json:"observation"`
}

func (o *outbox) add(obs string) envelope {
	o.next++
	e := envelope{Seq: o.next, Observation: json.RawMessage(obs)}
	o.pending = append(o.pending, e)
	return e
}

func (o *outbox) ack(n int64) {
	i := 0
	for i < len(o.pending) && o.pending[i].Seq <= n {
		i++
	}
	o.pending = o.pending[i:]
}

const maxPending = 10000

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parse(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	box := &outbox{}
	p := newPatient(uint64(time.Now().UnixNano()), time.Now())
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		err := session(ctx, o, box, p, stderr)
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(stderr, "devicesim: disconnected (%v); %d unacknowledged; retrying in %s\n", err, len(box.pending), backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
		if err == nil {
			backoff = 500 * time.Millisecond
		}
	}
	fmt.Fprintf(stdout, "devicesim: stopped after %d messages, %d unacknowledged\n", box.next, len(box.pending))
	return nil
}

// session streams over one connection until it fails or ctx ends. It first
// resends everything not yet acknowledged, in order.
func session(ctx context.Context, o options, box *outbox, p *patient, stderr io.Writer) error {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.DialContext(ctx, o.url, http.Header{"Authorization": {"Bearer " + o.token}})
	if err != nil {
		if resp != nil {
			return fmt.Errorf("connect: %s", resp.Status)
		}
		return fmt.Errorf("connect: %w", err)
	}
	defer ws.Close()
	fmt.Fprintf(stderr, "devicesim: connected to %s; resending %d\n", o.url, len(box.pending))
	acks := make(chan int64, 64)
	readErr := make(chan error, 1)
	go func() {
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			var r struct {
				Ack   *int64 `json:"ack"`
				Error string `json:"error"`
				Seq   *int64 `json:"seq"`
			}
			if json.Unmarshal(b, &r) != nil {
				continue
			}
			if r.Error != "" {
				fmt.Fprintf(stderr, "devicesim: server refused a message: %s\n", r.Error)
			}
			if r.Ack != nil {
				acks <- *r.Ack
			}
		}
	}()
	send := func(e envelope) error {
		b, _ := json.Marshal(e)
		_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return ws.WriteMessage(websocket.TextMessage, b)
	}
	for _, e := range box.pending {
		if err := send(e); err != nil {
			return err
		}
	}
	tick := time.NewTicker(o.rate)
	defer tick.Stop()
	measure := func() error {
		for _, obs := range p.observations(time.Now()) {
			if len(box.pending) >= maxPending {
				return errors.New("too many unacknowledged messages")
			}
			if err := send(box.add(obs)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := measure(); err != nil {
		return err
	}
	var acked int
	for {
		select {
		case <-ctx.Done():
			_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
			return nil
		case err := <-readErr:
			return err
		case n := <-acks:
			box.ack(n)
			if acked++; acked%10 == 1 {
				fmt.Fprintf(stderr, "devicesim: acknowledged up to %d\n", n)
			}
		case <-tick.C:
			if err := measure(); err != nil {
				return err
			}
		}
	}
}
