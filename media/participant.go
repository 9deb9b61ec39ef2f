package media

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Signaler carries a participant's outgoing signaling to its client. Its
// methods are called from Pion's goroutines and from other participants'
// calls, so they must not block: queue the message, don't write it inline.
type Signaler interface {
	// PublishAnswer sends the answer to the client's publish offer.
	PublishAnswer(sdp string)
	// SubscribeOffer sends an offer for the subscribe connection and the
	// tracks it carries.
	SubscribeOffer(sdp string, tracks []TrackInfo)
	// Candidate sends a server ICE candidate for TargetPublish or
	// TargetSubscribe. Candidates of a connection are sent only after its
	// first answer or offer.
	Candidate(target string, c webrtc.ICECandidateInit)
}

// Connection names used as ICE candidate targets.
const (
	TargetPublish   = "publish"
	TargetSubscribe = "subscribe"
)

// Limits on what one client may make the server hold.
const (
	maxPendingCandidates = 64 // client candidates held until a description arrives
	maxPublishedTracks   = 4  // tracks forwarded per participant
)

// link is the signaling state of one of a participant's peer connections;
// its fields are guarded by the participant's mu.
type link struct {
	target      string
	pc          *webrtc.PeerConnection // nil until the publish offer
	remoteReady bool                   // a remote description has been applied
	pending     []webrtc.ICECandidateInit
	sdpSent     bool // our first offer or answer has gone out
	held        []webrtc.ICECandidateInit
}

// subscription is one forwarded track on a subscribe connection.
type subscription struct {
	f      *publishedTrack
	dt     *downTrack
	sender *webrtc.RTPSender
	fresh  bool // added since the last answer
}

// Participant is one person in a room, with a publish and a subscribe peer
// connection. Its methods are safe for concurrent use.
type Participant struct {
	id, name string
	room     *Room
	sig      Signaler
	log      *slog.Logger
	mode     mode

	pubMu sync.Mutex // serialises Publish

	mu        sync.Mutex
	closed    bool
	pub, sub  *link
	published map[*webrtc.RTPReceiver]*publishedTrack
	screenMid string // the publish transceiver carrying a screen share

	// queue carries every packet to this participant's subscribe
	// connection; alloc picks its video layers until done closes.
	queue    *sendQueue
	subLive  atomic.Bool // the subscribe connection carries media
	alloc    *allocator
	done     chan struct{}
	stopOnce sync.Once

	// subMu serialises changes to the subscribe connection: adding and
	// removing tracks, offering and applying answers. It is never held
	// across network I/O (those calls only change local state).
	subMu    sync.Mutex
	subs     map[string]*subscription // by local track id
	offering bool                     // an offer awaits its answer
	reoffer  bool                     // tracks changed while offering
	restart  bool                     // the next offer restarts ICE
	// slots are a viewer's (modeView) receive sections, in offer order,
	// each fed one published track at a time.
	slots []*slot
	// codecMissing is set when a track was not offered because the
	// subscriber cannot receive its codec.
	codecMissing bool
}

func newParticipant(r *Room, id, name string, sig Signaler, m mode, sub *webrtc.PeerConnection, bwe cc.BandwidthEstimator) *Participant {
	p := &Participant{
		id: id, name: name, room: r, sig: sig, mode: m,
		log:       r.sfu.log.With("room", r.id, "participant", id),
		pub:       &link{target: TargetPublish},
		sub:       &link{target: TargetSubscribe, pc: sub},
		subs:      make(map[string]*subscription),
		published: make(map[*webrtc.RTPReceiver]*publishedTrack),
		queue:     newSendQueue(),
		done:      make(chan struct{}),
	}
	p.alloc = newAllocator(p)
	if bwe != nil {
		p.alloc.bwe = bwe
		// React to a falling estimate at once, not at the next tick.
		bwe.OnTargetBitrateChange(func(int) { p.alloc.kick() })
	}
	go p.alloc.run(p.done)
	sub.OnICECandidate(func(c *webrtc.ICECandidate) { p.localCandidate(p.sub, c) })
	sub.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.log.Debug("subscribe connection", "state", s.String())
		switch s {
		case webrtc.PeerConnectionStateConnected:
			// Media can now flow: ask for keyframes so that video starts
			// at once instead of at the publisher's next keyframe.
			p.subLive.Store(true)
			p.requestKeyframes()
		case webrtc.PeerConnectionStateFailed:
			p.log.Warn("subscribe connection failed")
			if p.mode == modeView {
				go p.Close() // a viewer has nothing else to recover with
			}
		}
	})
	return p
}

