package media

import (
	"testing"
	"time"
)

// A down track leaving mid-window (a participant gone, a WHEP slot
// switched) must not make the carried rate leap: its lifetime bytes drop
// out of the subscriber's total, and an unsigned difference wrapped to
// ~1e20 bit/s, which then proved any paused video's resume.
func TestCarriedRateSurvivesTrackLeaving(t *testing.T) {
	a := &allocator{}
	x, y := &downTrack{}, &downTrack{}
	now := time.Now()
	x.stats.bytes.Store(10_000_000)
	y.stats.bytes.Store(10_000_000)
	a.carried(now, []*downTrack{x, y})
	x.stats.bytes.Add(100_000)
	got := a.carried(now.Add(time.Second), []*downTrack{x}) // y left
	if want := 800_000.0; got != want {
		t.Fatalf("carried after a track left: %.3g bit/s, want %.3g (x's own 100 kB in a second)", got, want)
	}
	// A track joining counts from when it was first seen, not its lifetime.
	z := &downTrack{}
	z.stats.bytes.Store(5_000_000)
	a.carried(now.Add(2*time.Second), []*downTrack{x, z})
	x.stats.bytes.Add(50_000)
	z.stats.bytes.Add(50_000)
	got = a.carried(now.Add(3*time.Second), []*downTrack{x, z})
	if want := 800_000.0; got != want {
		t.Fatalf("carried with a joined track: %.3g bit/s, want %.3g", got, want)
	}
}
