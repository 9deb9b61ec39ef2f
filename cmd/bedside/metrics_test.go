package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/bedside-health/bedside/store/sqlite"
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

// TestWriterStarvedMetric: a server on SQLite exports how often the
// readings' commits starved in the idle class (none, on an idle machine),
// and one on a store without such a writer leaves the family out.
func TestWriterStarvedMetric(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "bedside.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := newMetrics()
	registerWriterMetrics(r, st)
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\nbedside_reading_commits_starved 0\n") {
		t.Errorf("/metrics lacks the commits starved, 0, in\n%s", b.String())
	}
	r = newMetrics()
	registerWriterMetrics(r, struct{}{})
	b.Reset()
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "bedside_reading_commits_starved") {
		t.Error("a store without the idle-class writer exports its starved commits")
	}
}
