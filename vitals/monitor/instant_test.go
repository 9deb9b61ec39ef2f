package monitor

import (
	"math"
	"testing"
	"time"
	"unsafe"
)

func TestInstant(t *testing.T) {
	for _, tm := range []time.Time{t0, t0.Add(123456789), time.Unix(0, 0), time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if got := instantOf(tm).time(); !got.Equal(tm) || got.Location() != time.UTC {
			t.Errorf("instantOf(%v).time() = %v", tm, got)
		}
	}
	// A device may send any RFC 3339 time: the ends clamp, never wrap.
	far, old := instantOf(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)), instantOf(time.Time{})
	if far != math.MaxInt64 || old != never+1 {
		t.Errorf("clamped to %d and %d", far, old)
	}
	now := instantOf(t0)
	if d := now.sub(old); d != math.MaxInt64 {
		t.Errorf("now - year 1 = %v, want the longest Duration", d)
	}
	if d := now.sub(far); d != time.Duration(now-far) || d >= 0 {
		t.Errorf("now - year 3000 = %v, want a negative Duration", d)
	}
	if d := old.sub(far); d != math.MinInt64 {
		t.Errorf("year 1 - year 3000 = %v, want the most negative Duration", d)
	}
	if d := instantOf(t0.Add(90 * time.Second)).sub(now); d != 90*time.Second {
		t.Errorf("sub = %v, want 90s", d)
	}
}

// A server keeps a Monitor for every patient it watches: a time.Time
// field or a full news2.Score more would put it back into a larger size
// class (docs/benchmarks.md, "Memory per idle connection").
func TestMonitorStaysSmall(t *testing.T) {
	if n := unsafe.Sizeof(Monitor{}); n > 1280 {
		t.Errorf("a Monitor is %d bytes, want at most 1,280", n)
	}
}