// ID is the participant's id in its room.
func (p *Participant) ID() string { return p.id }

// Done is closed when the participant has left: Close was called, or the
// connection of a WHIP or WHEP participant failed.
func (p *Participant) Done() <-chan struct{} { return p.done }

func (p *Participant) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

func (p *Participant) publisher() *webrtc.PeerConnection {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pub.pc
}

// stop ends the participant's queue and allocator.
func (p *Participant) stop() {
	p.stopOnce.Do(func() {
		close(p.done)
		p.queue.close()
	})
}

// start offers the tracks already published when p joined.
func (p *Participant) start(existing []*publishedTrack) {
	changed := false
	for _, f := range existing {
		if p.subscribe(f) {
			changed = true
		}
	}
	if changed {
		p.negotiate()
	}
}

// Publish applies the client's offer for its publish connection and sends
// the answer through the Signaler. The client may offer again later (to add
// or remove tracks) on the same connection.
func (p *Participant) Publish(offer string) error {
	pc, err := p.applyPublishOffer(offer)
	if err != nil {
		return err
	}
	p.sig.PublishAnswer(pc.LocalDescription().SDP)
	p.sdpSent(p.pub)
	return nil
}

// SetScreen names the mid of the publish transceiver that carries the
// participant's screen share ("" for none), for the next offer's tracks: a
// track first received on it is offered to the others with source
// SourceScreen. It is forwarded like any other video track.
func (p *Participant) SetScreen(mid string) {
	p.mu.Lock()
	p.screenMid = mid
	p.mu.Unlock()
}

// midOf returns the mid of the publish transceiver of receiver, or "".
func midOf(pc *webrtc.PeerConnection, receiver *webrtc.RTPReceiver) string {
	if pc == nil {
		return ""
	}
	for _, tr := range pc.GetTransceivers() {
		if tr.Receiver() == receiver {
			return tr.Mid()
		}
	}
	return ""
}

// applyPublishOffer applies an offer to the publish connection, creating
// it first if needed, and sets the answer as its local description.
func (p *Participant) applyPublishOffer(offer string) (*webrtc.PeerConnection, error) {
	if p.mode == modeView {
		return nil, errors.New("a viewer does not publish")
	}
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	p.mu.Lock()
	l := p.pub
	pc := l.pc
	p.mu.Unlock()
	if pc == nil {
		var err error
		if pc, err = p.newPublisher(l); err != nil {
			return nil, err
		}
	} else {
		// A re-offer may restart ICE: hold the candidates of the new
		// generation until the answer that starts it has gone out.
		p.holdCandidates(l)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		if pc.SignalingState() != webrtc.SignalingStateStable {
			// Pion may keep a half-applied offer it cannot roll back:
			// start afresh with the client's next offer.
			p.dropPublisher(pc)
			return nil, fmt.Errorf("publish offer (the publish connection was reset; offer again on a new one): %w", err)
		}
		p.sdpSent(l) // nothing changed: release what was held
		return nil, fmt.Errorf("publish offer: %w", err)
	}
	p.remoteApplied(l)
	answer, err := pc.CreateAnswer(nil)
	if err == nil {
		err = pc.SetLocalDescription(answer)
	}
	if err != nil {
		return nil, fmt.Errorf("publish answer: %w", err)
	}
	return pc, nil
}

