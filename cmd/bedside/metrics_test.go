package main

import (
	"strings"
	"testing"
)

// TestSchedulerLatencyMetric: the server's registry exports the runtime's
// scheduling latencies (how they are folded is metrics' TestFoldRuntime
// and TestSchedulerLatencySeesADelay).
func TestSchedulerLatencyMetric(t *testing.T) {
	var b strings.Builder
	if err := newMetrics().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"# TYPE bedside_scheduler_latency_seconds histogram\n",
		"bedside_scheduler_latency_seconds_bucket{le=\"0.005\"} ",
		"bedside_scheduler_latency_seconds_count ",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("/metrics lacks %q in\n%s", line, b.String())
		}
	}
}
