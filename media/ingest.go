package media

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/webrtc/v4"
)

// mode is what a participant does in its room.
type mode int

const (
	// modeCall publishes and subscribes, negotiating over its Signaler
	// (a browser on the signaling WebSocket).
	modeCall mode = iota
	// modePublishOnly publishes and receives nothing (a WHIP client).
	modePublishOnly
	// modeView receives on the slots its one offer made and publishes
	// nothing (a WHEP client).
	modeView
)

// ErrNoCodec reports a viewer's offer that can receive none of the codecs
// of the video published in the room.
var ErrNoCodec = errors.New("the offer accepts none of the published video's codecs")

// quietSignaler drops outgoing signaling: WHIP and WHEP clients get one
// answer with every candidate in it, and nothing after.
type quietSignaler struct{}

func (quietSignaler) PublishAnswer(string)                      {}
func (quietSignaler) SubscribeOffer(string, []TrackInfo)        {}
func (quietSignaler) Candidate(string, webrtc.ICECandidateInit) {}

var _ Signaler = quietSignaler{}

// Ingest adds a participant that only publishes (a WHIP client such as an
// exam camera) to the appointment's room. It applies the client's offer and
// returns the answer once ICE gathering has finished, so the answer holds
// every server candidate (WHIP without trickle). The tracks the client
// sends are offered to everyone else in the room under name. Close the
// participant to end it.
func (s *SFU) Ingest(ctx context.Context, appointment int64, id, name, offer string) (*Participant, string, error) {
	p, _, err := s.join(appointment, id, name, quietSignaler{}, modePublishOnly)
	if err != nil {
		return nil, "", err
	}
	pc, err := p.applyPublishOffer(offer)
	if err != nil {
		p.Close()
		return nil, "", err
	}
	answer, err := complete(ctx, pc)
	if err != nil {
		p.Close()
		return nil, "", err
	}
	p.sdpSent(p.pub)
	return p, answer, nil
}

// View adds a participant that only receives (a WHEP client) to the
// appointment's room. Each receive section of the client's offer is a slot
// fed one published track of its kind at a time, the first published
// first: a slot whose track is withdrawn, or that was empty, is fed the
// next track of its kind published and not on another slot, from a
// keyframe and without a break in its numbering, with no renegotiation. A
// room with nothing published yet gives a viewer empty slots that fill as
// tracks come. The answer is returned once ICE gathering has finished.
// ErrNoCodec reports an offer that can receive none of the published video
// and so gets nothing at all.
func (s *SFU) View(ctx context.Context, appointment int64, id, name, offer string) (*Participant, string, error) {
	p, _, err := s.join(appointment, id, name, quietSignaler{}, modeView)
	if err != nil {
		return nil, "", err
	}
	answer, err := p.answerView(ctx, offer)
	if err != nil {
		p.Close()
		return nil, "", err
	}
	return p, answer, nil
}

// answerView applies a viewer's offer to its subscribe connection, opens
// its slots and feeds them the room's tracks, and answers.
func (p *Participant) answerView(ctx context.Context, offer string) (string, error) {
	p.subMu.Lock()
	pc := p.sub.pc
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		p.subMu.Unlock()
		return "", fmt.Errorf("view offer: %w", err)
	}
	if err := p.openSlotsLocked(); err != nil {
		p.subMu.Unlock()
		return "", err
	}
	for _, f := range p.room.tracksInOrder() {
		if f.owner != p {
			p.subscribeLocked(f)
		}
	}
	if len(p.subs) == 0 && p.codecMissing {
		p.subMu.Unlock()
		return "", ErrNoCodec
	}
	answer, err := pc.CreateAnswer(nil)
	if err == nil {
		err = pc.SetLocalDescription(answer)
	}
	p.subMu.Unlock()
	if err != nil {
		return "", fmt.Errorf("view answer: %w", err)
	}
	p.remoteApplied(p.sub)
	sdp, err := complete(ctx, pc)
	if err != nil {
		return "", err
	}
	p.sdpSent(p.sub)
	return sdp, nil
}

// freeTransceiver reports whether the subscribe connection has a
// transceiver of kind with no track yet (one the viewer's offer made).
func (p *Participant) freeTransceiver(kind webrtc.RTPCodecType) bool {
	for _, t := range p.sub.pc.GetTransceivers() {
		if t.Kind() == kind && t.Sender() == nil && t.Direction() != webrtc.RTPTransceiverDirectionInactive {
			return true
		}
	}
	return false
}

// complete waits until pc has gathered its ICE candidates and returns its
// local description, which then lists them all.
func complete(ctx context.Context, pc *webrtc.PeerConnection) (string, error) {
	select {
	case <-webrtc.GatheringCompletePromise(pc):
	case <-ctx.Done():
		return "", fmt.Errorf("gathering candidates: %w", ctx.Err())
	}
	return pc.LocalDescription().SDP, nil
}

// tracksInOrder lists the room's tracks, the first published first.
func (r *Room) tracksInOrder() []*publishedTrack {
	r.mu.Lock()
	out := make([]*publishedTrack, 0, len(r.tracks))
	for _, f := range r.tracks {
		out = append(out, f)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b *publishedTrack) int { return trackSeq(a.id) - trackSeq(b.id) })
	return out
}

// trackSeq is the sequence number that ends a local track id.
func trackSeq(id string) int {
	n, _ := strconv.Atoi(id[strings.LastIndexByte(id, '-')+1:])
	return n
}
