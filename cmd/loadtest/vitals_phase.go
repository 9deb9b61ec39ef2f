package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"

	"github.com/gorilla/websocket"
	"sync"
	"time"
)

// phase is one measured run of the same clients and load against one target.
type phase struct {
	name string
	pid  int // the target's process, for CPU and memory; 0 not measured
	// noRSS leaves out memory per connection: an earlier phase ran in the
	// same process, whose heap it freed is reused.
	noRSS    bool
	duration time.Duration
	settle   time.Duration // idle time after connecting, before memory is read (default 3 s)
	acked    bool          // the target acks device messages (the server; not the relay)
	devices  []deviceTarget
	viewers  []viewerSpec
	log      io.Writer
	// metricsURL is the target's /metrics, whose scheduler waits are read
	// around the streaming; "" reads none.
	metricsURL string
}

type deviceTarget struct {
	url    string
	header http.Header
}

// result is what a phase measured.
type result struct {
	name               string
	round              int // from 1
	patients, conns    int
	sent, delivered    int64
	lost, holes, dups  int64 // lost: sent but not delivered within 10 s of the last send
	epochs, gapMsgs    int
	frames, bytes      int64
	deviceErrs         int64
	firstErr           string
	lat                latencies     // from the scheduled send to the reader's clock
	wire               latencies     // from the scheduled send to the kernel's receipt (wire.n 0: not known)
	late               latencies     // from the scheduled send to the write
	tenth              byTenth       // deliveries over 5 ms late by where in the clock's tenth they were sent
	dur                time.Duration // the measured window, from the first send until all arrived
	rate               float64       // deliveries a second over the sending time
	serverCPU, selfCPU time.Duration
	measured           bool // serverCPU is known
	rssKnown           bool // idleRSS and perConn are known
	idleRSS            int64
	perConn            float64
	waits              schedWaits // the target's scheduler waits while streaming
	waitsKnown         bool
	stops              schedWaits // the target's stops of the world while streaming
	stopsKnown         bool
	ownWaits           schedWaits // the load tool's, over the same time
	ownWaitsKnown      bool
}

// connect runs f for 0..n-1, 32 at a time, and returns the first error.
func connect(n int, f func(i int) error) error {
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(i); err != nil {
				once.Do(func() { first = err })
			}
		})
	}
	wg.Wait()
	return first
}

