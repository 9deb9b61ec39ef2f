package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/metrics"
)

// schedWaits is what a process's /metrics says of its goroutines' waits
// to run once ready (metrics.SchedulerLatencyName): how many the Go
// runtime sampled, and how many of them ended within 1 ms and within 5 ms.
type schedWaits struct {
	n, within1ms, within5ms uint64
}

// since is the waits of w that an earlier reading o had not seen yet. The
// counts only grow while the process lives, so fewer mean another process.
func (w schedWaits) since(o schedWaits) (schedWaits, error) {
	if w.n < o.n || w.within1ms < o.within1ms || w.within5ms < o.within5ms {
		return schedWaits{}, fmt.Errorf("the scheduler waits went down from %d to %d: did the process restart?", o.n, w.n)
	}
	return schedWaits{w.n - o.n, w.within1ms - o.within1ms, w.within5ms - o.within5ms}, nil
}

// over1ms and over5ms are the percentages of the waits longer than that.
func (w schedWaits) over1ms() float64 { return w.overPct(w.within1ms) }
func (w schedWaits) over5ms() float64 { return w.overPct(w.within5ms) }

func (w schedWaits) overPct(within uint64) float64 {
	if w.n == 0 {
		return 0
	}
	return 100 * float64(w.n-within) / float64(w.n)
}

// scrapeWaits reads the scheduler waits, and the stops of the world if
// given, from a /metrics URL, with BEDSIDE_METRICS_TOKEN as its bearer
// token if that is set (as it must be for a server that has one, even
// from loopback).
func scrapeWaits(ctx context.Context, url string) (runtimeFigures, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return runtimeFigures{}, err
	}
	if tok := os.Getenv("BEDSIDE_METRICS_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return runtimeFigures{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return runtimeFigures{}, fmt.Errorf("%s: %s", url, resp.Status)
	}
	w, err := parseWaits(resp.Body)
	if err != nil {
		return w, fmt.Errorf("%s: %w", url, err)
	}
	return w, nil
}

// runtimeFigures is what a process's /metrics says of its runtime: its
// goroutines' waits to run once ready, and its stops of the world
// (metrics.StoppedWorldName), read in the same buckets, if it gives them.
type runtimeFigures struct {
	waits      schedWaits
	stops      schedWaits
	stopsKnown bool
}

// since is the figures of f that an earlier reading o had not seen yet.
func (f runtimeFigures) since(o runtimeFigures) (runtimeFigures, error) {
	w, err := f.waits.since(o.waits)
	if err != nil {
		return runtimeFigures{}, err
	}
	d := runtimeFigures{waits: w, stopsKnown: f.stopsKnown && o.stopsKnown}
	if d.stopsKnown {
		if d.stops, err = f.stops.since(o.stops); err != nil {
			return runtimeFigures{}, err
		}
	}
	return d, nil
}

// longer1ms and longer5ms count those longer than that (for stops,
// which are few, a count says more than a share).
func (w schedWaits) longer1ms() uint64 { return w.n - w.within1ms }
func (w schedWaits) longer5ms() uint64 { return w.n - w.within5ms }

// waitsFrom reads a process's figures now, and returns what reads those
// that came since: the same reading at both ends of a window, whichever
// process it is.
func waitsFrom[T interface{ since(T) (T, error) }](read func() (T, error)) func() (T, error) {
	w0, err0 := read()
	return func() (T, error) {
		var zero T
		if err0 != nil {
			return zero, err0
		}
		w1, err := read()
		if err != nil {
			return zero, err
		}
		return w1.since(w0)
	}
}

// ownWaits is this process's scheduler waits: the load tool's own, which
// count in the latencies its readers' clocks give.
func ownWaits() (schedWaits, error) { return histWaits(metrics.SchedulerLatency()) }

// histWaits reads the 1 ms and 5 ms buckets of a scheduler latency.
func histWaits(h metrics.Histogram) (schedWaits, error) {
	w := schedWaits{n: h.Count}
	found := 0
	for i, le := range h.Bounds {
		switch le {
		case 1e-3:
			w.within1ms = h.Counts[i]
			found++
		case 5e-3:
			w.within5ms = h.Counts[i]
			found++
		}
	}
	if found != 2 {
		return w, fmt.Errorf("no 1 ms and 5 ms buckets in %v", h.Bounds)
	}
	return w, nil
}

// parseWaits reads from Prometheus text the scheduler latency's 1 ms and
// 5 ms buckets and its count, and the stops of the world's if the page
// has them.
func parseWaits(r io.Reader) (runtimeFigures, error) {
	var f runtimeFigures
	series := map[string]*uint64{}
	familyOf := map[string]string{} // a series' family
	add := func(name string, w *schedWaits) {
		for key, dst := range map[string]*uint64{name + `_bucket{le="0.001"}`: &w.within1ms, name + `_bucket{le="0.005"}`: &w.within5ms, name + "_count": &w.n} {
			series[key], familyOf[key] = dst, name
		}
	}
	add(metrics.SchedulerLatencyName, &f.waits)
	add(metrics.StoppedWorldName, &f.stops)
	found := map[string]int{} // series read, by family
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), " ")
		if dst := series[key]; ok && dst != nil {
			v, err := strconv.ParseUint(value, 10, 64)
			if err != nil {
				return f, fmt.Errorf("%s: %w", key, err)
			}
			*dst = v
			found[familyOf[key]]++
		}
	}
	if err := sc.Err(); err != nil {
		return f, err
	}
	if found[metrics.SchedulerLatencyName] != 3 {
		return f, fmt.Errorf("no %s with 1 ms and 5 ms buckets", metrics.SchedulerLatencyName)
	}
	f.stopsKnown = found[metrics.StoppedWorldName] == 3
	return f, nil
}
