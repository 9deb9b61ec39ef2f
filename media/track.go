package media

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// TrackInfo describes a track offered to a subscriber: the id of its local
// track (also the track id in the offer's a=msid, whose stream id is the
// publishing participant's id), its kind and who publishes it.
type TrackInfo struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"` // "audio" or "video"
	Participant string `json:"participant"`
	Name        string `json:"name"`
}

// forwarded is one published track and the local track that fans it out to
// the subscribers.
type forwarded struct {
	owner *Participant
	kind  webrtc.RTPCodecType
	local *webrtc.TrackLocalStaticRTP
	// remote is the publisher's track; nil in tests that build forwarded
	// tracks by hand.
	remote *webrtc.TrackRemote
	pli    throttle
}

func (f *forwarded) id() string { return f.local.ID() }

func (f *forwarded) info() TrackInfo {
	return TrackInfo{ID: f.local.ID(), Kind: f.kind.String(), Participant: f.owner.id, Name: f.owner.name}
}

// pliInterval is the shortest time between keyframe requests for one track.
const pliInterval = 500 * time.Millisecond

// requestKeyframe asks the publisher for a keyframe, at most twice a second.
// It reports whether a request was sent.
func (f *forwarded) requestKeyframe() bool {
	if f.kind != webrtc.RTPCodecTypeVideo || f.remote == nil || !f.pli.allow(time.Now()) {
		return false
	}
	pc := f.owner.publisher()
	if pc == nil {
		return false
	}
	err := pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(f.remote.SSRC())}})
	if err != nil {
		return false
	}
	f.owner.room.sfu.log.Debug("keyframe requested", "room", f.owner.room.id, "track", f.id())
	return true
}

// throttle lets an event through at most once per pliInterval.
type throttle struct {
	mu   sync.Mutex
	last time.Time
}

func (t *throttle) allow(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.last.IsZero() && now.Sub(t.last) < pliInterval {
		return false
	}
	t.last = now
	return true
}

// forward copies RTP from the publisher's track to the local track, which
// writes it to every subscriber, until the publisher's track ends. Then the
// track is withdrawn from the room.
func (f *forwarded) forward() {
	r := f.owner.room
	defer f.owner.trackEnded()
	defer r.removeTrack(f)
	buf := make([]byte, 1500)
	for {
		n, _, err := f.remote.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.sfu.log.Debug("published track ended", "room", r.id, "track", f.id(), "err", err)
			}
			return
		}
		// Write fails only for subscribers that are going away; the others
		// still receive the packet, so the error is not worth a log line
		// per packet.
		_, _ = f.local.Write(buf[:n])
	}
}

// readSubscriberRTCP drains one subscriber's RTCP for one track (reading
// keeps the NACK responder and report interceptors working) and forwards its
// keyframe requests to the publisher.
func (f *forwarded) readSubscriberRTCP(sender *webrtc.RTPSender) {
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

// drainRTCP reads a publisher's RTCP (sender reports) so that the receiver
// report interceptor sees it.
func drainRTCP(r *webrtc.RTPReceiver) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := r.Read(buf); err != nil {
			return
		}
	}
}
