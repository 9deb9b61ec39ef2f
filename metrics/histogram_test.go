package metrics

import (
	"math"
	"runtime"
	rtmetrics "runtime/metrics"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHistogramText(t *testing.T) {
	r := NewRegistry()
	r.HistogramCollector("bedside_wait_seconds", "Waits.", func() Histogram {
		return Histogram{Bounds: []float64{0.001, 0.01}, Counts: []uint64{3, 5}, Count: 6, Sum: 0.125}
	})
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP bedside_wait_seconds Waits.
# TYPE bedside_wait_seconds histogram
bedside_wait_seconds_bucket{le="0.001"} 3
bedside_wait_seconds_bucket{le="0.01"} 5
bedside_wait_seconds_bucket{le="+Inf"} 6
bedside_wait_seconds_sum 0.125
bedside_wait_seconds_count 6
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestFoldRuntime(t *testing.T) {
	rh := &rtmetrics.Float64Histogram{
		// [−Inf,0) [0,0.5ms) [0.5ms,0.9ms) [0.9ms,1.1ms) [1.1ms,20ms) [20ms,+Inf)
		Buckets: []float64{math.Inf(-1), 0, 0.0005, 0.0009, 0.0011, 0.02, math.Inf(1)},
		Counts:  []uint64{0, 10, 4, 2, 7, 1},
	}
	h := FoldRuntime(rh, []float64{0.0005, 0.001, 0.01})
	// A bucket counts under the first bound at or above its upper edge:
	// [0.9ms,1.1ms) is not known to be under 1 ms, so it waits for 10 ms.
	if want := []uint64{10, 14, 16}; !slices.Equal(h.Counts, want) {
		t.Errorf("counts %v, want %v", h.Counts, want)
	}
	if h.Count != 24 {
		t.Errorf("count %d, want 24 (the [20ms,+Inf) and [1.1ms,20ms) ones above every bound included)", h.Count)
	}
	if want := 4*0.0005 + 2*0.0009 + 7*0.0011 + 1*0.02; math.Abs(h.Sum-want) > 1e-12 {
		t.Errorf("sum %v, want %v (each bucket at its lower edge)", h.Sum, want)
	}
}

// TestSchedulerLatencySeesADelay holds the only P for 30 ms while 200 new
// goroutines wait for it: the runtime samples about one in eight of their
// waits, which last until the holder is preempted (10 ms after it began),
// and the scheduler latency must show them above 5 ms.
func TestSchedulerLatencySeesADelay(t *testing.T) {
	at5ms := slices.Index(SchedulerBounds, 5e-3)
	over := func(h Histogram) uint64 { return h.Count - h.Counts[at5ms] }
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	before := SchedulerLatency()
	done := make(chan struct{}, 200)
	runtime.Gosched() // a fresh turn: the holder is preempted 10 ms from here
	for range 200 {
		go func() { done <- struct{}{} }()
	}
	for end := time.Now().Add(30 * time.Millisecond); time.Now().Before(end); {
	}
	for range 200 {
		<-done
	}
	after := SchedulerLatency()
	if over(after) <= over(before) {
		t.Errorf("waits over 5 ms: %d before, %d after 200 goroutines waited on a held P", over(before), over(after))
	}
	for i := range SchedulerBounds {
		if after.Counts[i] > after.Count || (i > 0 && after.Counts[i] < after.Counts[i-1]) {
			t.Errorf("buckets not cumulative: %v of %d", after.Counts, after.Count)
		}
	}
}

// TestStoppedWorldCountsGCAndOtherStops: a garbage collection stops the
// world at least twice (to start marking and to end it), and a change of
// GOMAXPROCS once each way; the histogram must count them all.
func TestStoppedWorldCountsGCAndOtherStops(t *testing.T) {
	before := StoppedWorld()
	runtime.GC()
	afterGC := StoppedWorld()
	if afterGC.Count < before.Count+2 {
		t.Errorf("stops: %d before a collection, %d after; want 2 or more", before.Count, afterGC.Count)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1))
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) - 1)
	after := StoppedWorld()
	if after.Count < afterGC.Count+2 {
		t.Errorf("stops: %d before two changes of GOMAXPROCS, %d after; want 2 more", afterGC.Count, after.Count)
	}
	for i := range after.Counts {
		if after.Counts[i] > after.Count || (i > 0 && after.Counts[i] < after.Counts[i-1]) {
			t.Errorf("buckets not cumulative: %v of %d", after.Counts, after.Count)
		}
	}
}