// newPublisher creates the publish connection of l.
func (p *Participant) newPublisher(l *link) (*webrtc.PeerConnection, error) {
	pc, err := p.room.sfu.newPublishConnection()
	if err != nil {
		return nil, fmt.Errorf("publish connection: %w", err)
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) { p.localCandidate(l, c) })
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.log.Debug("publish connection", "state", s.String())
		if s == webrtc.PeerConnectionStateFailed {
			p.log.Warn("publish connection failed")
			if p.mode == modePublishOnly {
				go p.Close() // a WHIP client starts a new session instead
			}
		}
	})
	pc.OnTrack(p.onTrack)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.pub != l {
		_ = pc.Close()
		return nil, ErrClosed
	}
	l.pc = pc
	return pc, nil
}

// dropPublisher closes pc and forgets it, so that the next offer starts a
// new publish connection.
func (p *Participant) dropPublisher(pc *webrtc.PeerConnection) {
	p.mu.Lock()
	if p.pub.pc == pc {
		p.pub = &link{target: TargetPublish}
	}
	p.mu.Unlock()
	_ = pc.Close()
}

// onTrack starts forwarding a track the client publishes, or one more
// simulcast layer of it: the layers of a track share its receiver.
func (p *Participant) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	go drainRTCP(receiver, remote.RID())
	kind := remote.Kind().String()
	idx, ok := layerIndex(remote.RID())
	if !ok {
		p.log.Warn("unknown simulcast rid; layer ignored", "kind", kind, "rid", remote.RID())
		return
	}
	mid := midOf(p.publisher(), receiver)
	p.mu.Lock()
	t := p.published[receiver]
	fresh := t == nil
	if fresh {
		if len(p.published) >= maxPublishedTracks {
			p.mu.Unlock()
			p.log.Warn("too many published tracks; track ignored", "kind", kind)
			return
		}
		id := fmt.Sprintf("%s-%s-%d", p.id, kind, p.room.sfu.trackSeq.Add(1))
		t = newPublishedTrack(p, id, remote.Kind(), remote.Codec().RTPCodecCapability)
		t.receiver = receiver
		if t.kind == webrtc.RTPCodecTypeAudio {
			t.levelExt = audioLevelExtension(receiver)
		}
		if mid != "" && mid == p.screenMid && remote.Kind() == webrtc.RTPCodecTypeVideo {
			t.source = SourceScreen
		}
		p.published[receiver] = t
	}
	l := t.addLayer(idx, remote.RID(), remote)
	p.mu.Unlock()
	if l == nil {
		return
	}
	go t.read(l)
	if fresh {
		go t.sendKeyframeRequests()
		p.room.addTrack(t)
	}
}

// trackEnded withdraws a published track whose layers have all ended and
// frees its place.
func (p *Participant) trackEnded(t *publishedTrack) {
	p.room.removeTrack(t)
	p.mu.Lock()
	if p.published[t.receiver] == t {
		delete(p.published, t.receiver)
	}
	p.mu.Unlock()
}

// subscribe adds f to the subscribe connection; it reports whether anything
// changed.
func (p *Participant) subscribe(f *publishedTrack) bool {
	p.subMu.Lock()
	defer p.subMu.Unlock()
	return p.subscribeLocked(f)
}

// subscribeLocked is subscribe with p.subMu held.
func (p *Participant) subscribeLocked(f *publishedTrack) bool {
	// Checking the room under subMu orders this against removeTrack, which
	// takes f out of the room before unsubscribing.
	if p.isClosed() || p.subs[f.id] != nil || !p.room.has(f) {
		return false
	}
	if !p.receives(f) {
		p.codecMissing = true
		return false
	}
	switch p.mode {
	case modePublishOnly:
		return false
	case modeView:
		// A viewer receives on the slots its one offer made.
		return p.fillSlotLocked(f)
	}
	dt := newDownTrack(f, p.queue, &p.subLive)
	sender, err := p.sub.pc.AddTrack(dt)
	if err != nil {
		p.log.Warn("cannot subscribe", "track", f.id, "err", err)
		return false
	}
	f.addDown(dt)
	p.subs[f.id] = &subscription{f: f, dt: dt, sender: sender, fresh: true}
	go dt.readRTCP(sender)
	return true
}

