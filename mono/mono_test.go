package mono

import (
	"testing"
	"time"
)

// TestReadingsFollowTheClock: readings are never 0, never go back, and
// measure the same spans as time.Now, within scheduling noise.
func TestReadingsFollowTheClock(t *testing.T) {
	a, ta, wallA := Since(), Now(), time.Now()
	time.Sleep(120 * time.Millisecond) // the span measured, not a synchronisation
	b, tb, wallB := Since(), Now(), time.Now()
	if a < 1 || b < a {
		t.Fatalf("Since read %v, then %v", a, b)
	}
	want := wallB.Sub(wallA)
	for name, got := range map[string]time.Duration{"Since": b - a, "Now": tb.Sub(ta)} {
		if got < 100*time.Millisecond || (got-want).Abs() > 50*time.Millisecond {
			t.Errorf("%s measured %v between two readings, time.Now %v", name, got, want)
		}
	}
	if d := Now().Sub(time.Now()).Abs(); d > time.Second {
		t.Errorf("Now is %v away from the wall clock in a process that just started", d)
	}
}
