package main

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bedside-health/bedside/metrics"
)

// TestSchedulerLatencyMetric: the server's registry exports the runtime's
// scheduling latencies as a histogram whose buckets only grow and end at
// its count.
func TestSchedulerLatencyMetric(t *testing.T) {
	var wg sync.WaitGroup
	for range 64 { // some waits for the runtime to sample
		wg.Go(func() {})
	}
	wg.Wait()
	var b strings.Builder
	if err := newMetrics().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	if !strings.Contains(text, "# TYPE bedside_scheduler_latency_seconds histogram\n") {
		t.Fatalf("no scheduler latency histogram in\n%s", text)
	}
	var last uint64
	buckets := regexp.MustCompile(`(?m)^bedside_scheduler_latency_seconds_bucket\{le="([^"]+)"\} (\d+)$`).FindAllStringSubmatch(text, -1)
	if len(buckets) != len(metrics.SchedulerBounds)+1 {
		t.Fatalf("%d buckets, want %d", len(buckets), len(metrics.SchedulerBounds)+1)
	}
	for _, m := range buckets {
		n, _ := strconv.ParseUint(m[2], 10, 64)
		if n < last {
			t.Errorf("bucket le=%s holds %d, fewer than the one before (%d)", m[1], n, last)
		}
		last = n
	}
	count := regexp.MustCompile(`(?m)^bedside_scheduler_latency_seconds_count (\d+)$`).FindStringSubmatch(text)
	if count == nil || count[1] != strconv.FormatUint(last, 10) || last == 0 {
		t.Errorf("count %v, want the +Inf bucket's %d, above 0", count, last)
	}
}