// unsubscribe removes f from the subscribe connection; it reports whether
// anything changed.
func (p *Participant) unsubscribe(f *publishedTrack) bool {
	p.subMu.Lock()
	defer p.subMu.Unlock()
	return p.unsubscribeLocked(f)
}

// unsubscribeLocked is unsubscribe with p.subMu held.
func (p *Participant) unsubscribeLocked(f *publishedTrack) bool {
	if p.mode == modeView {
		return p.releaseSlotLocked(f)
	}
	s := p.subs[f.id]
	if s == nil {
		return false
	}
	delete(p.subs, f.id)
	f.removeDown(s.dt)
	if err := p.sub.pc.RemoveTrack(s.sender); err != nil && !p.isClosed() {
		p.log.Warn("cannot unsubscribe", "track", f.id, "err", err)
	}
	return true
}

// receives reports whether the subscriber can take f's codec, as far as
// its last description (a viewer's offer, a browser's answer) tells: VP8
// and audio always, H.264 if listed for video. Before any description it
// is assumed; a wrong guess is withdrawn after the answer.
func (p *Participant) receives(f *publishedTrack) bool {
	if f.kind != webrtc.RTPCodecTypeVideo || f.vp8 {
		return true
	}
	rd := p.sub.pc.RemoteDescription()
	if rd == nil {
		return true
	}
	// Parse a copy: rd is Pion's own, and its Unmarshal caches into it.
	var d sdp.SessionDescription
	if err := d.Unmarshal([]byte(rd.SDP)); err != nil {
		return true
	}
	name := strings.TrimPrefix(strings.ToLower(f.codec.MimeType), "video/") + "/"
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "video" {
			continue
		}
		for _, a := range m.Attributes {
			if _, enc, ok := strings.Cut(a.Value, " "); ok && a.Key == "rtpmap" && strings.HasPrefix(strings.ToLower(enc), name) {
				return true
			}
		}
	}
	return false
}

// downTracks lists the subscribe connection's down tracks.
func (p *Participant) downTracks() []*downTrack {
	p.subMu.Lock()
	defer p.subMu.Unlock()
	out := make([]*downTrack, 0, len(p.subs))
	for _, s := range p.subs {
		out = append(out, s.dt)
	}
	return out
}

// SetTile tells the SFU how large the participant draws a video track it
// receives, in device pixels, so that it is sent no larger a simulcast layer
// than that needs; 0 by 0 means the video is not shown and is paused.
func (p *Participant) SetTile(track string, width, height int) error {
	if width < 0 || height < 0 || width > maxTileSide || height > maxTileSide {
		return fmt.Errorf("tile %dx%d: sides must be 0 to %d", width, height, maxTileSide)
	}
	p.subMu.Lock()
	s := p.subs[track]
	p.subMu.Unlock()
	if s == nil {
		return fmt.Errorf("tile: %q is not a track you receive", track)
	}
	if s.f.kind != webrtc.RTPCodecTypeVideo {
		return fmt.Errorf("tile: %q is not a video track", track)
	}
	s.dt.setTile(width, height)
	p.alloc.kick()
	return nil
}

// maxTileSide bounds a tile's width and height (an 8K screen).
const maxTileSide = 8192

