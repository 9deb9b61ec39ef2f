package media

import (
	"math"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// Probing: a subscriber whose video is paused, or held below the layer its
// tile wants, sends little, and a send-side estimator only learns about
// headroom from traffic it sees acknowledged. GCC in particular raises its
// estimate at most to about one and a half times the rate it sees received
// once it is near its last decrease, so on a link that carries audio alone
// the estimate could stay under what video needs long after the link
// recovered; elsewhere it raises it by about 8% a second whatever the link
// carries, so an estimate that rose on a quiet link proves nothing. Once
// the link has shown congestion, resuming a paused video therefore needs
// both the estimate and the rate the link was seen to carry (proven) to
// cover it; a higher layer needs the estimate to. The allocator probes for
// the smallest step not taken: it fills the gap between what it sends and
// the estimate,
// up to a little over what the step needs, with RTP padding on the video's
// RTX stream (its media stream while paused, if RTX was not negotiated),
// paced in small packets. A probe runs only while the estimator reports
// fresh figures with normal delay, an increasing estimate and little loss;
// it stops at once if any of these turns, and a failed probe backs off
// exponentially, so a link that stays congested sees a few short, bounded
// probes, never a flood that would cost audio. The layer itself comes
// back through the ordinary allocation, on a keyframe.
const (
	probeTick = 20 * time.Millisecond
	// probePacket is the padding carried by one probe packet: RTP padding
	// is counted in one byte.
	probePacket = 255
	// probeBurst bounds the packets owed after a late tick (or two ticks'
	// worth, if more); padding is queued only while the video ring holds
	// at most probeQueued packets, so media arriving meanwhile waits behind at
	// most that many small packets.
	probeBurst  = 8
	probeQueued = 24
	// probeMaxRate bounds the padding rate in bits per second.
	probeMaxRate = 2_000_000
	// probeLoss is the loss above which a probe stops (GCC stops raising
	// its estimate above 2%).
	probeLoss = 0.02
	// A probe fails when neither the estimate nor the rate the link was
	// seen to carry rose by probeRise for probeStall, or when it has run
	// probeMaxRun; the next starts after a gap that doubles from
	// probeMinGap up to probeMaxGap with each failure. A probe that keeps
	// rising is not cut short: GCC raises its estimate by at most about
	// 8% a second, so climbing from an audio-only link's estimate to a
	// paused video's lowest layer takes some 7 to 15 s, and to the top
	// layer over 30; a probe stopped halfway, counted a failure, put the
	// next off by its doubled gap while the link stood free. probeMaxRun
	// only bounds a probe whose estimate creeps up forever.
	probeStall  = 2 * time.Second
	probeMaxRun = 45 * time.Second
	probeRise   = 1.03
	probeMinGap = 2 * time.Second
	// A paused video stays frozen for as long as the gap: on a link that
	// stays congested four failed probes reach it, each stopped at the
	// first sign of congestion.
	probeMaxGap = 16 * time.Second
	// probeFall is how far under a probe's peak its estimate may fall
	// before the probe asks why (estimateFell).
	probeFall = 0.95
)

// provenSlack is how far over what the link was seen to carry a step up
// may go: measured rates differ a little from the layers' (headers).
const provenSlack = 1.1

// probeAim is how far over the step's rate a probe fills the link, so that
// what it is seen to carry covers the step.
const probeAim = 1.25

// prober is a subscriber's probe state, owned by its allocator goroutine.
type prober struct {
	active  bool
	step    probeStep // what the running probe is for
	rate    float64   // padding in bits per second
	credit  float64   // bits of padding owed
	last    time.Time // of the last pacing tick
	started time.Time
	risen   time.Time // when the estimate or the carried rate last rose
	peak    float64   // the highest of the two seen during the probe
	gap     time.Duration
	next    time.Time // no probe starts before

	// proven is the highest rate the link carried since it last showed
	// congestion; once limited (it has shown congestion), steps up must
	// fit in it.
	proven  float64
	limited bool
	// The carried rate: bytes sent, and when, at the start of the window;
	// the last window's rate and start. What is sent is what arrives only
	// while the link is not congested: a window that overlaps congestion,
	// stale figures or a failed probe proves nothing.
	sentAt    time.Time
	sentBy    map[*downTrack]uint64 // each down track's bytes at sentAt
	carried   float64
	carriedAt time.Time
	prev      float64 // the window before: a rate counts once two in a row carried it
	prevAt    time.Time
	troubleAt time.Time
	// clean is the highest rate the link carried since the subscriber
	// last reported loss (cleanLoss or more): unlike proven, a delay-based
	// decrease does not reset it, so that it tells a link that lost
	// nothing from one that did (see allocate). lossAt is when loss was
	// last reported, or the estimator's figures went stale (which only
	// keeps the windows from counting).
	clean  float64
	lossAt time.Time
	// The estimator's last delay measurement, and when it changed; and
	// what the last look at its figures found, and those figures (for the
	// log).
	ready, congested, stale bool
	seen                    bool
	measure                 float64
	updated                 time.Time
	usage, state            string
	loss                    float64
}

// provenLimit is the rate a step up may take the subscriber to: +Inf
// until the link first showed congestion.
func (a *allocator) provenLimit() float64 {
	if !a.probe.limited {
		return math.Inf(1)
	}
	return a.probe.proven * provenSlack
}

// probeStep is the step up a probe is for: down track d going to layer,
// which needs an estimate of need and the link to carry rate (bits per
// second, all the subscriber's streams).
type probeStep struct {
	d          *downTrack
	layer      int
	need, rate float64
	paused     bool // resuming: the carried rate must cover it too
}

// probeStale is how long the estimator may go without an update before
// its figures are stale: GCC's freeze while it holds (a queue draining) or
// when feedback stops coming, and frozen figures say nothing of the link.
const probeStale = time.Second

// linkState reads GCC's statistics: ready when the estimator is raising
// its estimate on fresh feedback with normal delay and little loss (a
// probe may start); congested when its fresh figures show delay or loss
// rising or its estimate falling; stale when they are not fresh. A probe
// stops on either of the last two. An estimator that does not report its
// statistics is never probed.
func (a *allocator) linkState(now time.Time) (ready, congested, stale bool) {
	r, ok := a.bwe.(lossReporter)
	if !ok {
		return false, false, true
	}
	st := r.GetStats()
	pr := &a.probe
	pr.usage, _ = st["usage"].(string)
	pr.state, _ = st["state"].(string)
	// The estimator's own loss: a paused track's last receiver report is
	// as old as the pause.
	pr.loss, _ = st["averageLoss"].(float64)
	m, _ := st["delayMeasurement"].(float64)
	switch {
	case !pr.seen:
		pr.seen, pr.measure = true, m
	case m != pr.measure:
		pr.measure, pr.updated = m, now
	}
	if pr.updated.IsZero() || now.Sub(pr.updated) >= probeStale {
		return false, false, true
	}
	lossy := pr.loss >= probeLoss
	congested = lossy || pr.usage == "overuse" || pr.state == "decrease"
	ready = !lossy && pr.usage == "normal" && pr.state == "increase"
	return ready, congested, false
}

// carried returns what the subscriber was sent, padding included, in bits
// per second over the last second or so. It sums each down track's own
// delta over the window: a track that left during it (a participant gone,
// a WHEP slot switched) takes its lifetime bytes out of a plain total,
// and one that came counts only from its first sighting, so the figure
// errs low, never wildly high.
func (a *allocator) carried(now time.Time, downs []*downTrack) float64 {
	pr := &a.probe
	snap := func() {
		pr.sentAt = now
		pr.sentBy = make(map[*downTrack]uint64, len(downs))
		for _, d := range downs {
			pr.sentBy[d] = d.stats.bytes.Load() + d.stats.padding.Load()
		}
	}
	switch {
	case pr.sentAt.IsZero():
		snap()
	case now.Sub(pr.sentAt) >= 900*time.Millisecond:
		var sent uint64
		for _, d := range downs {
			if was, ok := pr.sentBy[d]; ok {
				if n := d.stats.bytes.Load() + d.stats.padding.Load(); n >= was {
					sent += n - was
				}
			}
		}
		pr.prev, pr.prevAt = pr.carried, pr.carriedAt
		pr.carried = float64(sent) * 8 / now.Sub(pr.sentAt).Seconds()
		pr.carriedAt = pr.sentAt
		snap()
	}
	return pr.carried
}

// observe reads the estimator's figures and what was sent lately, before
// an allocation: it keeps the proven rate, and what steer needs.
func (a *allocator) observe(now time.Time, downs []*downTrack) {
	pr := &a.probe
	// Read every time, so that frozen figures are told from fresh ones.
	pr.ready, pr.congested, pr.stale = a.linkState(now)
	carried := a.carried(now, downs)
	switch {
	case pr.congested:
		// The link showed its limit: any step up is to be proven anew.
		pr.proven, pr.troubleAt, pr.limited = 0, now, true
	case pr.stale:
		pr.troubleAt = now
	case pr.prevAt.After(pr.troubleAt):
		// Two clean windows in a row: a token bucket's burst lets a link
		// carry more than its rate for a second or so, not for two.
		pr.proven = max(pr.proven, min(carried, pr.prev))
	}
	switch {
	case reportedLoss(downs) >= cleanLoss:
		pr.clean, pr.lossAt = 0, now
	case pr.stale:
		pr.lossAt = now
	case pr.prevAt.After(pr.lossAt):
		pr.clean = max(pr.clean, min(carried, pr.prev))
	}
}

// cleanLoss is the loss a receiver report must show for the link's clean
// rate to start again from zero: what GCC takes for congestion.
const cleanLoss = probeLoss

// reportedLoss is the highest loss the subscriber's last receiver reports
// show for the tracks it is sent (a paused video's last report is as old
// as the pause). Receivers count holes in each stream's sequence numbers:
// unlike the loss GCC reads from TWCC feedback, it does not rise when a
// starved receiver reads one stream's packets late, after later packets
// of another.
func reportedLoss(downs []*downTrack) float64 {
	var l float64
	for _, d := range downs {
		if target, _ := d.layers(); target < 0 {
			continue
		}
		l = max(l, float64(d.stats.fractionLost.Load())/256)
	}
	return l
}

// steer starts, adjusts or stops the probe after an allocation. step is
// the smallest step up not taken (no d: none) and sent what the
// allocation sends, in bits per second.
func (a *allocator) steer(now time.Time, budget float64, step probeStep, sent float64) {
	pr := &a.probe
	ready, congested, stale := pr.ready, pr.congested, pr.stale
	wanted := step.d != nil && (step.need > budget || step.paused && step.rate > a.provenLimit())
	progress := budget
	if step.paused {
		progress = min(budget, a.provenLimit())
	}
	if pr.active {
		switch {
		case !wanted || step.d != pr.step.d || step.layer != pr.step.layer:
			// The step was taken, or there is nothing left to probe for.
			a.stopProbe(now, probeDone, "done")
			return
		case congested || stale || a.estimateFell(budget, ready):
			a.stopProbe(now, probeCongested, troubleWhy(congested, stale))
			return
		case budget < pr.peak*probeFall && now.Sub(pr.risen) < probeStall:
			// GCC capped its estimate at 1.5 times the rate it sees
			// received (estimateFell): the climb goes on from here, and
			// must rise again within probeStall like any other.
			a.p.log.Debug("probe goes on", "track", pr.step.d.id, "budget", int(budget), "peak", int(pr.peak), "carried", int(pr.carried))
			pr.peak = progress
		case progress > pr.peak*probeRise:
			pr.peak, pr.risen = progress, now
		case now.Sub(pr.risen) >= probeStall:
			a.stopProbe(now, probeStalled, "no progress")
			return
		}
		if now.Sub(pr.started) >= probeMaxRun {
			a.stopProbe(now, probeStalled, "time up")
			return
		}
	} else {
		if !wanted || !ready || math.IsInf(budget, 1) || now.Before(pr.next) {
			return
		}
		pr.active, pr.step, pr.started, pr.risen, pr.peak, pr.last, pr.credit = true, step, now, now, progress, now, 0
		step.d.stats.probes.Add(1)
		a.p.log.Debug("probe started", "track", step.d.id, "layer", step.layer, "budget", int(budget), "need", int(step.need), "rate", int(step.rate), "proven", int(min(pr.proven, math.MaxInt32)))
		if a.pace != nil {
			a.pace.Reset(probeTick)
		}
	}
	pr.rate = min(max(min(budget, step.rate*probeAim)-sent, 0), probeMaxRate)
}

// healthy stops the probe, as failed, if the estimator reports congestion
// or went quiet, or its estimate fell; it reports whether the probe goes
// on.
func (a *allocator) healthy(now time.Time, budget float64) bool {
	if ready, congested, stale := a.linkState(now); congested || stale || a.estimateFell(budget, ready) {
		a.stopProbe(now, probeCongested, troubleWhy(congested, stale))
		return false
	}
	return true
}

// estimateFell reports whether the estimate fell below probeFall of the
// probe's peak in a way that says the link did not carry the probe: GCC decreases
// to 0.85 times the rate it sees received, under what was sent. When it
// raises its estimate near the rates of its last decreases, Pion's GCC
// also caps it at 1.5 times the rate received, so an estimate that rose
// on a quiet link during the gap before a probe falls back as the probe
// starts, before its padding has been seen; on fresh figures showing
// normal delay and an increasing estimate, a fall that leaves the
// estimate above what the link carried is that cap, not congestion.
// Counted as a failure it had doubled the gap at each of several probes
// on a free link, putting a paused video's top layer off by 16 s.
func (a *allocator) estimateFell(budget float64, ready bool) bool {
	pr := &a.probe
	return budget < pr.peak*probeFall && (!ready || budget < pr.carried)
}

// troubleWhy names, for the log, what stopped a probe on a link in trouble:
// the estimator's fresh figures showing congestion, figures gone stale, or
// else the estimate fallen below probeFall of its peak.
func troubleWhy(congested, stale bool) string {
	switch {
	case congested:
		return "congestion"
	case stale:
		return "stale figures"
	}
	return "estimate fell"
}

// How a probe ended.
const (
	probeDone      = iota // the step was taken, or is no longer wanted
	probeStalled          // nothing rose, or its time ran out
	probeCongested        // the link did not carry it
)

// stopProbe ends the running probe. After a success the next may start at
// once; otherwise the next waits for the gap, which doubles. If the link
// did not carry what was sent, the proven rate starts again from zero.
func (a *allocator) stopProbe(now time.Time, outcome int, why string) {
	pr := &a.probe
	switch outcome {
	case probeDone:
		pr.gap, pr.next = probeMinGap, now
	default:
		pr.gap = max(pr.gap, probeMinGap)
		pr.next = now.Add(pr.gap)
		pr.gap = min(2*pr.gap, probeMaxGap)
	}
	if outcome == probeCongested {
		pr.proven, pr.troubleAt, pr.limited = 0, now, true
	}
	// The figures are those the last look at the estimator read.
	a.p.log.Debug("probe stopped", "track", pr.step.d.id, "why", why, "ran", now.Sub(pr.started).Round(time.Millisecond), "next", pr.next.Sub(now),
		"budget", int(a.budget()), "peak", int(pr.peak), "carried", int(pr.carried), "usage", pr.usage, "state", pr.state, "loss", pr.loss)
	pr.active, pr.step, pr.rate, pr.credit = false, probeStep{}, 0, 0
	if a.pace != nil {
		a.pace.Stop()
	}
}

// pad sends the padding owed since the last tick, checking first that the
// estimator still sees a healthy link.
func (a *allocator) pad(now time.Time) {
	pr := &a.probe
	if !pr.active {
		return
	}
	if !a.healthy(now, a.budget()) {
		return
	}
	dt := now.Sub(pr.last)
	pr.last = now
	// Bits owed never exceed two ticks' worth or a burst, so a late tick
	// does not flood.
	const size = float64((probePacket + 12) * 8)
	pr.credit = min(pr.credit+pr.rate*dt.Seconds(), max(probeBurst*size, 2*pr.rate*probeTick.Seconds()))
	for pr.credit >= size {
		if !pr.step.d.pad(probePacket) {
			return // the queue is busy: try again next tick
		}
		pr.credit -= size
	}
}

// paddingWriter sits under the bandwidth estimator in the subscribe
// stack's interceptor chain. A probe packet comes down as a packet marked
// padded with no padding size whose payload is the padding, so that the
// estimator counts its bytes; here it becomes what goes on the wire, a
// padding-only packet of that many bytes.
type paddingWriter struct{ next interceptor.RTPWriter }

func (w paddingWriter) Write(h *rtp.Header, payload []byte, attr interceptor.Attributes) (int, error) {
	if h.Padding && h.PaddingSize == 0 && len(payload) > 0 && len(payload) <= probePacket {
		h.PaddingSize = byte(len(payload))
		payload = nil
	}
	return w.next.Write(h, payload, attr)
}
