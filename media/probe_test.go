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

// capProbe is a subscriber with q and h layers of video, and audio, on a
// link that carries 200 kbit/s to it; tick runs one allocation with GCC's
// estimate at bps, normal and increasing.
type capProbe struct {
	t     *testing.T
	al    *allocator
	vd    *downTrack
	at    time.Time
	bwe   *gccBWE
	q, h  *layer
	audio *layer
}

const capCarried = 200_000.0 // what the subscriber is sent, in bits per second

func newCapProbe(t *testing.T) *capProbe {
	a, video, audio := subscriberAndTracks(t)
	p := &capProbe{t: t, at: time.Now(), bwe: &gccBWE{}}
	p.q, p.h, p.audio = video.addLayer(0, "q", nil), video.addLayer(1, "h", nil), audio.addLayer(0, "", nil)
	p.vd, _ = subscribe(a, video, audio)
	p.vd.mu.Lock()
	p.vd.bound, p.vd.rtxSSRC, p.vd.hist = true, 1, make([]histEntry, histLen)
	p.vd.mu.Unlock()
	p.al = &allocator{p: a, bwe: p.bwe}
	return p
}

func (p *capProbe) tick(bps float64) {
	p.t.Helper()
	p.bwe.set(int(bps), "normal", "increase")
	steady(p.q, p.at, 100_000, 320, 180)
	steady(p.h, p.at, 3_000_000, 640, 360)
	steady(p.audio, p.at, 40_000, 0, 0)
	p.vd.stats.bytes.Add(uint64(capCarried / 8 * allocInterval.Seconds()))
	p.al.allocate(p.at)
	p.at = p.at.Add(allocInterval)
}

// startProbe raises the estimate for 4 s, which starts one probe, and
// returns the estimate it reached.
func (p *capProbe) startProbe() float64 {
	p.t.Helper()
	bps := 400_000.0
	for range 8 {
		p.tick(bps)
		bps *= 1.04
	}
	if !p.al.probe.active || p.vd.stats.probes.Load() != 1 {
		p.t.Fatalf("after 4 s of a rising estimate: probe running %v, %d probes; want one running", p.al.probe.active, p.vd.stats.probes.Load())
	}
	if c := p.al.probe.carried; c < 0.9*capCarried || c > 1.1*capCarried {
		p.t.Fatalf("carried rate %.0f bit/s, want about %.0f", c, capCarried)
	}
	return bps
}

// Near the rates of its last decreases Pion's GCC caps its estimate at
// 1.5 times the rate it sees received, so an estimate that rose during the
// gap before a probe falls back as the probe starts. On fresh figures
// showing normal delay and an increasing estimate, a fall that leaves the
// estimate above what the link carried is that cap: the probe goes on. A
// fall below it is a decrease, and the probe stops as failed.
func TestAProbeGoesOnWhenGCCCapsItsEstimate(t *testing.T) {
	p := newCapProbe(t)
	p.startProbe()
	// Capped at 1.5 times what is carried, then rising again.
	bps := 1.5 * capCarried
	for range 6 {
		p.tick(bps)
		bps *= 1.04
		if !p.al.probe.active || p.vd.stats.probes.Load() != 1 {
			t.Fatalf("after the estimate fell to %.0f bit/s, over the %.0f carried: probe running %v, %d probes; want the first running", bps, capCarried, p.al.probe.active, p.vd.stats.probes.Load())
		}
	}
	// A fall under what the link carried: the link did not carry it.
	p.tick(0.85 * capCarried)
	if p.al.probe.active {
		t.Fatalf("the probe goes on after the estimate fell to %.0f bit/s, under the %.0f carried", 0.85*capCarried, capCarried)
	}
	if gap := p.al.probe.next.Sub(p.at.Add(-allocInterval)); gap != probeMinGap {
		t.Fatalf("after the failed probe the next waits %v, want %v", gap, probeMinGap)
	}
}

// A probe that goes on through GCC's cap must still rise again: an
// estimate that keeps falling, though above what the link carries, stops
// it as stalled once probeStall has passed without a rise.
func TestAProbeThroughGCCsCapStillStalls(t *testing.T) {
	p := newCapProbe(t)
	bps := p.startProbe()
	started := p.al.probe.risen
	for p.al.probe.active {
		if p.at.Sub(started) > probeStall+2*allocInterval {
			t.Fatalf("the probe still runs %v after its last rise, its estimate falling to %.0f bit/s", p.at.Sub(started), bps)
		}
		bps = max(bps*0.94, 1.2*capCarried) // 6% down a tick, never under the carried rate
		p.tick(bps)
	}
	if p.vd.stats.probes.Load() != 1 {
		t.Fatalf("%d probes; want the one", p.vd.stats.probes.Load())
	}
	if stopped := p.at.Add(-allocInterval); p.al.probe.troubleAt.Equal(stopped) {
		t.Error("the probe was stopped as congested, not as stalled")
	}
}