// negotiate offers the subscribe connection's current tracks, unless an
// offer is outstanding, in which case it offers again after the answer.
func (p *Participant) negotiate() {
	if p.mode != modeCall {
		return // a publisher has no subscriptions; a viewer's slots switch without renegotiation
	}
	p.subMu.Lock()
	if p.isClosed() {
		p.subMu.Unlock()
		return
	}
	if p.offering {
		p.reoffer = true
		p.subMu.Unlock()
		return
	}
	pc := p.sub.pc
	var opts *webrtc.OfferOptions
	if p.restart && pc.LocalDescription() != nil {
		// Candidates of the new generation wait for this offer.
		p.holdCandidates(p.sub)
		opts = &webrtc.OfferOptions{ICERestart: true}
	}
	offer, err := pc.CreateOffer(opts)
	if err == nil {
		err = pc.SetLocalDescription(offer)
	}
	if err != nil {
		p.subMu.Unlock()
		if !p.isClosed() {
			p.log.Warn("subscribe offer failed", "err", err)
		}
		return
	}
	if opts != nil {
		p.log.Info("subscribe connection restarts ICE")
	}
	p.restart = false
	p.offering = true
	sdp := pc.LocalDescription().SDP
	tracks := p.trackInfosLocked()
	p.subMu.Unlock()
	p.sig.SubscribeOffer(sdp, tracks)
	p.sdpSent(p.sub)
}

// trackInfosLocked lists the subscribed tracks by id; p.subMu must be held.
func (p *Participant) trackInfosLocked() []TrackInfo {
	out := make([]TrackInfo, 0, len(p.subs))
	for _, s := range p.subs {
		out = append(out, s.f.info())
	}
	slices.SortFunc(out, func(a, b TrackInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// AnswerSubscribe applies the client's answer to the outstanding subscribe
// offer. Then it asks the publishers of newly added video for keyframes, and
// offers again if the tracks changed meanwhile. An answer that cannot be
// applied is refused and the offer stays outstanding.
func (p *Participant) AnswerSubscribe(answer string) error {
	p.subMu.Lock()
	if p.isClosed() {
		p.subMu.Unlock()
		return ErrClosed
	}
	if !p.offering {
		p.subMu.Unlock()
		return errors.New("subscribe answer without an outstanding offer")
	}
	pc := p.sub.pc
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		p.subMu.Unlock()
		return fmt.Errorf("subscribe answer: %w", err)
	}
	p.offering = false
	again := p.reoffer
	p.reoffer = false
	// A track whose codec the answer did not take would stay a black
	// tile: withdraw it (receives keeps it from coming back).
	for _, s := range p.subs {
		if !s.dt.usable() {
			p.log.Info("subscriber cannot receive the track's codec; withdrawn", "track", s.f.id, "codec", s.f.codec.MimeType)
			p.unsubscribeLocked(s.f)
			again = true
		}
	}
	var fresh []*downTrack
	for _, s := range p.subs {
		if s.fresh {
			s.fresh = false
			fresh = append(fresh, s.dt)
		}
	}
	connected := pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	p.subMu.Unlock()
	p.remoteApplied(p.sub)
	// Before the connection is up, the connected handler asks instead.
	if connected {
		for _, d := range fresh {
			d.requestKeyframe()
		}
	}
	if again {
		p.negotiate()
	}
	return nil
}

// requestKeyframes asks the publisher of every subscribed video track for a
// keyframe.
func (p *Participant) requestKeyframes() {
	for _, d := range p.downTracks() {
		d.requestKeyframe()
	}
}

// Close leaves the room (the others are re-offered without p's tracks) and
// closes both connections. It is safe to call more than once.
func (p *Participant) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	pub, sub := p.pub.pc, p.sub.pc
	p.mu.Unlock()
	p.room.leave(p)
	p.subMu.Lock()
	for _, s := range p.subs {
		s.f.removeDown(s.dt)
	}
	p.subMu.Unlock()
	p.stop()
	if pub != nil {
		_ = pub.Close()
	}
	_ = sub.Close()
}
