package media

import (
	"errors"
	"fmt"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// Signaler carries a participant's outgoing signaling to its client.
// Its methods must not block for long (queue, don't write inline).
type Signaler interface {
	// SubscribeOffer sends an offer for the subscribe connection.
	SubscribeOffer(sdp string, tracks []TrackInfo)
	// Candidate sends a server ICE candidate for "publish" or "subscribe".
	Candidate(target string, c webrtc.ICECandidateInit)
}

// Connection names used as ICE candidate targets.
const (
	TargetPublish   = "publish"
	TargetSubscribe = "subscribe"
)

// Participant is one person in a room, with a publish and a subscribe
// peer connection.
type Participant struct {
	id   string
	room *Room
	sig  Signaler
	sub  *webrtc.PeerConnection

	mu          sync.Mutex
	pub         *webrtc.PeerConnection
	senders     map[string]*webrtc.RTPSender // by local track id
	offering    bool                         // an offer awaits its answer
	reoffer     bool                         // tracks changed while offering
	closed      bool
	pendingSubs []webrtc.ICECandidateInit // remote candidates before the remote description
}

// ID is the participant's id in its room.
func (p *Participant) ID() string { return p.id }

func (p *Participant) publisher() *webrtc.PeerConnection {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pub
}

// start creates the subscribe connection and offers the room's tracks.
func (p *Participant) start(existing []*forwarded) error {
	sub, err := p.room.sfu.newPeerConnection()
	if err != nil {
		return fmt.Errorf("subscribe connection: %w", err)
	}
	sub.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			p.sig.Candidate(TargetSubscribe, c.ToJSON())
		}
	})
	p.mu.Lock()
	p.sub = sub
	p.mu.Unlock()
	for _, f := range existing {
		p.subscribe(f)
	}
	if len(existing) > 0 {
		p.negotiate()
	}
	return nil
}

// Publish answers the client's offer for its publish connection.
func (p *Participant) Publish(offer string) (answer string, err error) {
	p.mu.Lock()
	pc := p.pub
	p.mu.Unlock()
	if pc == nil {
		if pc, err = p.newPublisher(); err != nil {
			return "", err
		}
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("publish offer: %w", err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("publish answer: %w", err)
	}
	if err := pc.SetLocalDescription(ans); err != nil {
		return "", fmt.Errorf("publish answer: %w", err)
	}
	return pc.LocalDescription().SDP, nil
}

func (p *Participant) newPublisher() (*webrtc.PeerConnection, error) {
	pc, err := p.room.sfu.newPeerConnection()
	if err != nil {
		return nil, fmt.Errorf("publish connection: %w", err)
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			p.sig.Candidate(TargetPublish, c.ToJSON())
		}
	})
	pc.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		local, err := webrtc.NewTrackLocalStaticRTP(remote.Codec().RTPCodecCapability, remote.Kind().String()+"-"+p.id+"-"+remote.ID(), p.id)
		if err != nil {
			p.room.sfu.log.Warn("cannot forward track", "room", p.room.id, "participant", p.id, "err", err)
			return
		}
		f := &forwarded{owner: p, remote: remote, local: local}
		p.room.addTrack(f)
		go p.room.forward(f)
	})
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		pc.Close()
		return nil, errors.New("participant has left")
	}
	if p.pub != nil { // another Publish raced us
		existing := p.pub
		p.mu.Unlock()
		pc.Close()
		return existing, nil
	}
	p.pub = pc
	p.mu.Unlock()
	return pc, nil
}

// subscribe adds f's local track to the subscribe connection.
func (p *Participant) subscribe(f *forwarded) {
	p.mu.Lock()
	sub, closed := p.sub, p.closed
	_, have := p.senders[f.local.ID()]
	p.mu.Unlock()
	if closed || have || sub == nil {
		return
	}
	sender, err := sub.AddTrack(f.local)
	if err != nil {
		p.room.sfu.log.Warn("cannot subscribe", "room", p.room.id, "participant", p.id, "err", err)
		return
	}
	p.mu.Lock()
	p.senders[f.local.ID()] = sender
	p.mu.Unlock()
	go readRTCP(sender, f)
}

