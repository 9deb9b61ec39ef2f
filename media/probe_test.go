package media

import (
	"testing"
	"time"
)

// A probe runs as long as the estimate keeps rising and ends once it
// stops; failed probes back off from probeMinGap, doubling up to
// probeMaxGap. GCC climbs about 8% a second, so a probe cut at a fixed
// time halfway up counted as failed and put the next off while the link
// stood free: a paused video then missed its return by tens of seconds.
func TestAProbeRunsWhileTheEstimateRises(t *testing.T) {
	a, video, audio := subscriberAndTracks(t)
	q, h, o := video.addLayer(0, "q", nil), video.addLayer(1, "h", nil), audio.addLayer(0, "", nil)
	vd, _ := subscribe(a, video, audio)
	// Bound to a subscriber that negotiated RTX, as Bind leaves it: the
	// probe's padding could go out.
	vd.mu.Lock()
	vd.bound, vd.rtxSSRC, vd.hist = true, 1, make([]histEntry, histLen)
	vd.mu.Unlock()
	bwe := &gccBWE{}
	al := &allocator{p: a, bwe: bwe}
	at := time.Now()
	tick := func(bps float64) {
		t.Helper()
		bwe.set(int(bps), "normal", "increase")
		steady(q, at, 100_000, 320, 180)
		steady(h, at, 3_000_000, 640, 360)
		steady(o, at, 40_000, 0, 0)
		al.allocate(at)
		at = at.Add(allocInterval)
	}

	// The low layer fits; the high one needs over 3.4 Mbit/s. The estimate
	// rises 4% a tick, 8% a second, for 30 s, to 2.6 Mbit/s: one probe,
	// never stopped.
	bps := 250_000.0
	for range int(30 * time.Second / allocInterval) {
		tick(bps)
		bps *= 1.04
		if got := vd.stats.probes.Load(); got > 1 {
			t.Fatalf("%d probes after %v of a rising estimate, want 1", got, at.Sub(al.probe.started))
		}
	}
	if got := vd.stats.probes.Load(); got != 1 || !al.probe.active {
		t.Fatalf("after 30 s of a rising estimate: %d probes, one running %v; want 1 running", got, al.probe.active)
	}
	if ran := at.Sub(al.probe.started); ran < 25*time.Second {
		t.Fatalf("the probe has run %v of the 30 s", ran)
	}
	// The estimate stops rising: the probe ends, as failed. Each failure
	// doubles the gap up to probeMaxGap.
	for got, want := range []time.Duration{2, 4, 8, 16, 16} {
		for al.probe.active {
			tick(bps)
		}
		stopped := at.Add(-allocInterval)
		if gap := al.probe.next.Sub(stopped); gap != want*time.Second {
			t.Fatalf("after failed probe %d the next waits %v, want %v", got+1, gap, want*time.Second)
		}
		for !al.probe.active {
			if at.Sub(stopped) > 20*time.Second {
				t.Fatalf("no probe within 20 s of failed probe %d", got+1)
			}
			tick(bps)
		}
	}
}
