package media

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// slot is one receive section of a viewer's (modeView) only offer: a
// sender whose source changes, as WHEP servers do without renegotiation.
// It carries one published track of its kind at a time; when that track is
// withdrawn, or while the slot is empty, it is fed the first published
// track of its kind that no other slot carries. The new source starts at a
// keyframe and continues the sequence numbers and timestamps of the last,
// so the viewer's decoder sees one stream. Its fields are guarded by the
// participant's subMu; cur is also read by the RTCP reader.
type slot struct {
	kind   webrtc.RTPCodecType
	sender *webrtc.RTPSender
	idle   *idleTrack    // carried while the slot is empty
	sub    *subscription // the track carried, nil while empty
	last   *downTrack    // the last track carried, whose numbering the next continues
	cur    atomic.Pointer[downTrack]
}

// idleTrack is what an empty slot's sender carries: nothing. It binds to
// any codec the viewer negotiated so that the answer still sends on the
// slot and a track can take it over later.
type idleTrack struct {
	id, streamID string
	kind         webrtc.RTPCodecType
}

var _ webrtc.TrackLocal = (*idleTrack)(nil)

// Bind implements webrtc.TrackLocal: the first codec negotiated.
func (t *idleTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if !strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) {
			return c, nil
		}
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

// Unbind implements webrtc.TrackLocal.
func (t *idleTrack) Unbind(webrtc.TrackLocalContext) error { return nil }

// ID implements webrtc.TrackLocal.
func (t *idleTrack) ID() string { return t.id }

// RID implements webrtc.TrackLocal.
func (t *idleTrack) RID() string { return "" }

// StreamID implements webrtc.TrackLocal.
func (t *idleTrack) StreamID() string { return t.streamID }

// Kind implements webrtc.TrackLocal.
func (t *idleTrack) Kind() webrtc.RTPCodecType { return t.kind }

// openSlotsLocked gives every receive section of the viewer's offer, just
// applied, a slot; p.subMu is held.
func (p *Participant) openSlotsLocked() error {
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		for p.freeTransceiver(kind) {
			idle := &idleTrack{id: fmt.Sprintf("%s-%s-slot%d", p.id, kind, len(p.slots)+1), streamID: p.id, kind: kind}
			sender, err := p.sub.pc.AddTrack(idle)
			if err != nil {
				return fmt.Errorf("view: %s section: %w", kind, err)
			}
			s := &slot{kind: kind, sender: sender, idle: idle}
			p.slots = append(p.slots, s)
			go s.readRTCP()
		}
	}
	return nil
}

// readRTCP hands the viewer's RTCP about the slot to the track it carries
// until the connection closes; reading also drives the interceptors.
func (s *slot) readRTCP() {
	readRTCP(s.sender, func(pkts []rtcp.Packet) {
		if d := s.cur.Load(); d != nil {
			d.handleRTCP(pkts, time.Now())
		}
	})
}

// fillSlotLocked puts f on the first empty slot of its kind; it reports
// whether one took it. p.subMu is held.
func (p *Participant) fillSlotLocked(f *publishedTrack) bool {
	for _, s := range p.slots {
		if s.kind == f.kind && s.sub == nil {
			return p.feedLocked(s, f)
		}
	}
	return false
}

// feedLocked makes f the source of the empty slot s. p.subMu is held.
func (p *Participant) feedLocked(s *slot, f *publishedTrack) bool {
	dt := newDownTrack(f, p.queue, &p.subLive)
	if s.last != nil {
		dt.continueFrom(s.last)
	}
	// Binding the new track to the sender's SSRC and codec asks the
	// publisher for a keyframe when media already flows.
	if err := s.sender.ReplaceTrack(dt); err != nil {
		p.log.Warn("cannot feed the viewer's slot", "track", f.id, "err", err)
		return false
	}
	f.addDown(dt)
	s.sub = &subscription{f: f, dt: dt, sender: s.sender}
	p.subs[f.id] = s.sub
	s.cur.Store(dt)
	return true
}

// releaseSlotLocked takes f off the slot carrying it and feeds that slot
// the next track of its kind, if any; it reports whether a slot carried f.
// p.subMu is held.
func (p *Participant) releaseSlotLocked(f *publishedTrack) bool {
	for _, s := range p.slots {
		if s.sub == nil || s.sub.f != f {
			continue
		}
		dt := s.sub.dt
		delete(p.subs, f.id)
		f.removeDown(dt)
		dt.retire()
		s.sub, s.last = nil, dt
		s.cur.Store(nil)
		if err := s.sender.ReplaceTrack(s.idle); err != nil && !p.isClosed() {
			p.log.Warn("cannot empty the viewer's slot", "track", f.id, "err", err)
		}
		if p.isClosed() {
			return true
		}
		for _, next := range p.room.tracksInOrder() {
			if next.kind == s.kind && next.owner != p && p.subs[next.id] == nil && next != f && p.receives(next) {
				if p.feedLocked(s, next) {
					p.log.Info("viewer's slot switched", "from", f.id, "to", next.id)
					break
				}
			}
		}
		return true
	}
	return false
}

// retire stops d forwarding: packets already racing through forward are
// done once this returns, so its numbering is final. The packets it has
// queued are still written, on the slot's stream, after the slot has moved
// on, so the numbering the next track continues has no hole.
func (d *downTrack) retire() {
	d.mu.Lock()
	d.bound, d.retired = false, true
	d.mu.Unlock()
}

// continueFrom makes d, not yet forwarding, continue the numbering of prev, the
// track its slot carried before: sequence numbers, timestamps (advanced by
// the time between), VP8 picture ids and RTX sequence numbers go on from
// prev's last. Video starts with the new source's keyframe.
func (d *downTrack) continueFrom(prev *downTrack) {
	prev.mu.Lock()
	started := prev.started
	lastSeq, lastTS, lastAt := prev.lastSeq, prev.lastTS, prev.lastAt
	lastPic, lastTL0, rtxSeq := prev.lastPic, prev.lastTL0, prev.rtxSeq
	prev.mu.Unlock()
	if !started {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.started, d.continues = true, true
	d.lastSeq, d.lastTS, d.lastAt = lastSeq, lastTS, lastAt
	d.lastPic, d.lastTL0, d.rtxSeq = lastPic, lastTL0, rtxSeq
}
