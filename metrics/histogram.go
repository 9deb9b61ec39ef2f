package metrics

import (
	"fmt"
	"math"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
)

// Histogram is a distribution read at each scrape: Counts[i] observations
// at or under Bounds[i] (cumulative, Bounds increasing), Count in all, and
// Sum their total.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// HistogramCollector registers an unlabelled histogram family whose
// distribution fn gives at each scrape.
func (r *Registry) HistogramCollector(name, help string, fn func() Histogram) {
	r.add(name, help, "histogram", nil).histogram = fn
}

// writeHistogram writes a histogram's buckets, sum and count.
func (f *family) writeHistogram(b *strings.Builder) {
	h := f.histogram()
	if len(h.Counts) != len(h.Bounds) {
		panic(fmt.Sprintf("metrics: %s has %d bounds and %d counts", f.name, len(h.Bounds), len(h.Counts)))
	}
	for i, le := range h.Bounds {
		fmt.Fprintf(b, "%s_bucket{le=\"%s\"} %d\n", f.name, strconv.FormatFloat(le, 'g', -1, 64), h.Counts[i])
	}
	fmt.Fprintf(b, "%s_bucket{le=\"+Inf\"} %d\n", f.name, h.Count)
	fmt.Fprintf(b, "%s_sum %s\n%s_count %d\n", f.name, strconv.FormatFloat(h.Sum, 'g', -1, 64), f.name, h.Count)
}

// FoldRuntime folds a runtime/metrics histogram into bounds (increasing).
// A runtime bucket is counted under the first bound at or above its upper
// edge, so a bucket never claims observations faster than they may have
// been; the runtime's buckets are narrow, so little is moved. The sum is
// estimated from each bucket's lower edge (the runtime keeps none).
func FoldRuntime(rh *rtmetrics.Float64Histogram, bounds []float64) Histogram {
	h := Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds))}
	for i, n := range rh.Counts {
		if n == 0 {
			continue
		}
		h.Count += n
		if lo := rh.Buckets[i]; lo > 0 && !math.IsInf(lo, 0) {
			h.Sum += float64(n) * lo
		}
		hi := rh.Buckets[i+1]
		for j := len(bounds) - 1; j >= 0 && bounds[j] >= hi; j-- {
			h.Counts[j] += n
		}
	}
	return h
}

// SchedulerBounds are the buckets of the scheduler latency: the live
// vitals' 10 ms target lies within them, and a process past its CPU shows
// in those above.
var SchedulerBounds = []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3}

// SchedulerLatencyName is the scheduler latency's family.
const SchedulerLatencyName = "bedside_scheduler_latency_seconds"

// RegisterSchedulerLatency adds the Go runtime's scheduling latencies to
// r: how long goroutines waited to run once ready, in SchedulerBounds.
func RegisterSchedulerLatency(r *Registry) {
	r.HistogramCollector(SchedulerLatencyName, "How long goroutines waited to run once ready (the Go runtime's sample of them since the process started): a process short of CPU waits longer, first in its tail.", SchedulerLatency)
}

// SchedulerLatency reads this process's scheduling latencies, in
// SchedulerBounds.
func SchedulerLatency() Histogram {
	s := []rtmetrics.Sample{{Name: "/sched/latencies:seconds"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindFloat64Histogram {
		return Histogram{Bounds: SchedulerBounds, Counts: make([]uint64, len(SchedulerBounds))}
	}
	return FoldRuntime(s[0].Value.Float64Histogram(), SchedulerBounds)
}

// StoppedWorldName is the family of the Go runtime's stops of the world.
const StoppedWorldName = "bedside_stopped_world_seconds"

// RegisterStoppedWorld adds how long the Go runtime held the world
// stopped, for its garbage collector or anything else (such as a change
// of GOMAXPROCS), from the stop's start until every goroutine could run
// again, in SchedulerBounds. While the world is stopped nothing of the
// process runs: a stop of 5 ms is 5 ms added to every live vitals
// message in flight.
func RegisterStoppedWorld(r *Registry) {
	r.HistogramCollector(StoppedWorldName, "How long the Go runtime held the world stopped, for the garbage collector or anything else, since the process started: nothing of the process runs meanwhile.", StoppedWorld)
}

// StoppedWorld reads this process's stops of the world, in
// SchedulerBounds: those of the garbage collector and the others
// together.
func StoppedWorld() Histogram {
	s := []rtmetrics.Sample{{Name: "/sched/pauses/total/gc:seconds"}, {Name: "/sched/pauses/total/other:seconds"}}
	rtmetrics.Read(s)
	h := Histogram{Bounds: SchedulerBounds, Counts: make([]uint64, len(SchedulerBounds))}
	for _, x := range s {
		if x.Value.Kind() != rtmetrics.KindFloat64Histogram {
			continue
		}
		one := FoldRuntime(x.Value.Float64Histogram(), SchedulerBounds)
		for i, n := range one.Counts {
			h.Counts[i] += n
		}
		h.Count += one.Count
		h.Sum += one.Sum
	}
	return h
}
