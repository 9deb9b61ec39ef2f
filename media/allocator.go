package media

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
)

// Allocation tuning.
const (
	allocInterval = 500 * time.Millisecond
	// upgradeHeadroom is the share of the budget a higher layer must fit
	// in; keepTolerance how far over budget the lowest layer may run
	// before video is paused; pauseAfter how long it must stay over.
	upgradeHeadroom = 0.85
	keepTolerance   = 1.25
	pauseAfter      = time.Second
	// Pausing is the last resort, so the estimate alone is not enough:
	// the subscriber must also report losing pauseLoss of what is sent
	// (its receiver reports, not GCC's figure: see loss), or the estimate
	// be under half of what the lowest layer needs while the link has not
	// carried, since it last lost packets, what the video would take it
	// to. A link that is merely slow to deliver (a busy machine) keeps its
	// video.
	pauseLoss  = 0.10
	pauseShare = 0.5
	// audioReserve is budgeted for each audio track before its rate is
	// known: audio is never what gives way.
	audioReserve = 64_000
)

// allocState is a down track's allocation state, owned by its
// subscriber's allocator goroutine.
type allocState struct {
	overSince time.Time // when its lowest layer stopped fitting
}

// estimator is the part of a bandwidth estimator the allocator needs.
type estimator interface {
	GetTargetBitrate() int
}

// lossReporter is an estimator that also knows the loss it measured (GCC's
// statistics carry it as "averageLoss", 0 to 1).
type lossReporter interface {
	GetStats() map[string]any
}

// loss is the share of d's packets the subscriber's last receiver report
// says it lost. GCC's own loss figure is not read here: it counts a packet
// as lost when the TWCC feedback that should carry it was sent before the
// receiver read it, so a starved receiver that reads late and then all at
// once shows loss on a link that lost nothing, and the video would pause
// for it. Receivers count holes in the sequence numbers (reportedLoss).
func (a *allocator) loss(d *downTrack) float64 {
	return float64(d.stats.fractionLost.Load()) / 256
}

// allocator chooses, for one subscriber, the simulcast layer of each video
// track it receives: the highest that fits both the estimated downstream
// bandwidth (send-side, from the subscriber's TWCC feedback) left after
// audio, and the size of the tile the video is drawn in. Under congestion
// video goes down a layer, and pauses if even the lowest does not fit;
// audio is never touched. A paused video resumes only once probing
// (probe.go) showed the link carries it.
type allocator struct {
	p     *Participant
	bwe   estimator     // nil: no estimate, bandwidth is not a limit
	kicks chan struct{} // asks for an allocation now
	probe prober
	pace  *time.Ticker // paces the probe's padding; stopped between probes
}

func newAllocator(p *Participant) *allocator {
	return &allocator{p: p, kicks: make(chan struct{}, 1)}
}

// kick asks for an allocation soon, without waiting.
func (a *allocator) kick() {
	select {
	case a.kicks <- struct{}{}:
	default:
	}
}

// run reallocates every allocInterval, and when kicked, until done is
// closed.
func (a *allocator) run(done <-chan struct{}) {
	t := time.NewTicker(allocInterval)
	defer t.Stop()
	a.pace = time.NewTicker(probeTick)
	a.pace.Stop()
	defer a.pace.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			a.allocate(now)
		case <-a.kicks:
			a.allocate(time.Now())
		case now := <-a.pace.C:
			a.pad(now)
		}
	}
}

// budget returns the estimate in bits per second, or +Inf without one.
func (a *allocator) budget() float64 {
	if a.bwe == nil {
		return math.Inf(1)
	}
	return float64(a.bwe.GetTargetBitrate())
}

