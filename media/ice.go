package media

import (
	"fmt"

	"github.com/pion/webrtc/v4"
)

// RestartICE restarts ICE on the subscribe connection, as a client whose
// network changed asks: the next subscribe offer (at once, or right after
// the answer to an outstanding one) carries new ICE credentials. The client
// restarts its publish connection itself, by offering with new ones.
// Before the first subscribe offer there is nothing to restart.
func (p *Participant) RestartICE() {
	p.subMu.Lock()
	if p.sub.pc.LocalDescription() == nil {
		p.subMu.Unlock()
		return
	}
	p.restart = true
	p.subMu.Unlock()
	p.negotiate()
}

// AddCandidate applies a client ICE candidate to the connection named by
// target (TargetPublish or TargetSubscribe). A candidate that arrives before
// its connection's remote description is held until then.
func (p *Participant) AddCandidate(target string, c webrtc.ICECandidateInit) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	var l *link
	switch target {
	case TargetPublish:
		l = p.pub
	case TargetSubscribe:
		l = p.sub
	default:
		p.mu.Unlock()
		return fmt.Errorf("candidate target %q: want %q or %q", target, TargetPublish, TargetSubscribe)
	}
	if !l.remoteReady {
		defer p.mu.Unlock()
		if len(l.pending) >= maxPendingCandidates {
			return fmt.Errorf("more than %d %s candidates before the %s description", maxPendingCandidates, target, target)
		}
		l.pending = append(l.pending, c)
		return nil
	}
	pc := l.pc
	p.mu.Unlock()
	if err := pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("%s candidate: %w", target, err)
	}
	return nil
}

// remoteApplied marks l's remote description as set and applies the client
// candidates that waited for it.
func (p *Participant) remoteApplied(l *link) {
	p.mu.Lock()
	if l.remoteReady {
		p.mu.Unlock()
		return
	}
	l.remoteReady = true
	pending := l.pending
	l.pending = nil
	pc := l.pc
	p.mu.Unlock()
	for _, c := range pending {
		if err := pc.AddICECandidate(c); err != nil {
			p.log.Debug("held candidate refused", "target", l.target, "err", err)
		}
	}
}

// localCandidate sends a server candidate, or holds it until l's first SDP
// has been sent so that the client never hears of a candidate before the
// session it belongs to.
func (p *Participant) localCandidate(l *link, c *webrtc.ICECandidate) {
	if c == nil {
		return // gathering finished
	}
	init := c.ToJSON()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	if !l.sdpSent {
		l.held = append(l.held, init)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.sig.Candidate(l.target, init)
}

// holdCandidates holds l's server candidates back until its next SDP has
// been sent (sdpSent).
func (p *Participant) holdCandidates(l *link) {
	p.mu.Lock()
	l.sdpSent = false
	p.mu.Unlock()
}

// sdpSent marks l's SDP as sent and sends the candidates held back.
func (p *Participant) sdpSent(l *link) {
	p.mu.Lock()
	if l.sdpSent {
		p.mu.Unlock()
		return
	}
	l.sdpSent = true
	held := l.held
	l.held = nil
	p.mu.Unlock()
	for _, c := range held {
		p.sig.Candidate(l.target, c)
	}
}
