package main

import (
	"strings"
	"testing"
)

// TestSchedulerLatencyMetric: the server's registry exports the runtime's
// scheduling latencies and its stops of the world (how they are folded
// and counted is metrics' TestFoldRuntime, TestSchedulerLatencySeesADelay
// and TestStoppedWorldCountsGCAndOtherStops).
func TestSchedulerLatencyMetric(t *testing.T) {
	var b strings.Builder
	if err := newMetrics().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"# TYPE bedside_scheduler_latency_seconds histogram\n",
		"bedside_scheduler_latency_seconds_bucket{le=\"0.005\"} ",
		"bedside_scheduler_latency_seconds_count ",
		"# TYPE bedside_stopped_world_seconds histogram\n",
		"bedside_stopped_world_seconds_bucket{le=\"0.005\"} ",
		"bedside_stopped_world_seconds_count ",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("/metrics lacks %q in\n%s", line, b.String())
		}
	}
}