func (p phase) run(ctx context.Context) (r result, err error) {
	r = result{name: p.name, patients: len(p.devices), conns: len(p.devices) + len(p.viewers), measured: p.pid > 0}
	r.rssKnown = r.measured && !p.noRSS
	var rss0 int64
	if r.rssKnown {
		if rss0, err = procRSS(p.pid); err != nil {
			return r, err
		}
	}
	devs := make([]*device, len(p.devices))
	views := make([]*viewer, len(p.viewers))
	defer func() {
		for _, d := range devs {
			if d != nil {
				d.close()
			}
		}
		for _, v := range views {
			if v != nil {
				v.close()
			}
		}
	}()
	fmt.Fprintf(p.log, "%s: connecting %d devices and %d viewers\n", p.name, len(devs), len(views))
	if err := connect(len(devs), func(i int) (err error) {
		devs[i], err = dialDevice(ctx, p.devices[i].url, p.devices[i].header, p.acked)
		return err
	}); err != nil {
		return r, fmt.Errorf("%s: %w", p.name, err)
	}
	if err := connect(len(views), func(i int) (err error) {
		views[i], err = dialViewer(ctx, p.viewers[i])
		if err != nil {
			return err
		}
		select {
		case <-views[i].ready:
			return nil
		case <-views[i].done:
			return fmt.Errorf("viewer %d stopped before its streams began: %v", i, views[i].err)
		case <-time.After(60 * time.Second):
			return fmt.Errorf("viewer %d: no stream message within 60 s", i)
		case <-ctx.Done():
			return ctx.Err()
		}
	}); err != nil {
		return r, fmt.Errorf("%s: %w", p.name, err)
	}
	if r.measured {
		// Let the connections settle, idle, before reading memory.
		settle := p.settle
		if settle <= 0 {
			settle = 3 * time.Second
		}
		fmt.Fprintf(p.log, "%s: connected; idle for %s\n", p.name, settle)
		select {
		case <-time.After(settle):
		case <-ctx.Done():
			return r, ctx.Err()
		}
		if r.rssKnown {
			rss1, err := procRSS(p.pid)
			if err != nil {
				return r, err
			}
			r.idleRSS = rss1 - rss0
			r.perConn = float64(r.idleRSS) / float64(r.conns)
		}
	}
	for _, v := range views {
		v.counted.Store(true)
	}
	var targetWaits func() (runtimeFigures, error)
	if p.metricsURL != "" {
		targetWaits = waitsFrom(func() (runtimeFigures, error) { return scrapeWaits(ctx, p.metricsURL) })
	}
	var cpu0 time.Duration
	if r.measured {
		if cpu0, err = procCPU(p.pid); err != nil {
			return r, err
		}
	}
	self0, _ := selfCPU()
	toolWaits := waitsFrom(ownWaits)
	fmt.Fprintf(p.log, "%s: streaming for %s\n", p.name, p.duration)
	t0 := time.Now().Add(100 * time.Millisecond)
	end := t0.Add(p.duration)
	var wg sync.WaitGroup
	for i, d := range devs {
		// Spread the patients over the 100 ms between chunks.
		at := t0.Add(time.Duration(i) * 100 * time.Millisecond / time.Duration(len(devs)))
		wg.Go(func() { d.stream(ctx, at, end) })
	}
	wg.Wait()
	var late []time.Duration
	for _, d := range devs {
		r.sent += d.sent.Load()
		late = append(late, d.late...)
	}
	r.late = summarise(late)
	// Wait for what is in flight, up to 10 s.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var got int64
		for _, v := range views {
			for _, t := range v.tallies {
				got += t.delivered.Load()
			}
		}
		if got >= r.sent {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.dur = time.Since(t0)
	if r.measured {
		cpu1, err := procCPU(p.pid)
		if err != nil {
			return r, err
		}
		r.serverCPU = cpu1 - cpu0
	}
	if targetWaits != nil {
		f, err := targetWaits()
		if err != nil {
			fmt.Fprintf(p.log, "%s: scheduler waits not read: %v\n", p.name, err)
		}
		r.waits, r.waitsKnown = f.waits, err == nil
		r.stops, r.stopsKnown = f.stops, err == nil && f.stopsKnown
	}
	self1, _ := selfCPU()
	r.selfCPU = self1 - self0
	var ownErr error
	r.ownWaits, ownErr = toolWaits()
	r.ownWaitsKnown = ownErr == nil
	for _, d := range devs {
		r.deviceErrs += d.errs.Load()
		if e := d.firstError(); e != "" && r.firstErr == "" {
			r.firstErr = e
		}
	}
	var all, wire []time.Duration
	for i, v := range views {
		v.close()
		views[i] = nil
		if v.err != nil && r.firstErr == "" && !isClosed(v.err) {
			r.firstErr = v.err.Error()
		}
		r.frames += v.frames.Load()
		r.bytes += v.bytes.Load()
		for _, t := range v.tallies {
			r.delivered += t.delivered.Load()
			r.holes += int64(t.holes())
			r.dups += int64(t.dups)
			r.epochs += t.epochs
			r.gapMsgs += t.gapMsgs
			all = append(all, t.lat...)
			wire = append(wire, t.wire...)
			r.tenth.merge(&t.tenth)
		}
	}
	r.lost = r.sent - r.delivered
	r.lat = summarise(all)
	if len(wire) == len(all) {
		r.wire = summarise(wire) // known for every delivery, or not shown
	}
	r.rate = float64(r.delivered) / p.duration.Seconds()
	return r, nil
}

// selfCPU is this process's CPU time.
func selfCPU() (time.Duration, error) { return procCPU(os.Getpid()) }

// isClosed reports whether err is the end of a connection we closed.
func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway)
}