// allocate sets every video down track's target layer.
func (a *allocator) allocate(now time.Time) {
	downs := a.p.downTracks()
	slices.SortFunc(downs, func(x, y *downTrack) int { return strings.Compare(x.id, y.id) })
	budget := a.budget()
	if a.bwe != nil {
		a.observe(now, downs)
	}
	type plan struct {
		d      *downTrack
		layers []*layer // active layers the tile allows, lowest first
		rates  []float64
		pick   int // index into layers; -1 paused
		was    int // the layer targeted before, -1 none
	}
	var plans []plan
	used := 0.0
	sent := 0.0 // what the subscriber is sent: like used, audio at its real rate
	for _, d := range downs {
		if d.src.kind != webrtc.RTPCodecTypeVideo {
			var rate float64
			if l := d.src.layerAt(0); l != nil {
				rate = l.rate(now)
			}
			used += max(rate, audioReserve)
			sent += rate
			continue
		}
		layers := d.src.activeLayers(now, nil)
		if len(layers) == 0 {
			continue // nothing arrives yet: keep whatever it waits for
		}
		w, h, hidden := d.tile()
		target, _ := d.layers()
		if hidden {
			d.setTarget(-1)
			continue
		}
		layers = fitTile(layers, w, h)
		p := plan{d: d, layers: layers, pick: -1, was: target}
		for _, l := range layers {
			p.rates = append(p.rates, l.rate(now))
		}
		plans = append(plans, p)
	}
	// Everyone gets their lowest layer first, if it fits. A paused video
	// resumes only when the estimate covers it and, once the link has shown
	// a limit, when what it carried lately (a probe's padding included)
	// does too: an estimate that rose on a quiet link proves nothing.
	proven := a.provenLimit()
	for i := range plans {
		p := &plans[i]
		need := p.rates[0]
		paused := p.was < 0
		switch {
		case used+need <= budget && (!paused || sent+need <= proven):
			p.d.alloc.overSince = time.Time{}
			p.pick = 0
		case paused:
			// stays paused until it fits again
		case used+need <= budget*keepTolerance:
			p.pick = 0
		default:
			if p.d.alloc.overSince.IsZero() {
				p.d.alloc.overSince = now
			}
			// GCC cuts its estimate to 0.85 times the rate it sees
			// received on a delay swing alone, which a starved machine
			// shows on a link that loses nothing, and climbs back by
			// about 8% a second: the estimate far under counts only if
			// the link has not carried as much without loss.
			farUnder := used+need > budget/pauseShare && sent+need > a.probe.clean
			severe := farUnder || a.loss(p.d) >= pauseLoss
			if now.Sub(p.d.alloc.overSince) < pauseAfter || !severe {
				p.pick = 0 // a short dip, or a slow link that loses nothing: degrade, do not pause
			}
		}
		if p.pick >= 0 {
			used += need
			sent += need
		}
	}
	// Then layers go up one step at a time, round robin, while they fit:
	// a layer the track already has needs to fit the budget, a higher one
	// with headroom.
	for changed := true; changed; {
		changed = false
		for i := range plans {
			p := &plans[i]
			if p.pick < 0 || p.pick+1 >= len(p.layers) {
				continue
			}
			next := p.pick + 1
			delta := p.rates[next] - p.rates[p.pick]
			fits := used+delta <= budget*upgradeHeadroom
			if p.layers[next].idx <= p.was {
				fits = used+delta <= budget
			}
			if fits {
				used += delta
				sent += delta
				p.pick = next
				changed = true
			}
		}
	}
	// The smallest step up not taken is what a probe is for.
	var step probeStep
	for _, p := range plans {
		var s probeStep
		switch {
		case p.pick < 0:
			s = probeStep{d: p.d, layer: p.layers[0].idx, need: used + p.rates[0], rate: sent + p.rates[0], paused: true}
		case p.pick+1 < len(p.layers):
			delta := p.rates[p.pick+1] - p.rates[p.pick]
			s = probeStep{d: p.d, layer: p.layers[p.pick+1].idx, need: (used + delta) / upgradeHeadroom, rate: sent + delta}
		default:
			continue
		}
		if (step.d == nil || s.need < step.need) && p.d.canPad() {
			step = s
		}
	}
	if a.bwe != nil {
		a.steer(now, budget, step, sent)
	}
	for _, p := range plans {
		target := -1
		if p.pick >= 0 {
			target = p.layers[p.pick].idx
		}
		if target != p.was {
			// The loss and the clean rate the pause rule reads (and GCC's
			// own loss, which it does not), and the packets forwarded so
			// far: a video paused before its first packet never starts a
			// track in a receiver that fires on the first packet (Pion).
			a.p.log.Debug("layer chosen", "track", p.d.id, "layer", target, "was", p.was, "budget", int(min(budget, math.MaxInt32)),
				"loss", math.Round(a.loss(p.d)*1000)/1000, "gccLoss", math.Round(a.probe.loss*1000)/1000, "clean", int(a.probe.clean), "packets", p.d.stats.packets.Load())
		}
		p.d.setTarget(target)
	}
}

// fitTile drops the layers larger than needed for a w by h tile: it keeps
// layers up to the first whose known size covers the tile. Without a tile
// size, or sizes, all layers stay.
func fitTile(layers []*layer, w, h int) []*layer {
	if w <= 0 && h <= 0 {
		return layers
	}
	for i, l := range layers {
		lw, lh := int(l.width.Load()), int(l.height.Load())
		if lw == 0 || lh == 0 {
			continue
		}
		// A layer within 10% of the tile is sharp enough.
		if lw*10 >= w*9 && lh*10 >= h*9 {
			return layers[:i+1]
		}
	}
	return layers
}
