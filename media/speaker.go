package media

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// SpeakerSignaler is implemented by a Signaler that wants to hear who the
// dominant speaker of its room is. The SFU calls Speaker with the speaker's
// participant id each time it changes; like every Signaler method, it must
// not block.
type SpeakerSignaler interface {
	Speaker(participant string)
}

// Active speaker detection, from the audio level each publisher writes in
// its packets (RFC 6464: the level of the audio in -dBov, 0 loudest, 127
// silence). The room looks every speakerTick; a participant's loudness is
// its mean level over the last speakerWindow looks, so that a cough or a
// word does not count as speaking. A challenger takes over from the
// current speaker only after leading for speakerHold looks in a row, by
// speakerMargin dB unless the current speaker has fallen silent.
const (
	speakerTick   = 100 * time.Millisecond
	speakerWindow = 10  // looks averaged: 1 s
	speakerHold   = 8   // looks a challenger must lead: 0.8 s
	speakerMargin = 6.0 // dB
	// speakingFloor is the mean level below which someone is not
	// speaking (background noise in a quiet room is about -60 dBov to
	// -70 dBov; speech -20 dBov to -40 dBov).
	speakingFloor = -55.0
	// silence is the level counted for a look without packets (a muted
	// or discontinuous sender) and the lowest level averaged: far below
	// speech, but not so far that a second of silence hides a second of
	// speech.
	silence = -80.0
)

// audioLevel gathers one audio track's levels between two looks of its
// room's detector. add runs on the track's read loop; take on the
// detector's goroutine. Both use one atomic word: a packet count in the
// high 32 bits and the sum of -levels in the low 32 bits.
type audioLevel struct{ acc atomic.Uint64 }

// add counts one packet's level (0 loudest to 127 silence, in -dBov).
func (a *audioLevel) add(level uint8) {
	a.acc.Add(1<<32 | uint64(level&0x7f))
}

// take returns the mean level (dBov, negative) since the last take, and
// false if no packet carried one.
func (a *audioLevel) take() (float64, bool) {
	v := a.acc.Swap(0)
	n := v >> 32
	if n == 0 {
		return 0, false
	}
	return -float64(v&0xffffffff) / float64(n), true
}

// speakerDetector picks a room's dominant speaker from the levels of each
// look. It is not safe for concurrent use: one goroutine looks.
type speakerDetector struct {
	hist       map[string]*levelHistory
	current    string
	challenger string
	lead       int
}

type levelHistory struct {
	ring [speakerWindow]float64
	next int
}

func (h *levelHistory) push(db float64) {
	h.ring[h.next] = max(db, silence)
	h.next = (h.next + 1) % speakerWindow
}

func (h *levelHistory) mean() float64 {
	var s float64
	for _, v := range h.ring {
		s += v
	}
	return s / speakerWindow
}

func newSpeakerDetector() *speakerDetector {
	return &speakerDetector{hist: make(map[string]*levelHistory)}
}

// look takes one look's mean levels (dBov) of the participants who
// publish audio; one absent from levels has left and is forgotten, one
// present without a level is silent (math.Inf(-1) or any level below
// silence). It returns the dominant speaker ("" before anyone has spoken)
// and whether that changed with this look.
func (d *speakerDetector) look(levels map[string]float64) (string, bool) {
	for id := range d.hist {
		if _, ok := levels[id]; !ok {
			delete(d.hist, id)
		}
	}
	best, bestMean := "", math.Inf(-1)
	for id, db := range levels {
		h := d.hist[id]
		if h == nil {
			h = &levelHistory{}
			for i := range h.ring {
				h.ring[i] = silence
			}
			d.hist[id] = h
		}
		h.push(db)
		if m := h.mean(); m > bestMean || (m == bestMean && id < best) {
			best, bestMean = id, m
		}
	}
	if d.hist[d.current] == nil {
		d.current = "" // the speaker has left
	}
	if bestMean < speakingFloor || best == d.current {
		d.challenger, d.lead = "", 0
		return d.current, false
	}
	margin := 0.0
	if d.current != "" {
		if cur := d.hist[d.current].mean(); cur >= speakingFloor {
			margin = speakerMargin
			if bestMean < cur+margin {
				d.challenger, d.lead = "", 0
				return d.current, false
			}
		}
	}
	if best != d.challenger {
		d.challenger, d.lead = best, 0
	}
	d.lead++
	if d.lead < speakerHold {
		return d.current, false
	}
	d.current, d.challenger, d.lead = best, "", 0
	return d.current, true
}

// detectSpeakers looks at the room's audio levels every speakerTick until
// done is closed, and tells every participant whose Signaler listens when
// the dominant speaker changes.
func (r *Room) detectSpeakers(done <-chan struct{}) {
	tick := time.NewTicker(speakerTick)
	defer tick.Stop()
	d := newSpeakerDetector()
	levels := make(map[string]float64)
	var listeners []SpeakerSignaler
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		clear(levels)
		r.mu.Lock()
		for _, t := range r.tracks {
			if t.kind != webrtc.RTPCodecTypeAudio || t.levelExt == 0 {
				continue
			}
			db, ok := t.level.take()
			if !ok {
				db = math.Inf(-1)
			}
			if prev, seen := levels[t.owner.id]; !seen || db > prev {
				levels[t.owner.id] = db
			}
		}
		r.mu.Unlock()
		who, changed := "", false
		if len(levels) > 0 {
			who, changed = d.look(levels)
		}
		// Setting the speaker and telling the listeners is one step for
		// tellSpeaker, so that a newcomer hears of a change either from
		// here or from tellSpeaker, never a stale name after a fresh one.
		r.speakMu.Lock()
		listeners = listeners[:0]
		r.mu.Lock()
		r.speaker = who // "" once the speaker has left
		if changed {
			for _, p := range r.participants {
				if s, ok := p.sig.(SpeakerSignaler); ok {
					listeners = append(listeners, s)
				}
			}
		}
		r.mu.Unlock()
		if changed {
			r.sfu.log.Debug("dominant speaker", "room", r.id, "participant", who)
		}
		for _, s := range listeners {
			s.Speaker(who)
		}
		r.speakMu.Unlock()
	}
}

// tellSpeaker tells a newcomer to the room who is speaking, if anyone is
// and its Signaler listens.
func (r *Room) tellSpeaker(p *Participant) {
	s, ok := p.sig.(SpeakerSignaler)
	if !ok {
		return
	}
	r.speakMu.Lock()
	defer r.speakMu.Unlock()
	r.mu.Lock()
	who := r.speaker
	r.mu.Unlock()
	if who != "" {
		s.Speaker(who)
	}
}

// audioLevelExtension returns the id the publisher negotiated for the
// audio level header extension on receiver, or 0.
func audioLevelExtension(r *webrtc.RTPReceiver) uint8 {
	for _, e := range r.GetParameters().HeaderExtensions {
		if e.URI == sdp.AudioLevelURI && e.ID > 0 && e.ID < 256 {
			return uint8(e.ID)
		}
	}
	return 0
}