// readRTCP drains a subscriber's RTCP for one track (keeping the NACK and
// report interceptors running) and forwards its keyframe requests.
func readRTCP(sender *webrtc.RTPSender, f *forwarded) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				f.requestKeyframe()
			}
		}
	}
}

// unsubscribe removes f from the subscribe connection; it reports whether
// anything changed.
func (p *Participant) unsubscribe(f *forwarded) bool {
	p.mu.Lock()
	sender, ok := p.senders[f.local.ID()]
	delete(p.senders, f.local.ID())
	sub := p.sub
	p.mu.Unlock()
	if !ok || sub == nil {
		return false
	}
	_ = sub.RemoveTrack(sender)
	return true
}

// negotiate offers the subscribe connection's current tracks, unless an
// offer is outstanding, in which case it offers again after the answer.
func (p *Participant) negotiate() {
	p.mu.Lock()
	if p.closed || p.sub == nil {
		p.mu.Unlock()
		return
	}
	if p.offering {
		p.reoffer = true
		p.mu.Unlock()
		return
	}
	p.offering = true
	sub := p.sub
	p.mu.Unlock()

	offer, err := sub.CreateOffer(nil)
	if err == nil {
		err = sub.SetLocalDescription(offer)
	}
	if err != nil {
		p.room.sfu.log.Warn("subscribe offer failed", "room", p.room.id, "participant", p.id, "err", err)
		p.mu.Lock()
		p.offering = false
		p.mu.Unlock()
		return
	}
	p.sig.SubscribeOffer(sub.LocalDescription().SDP, p.trackInfos())
}

func (p *Participant) trackInfos() []TrackInfo {
	p.mu.Lock()
	ids := make([]string, 0, len(p.senders))
	for id := range p.senders {
		ids = append(ids, id)
	}
	p.mu.Unlock()
	r := p.room
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]TrackInfo, 0, len(ids))
	for _, id := range ids {
		if f := r.tracks[id]; f != nil {
			out = append(out, f.info())
		}
	}
	return out
}

// AnswerSubscribe applies the client's answer to the last subscribe offer,
// then asks the publishers for keyframes so the new tracks start at once.
func (p *Participant) AnswerSubscribe(answer string) error {
	p.mu.Lock()
	sub, offering := p.sub, p.offering
	p.mu.Unlock()
	if sub == nil || !offering {
		return errors.New("subscribe answer without an outstanding offer")
	}
	if err := sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("subscribe answer: %w", err)
	}
	p.mu.Lock()
	p.offering = false
	again := p.reoffer
	p.reoffer = false
	pending := p.pendingSubs
	p.pendingSubs = nil
	ids := make([]string, 0, len(p.senders))
	for id := range p.senders {
		ids = append(ids, id)
	}
	p.mu.Unlock()
	for _, c := range pending {
		_ = sub.AddICECandidate(c)
	}
	p.room.mu.Lock()
	var fs []*forwarded
	for _, id := range ids {
		if f := p.room.tracks[id]; f != nil {
			fs = append(fs, f)
		}
	}
	p.room.mu.Unlock()
	for _, f := range fs {
		f.requestKeyframe()
	}
	if again {
		p.negotiate()
	}
	return nil
}

// AddCandidate applies a client ICE candidate to the named connection.
func (p *Participant) AddCandidate(target string, c webrtc.ICECandidateInit) error {
	p.mu.Lock()
	var pc *webrtc.PeerConnection
	switch target {
	case TargetPublish:
		pc = p.pub
	case TargetSubscribe:
		pc = p.sub
		if pc != nil && pc.RemoteDescription() == nil {
			p.pendingSubs = append(p.pendingSubs, c)
			p.mu.Unlock()
			return nil
		}
	default:
		p.mu.Unlock()
		return fmt.Errorf("candidate target %q: want publish or subscribe", target)
	}
	p.mu.Unlock()
	if pc == nil {
		return fmt.Errorf("candidate for %s before its offer", target)
	}
	if err := pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("candidate: %w", err)
	}
	return nil
}

// Close leaves the room and closes both connections.
func (p *Participant) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	pub, sub := p.pub, p.sub
	p.mu.Unlock()
	p.room.leave(p)
	if pub != nil {
		_ = pub.Close()
	}
	if sub != nil {
		_ = sub.Close()
	}
}
