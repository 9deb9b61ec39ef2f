package media

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// Room is one appointment's call.
type Room struct {
	id  int64
	sfu *SFU

	mu           sync.Mutex
	participants map[string]*Participant
	tracks       map[string]*forwarded // by local track id
}

// TrackInfo describes a track offered to a subscriber.
type TrackInfo struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	Participant string `json:"participant"`
}

// forwarded is one published track and the local track that fans it out.
type forwarded struct {
	owner   *Participant
	remote  *webrtc.TrackRemote
	local   *webrtc.TrackLocalStaticRTP
	lastPLI atomic.Int64 // unix nanoseconds of the last keyframe request sent
	packets atomic.Uint64
}

func (f *forwarded) info() TrackInfo {
	return TrackInfo{ID: f.local.ID(), Kind: f.remote.Kind().String(), Participant: f.owner.id}
}

// pliInterval is the shortest time between keyframe requests to a publisher.
const pliInterval = 500 * time.Millisecond

// requestKeyframe asks the publisher for a keyframe, at most twice a second.
func (f *forwarded) requestKeyframe() {
	if f.remote.Kind() != webrtc.RTPCodecTypeVideo {
		return
	}
	now := time.Now().UnixNano()
	last := f.lastPLI.Load()
	if now-last < int64(pliInterval) || !f.lastPLI.CompareAndSwap(last, now) {
		return
	}
	pc := f.owner.publisher()
	if pc == nil {
		return
	}
	_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(f.remote.SSRC())}})
}

// register adds a participant record and returns the tracks it should receive.
func (r *Room) register(id string, sig Signaler) (*Participant, []*forwarded, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.participants[id]; dup {
		return nil, nil, fmt.Errorf("join %s: %w", id, ErrDuplicate)
	}
	p := &Participant{id: id, room: r, sig: sig, senders: make(map[string]*webrtc.RTPSender)}
	r.participants[id] = p
	var existing []*forwarded
	for _, f := range r.tracks {
		existing = append(existing, f)
	}
	return p, existing, nil
}

// addTrack publishes f to every other participant.
func (r *Room) addTrack(f *forwarded) {
	r.mu.Lock()
	r.tracks[f.local.ID()] = f
	others := r.othersLocked(f.owner)
	r.mu.Unlock()
	for _, p := range others {
		p.subscribe(f)
		p.negotiate()
	}
}

// othersLocked lists the participants other than p; r.mu must be held.
func (r *Room) othersLocked(p *Participant) []*Participant {
	var out []*Participant
	for _, o := range r.participants {
		if o != p {
			out = append(out, o)
		}
	}
	return out
}

// removeTrack withdraws f from every subscriber, once.
func (r *Room) removeTrack(f *forwarded) {
	r.mu.Lock()
	if r.tracks[f.local.ID()] != f {
		r.mu.Unlock()
		return
	}
	delete(r.tracks, f.local.ID())
	others := r.othersLocked(f.owner)
	r.mu.Unlock()
	for _, p := range others {
		if p.unsubscribe(f) {
			p.negotiate()
		}
	}
}

// leave removes p and its tracks.
func (r *Room) leave(p *Participant) {
	r.mu.Lock()
	if r.participants[p.id] != p {
		r.mu.Unlock()
		return
	}
	delete(r.participants, p.id)
	var owned []*forwarded
	for _, f := range r.tracks {
		if f.owner == p {
			owned = append(owned, f)
		}
	}
	r.mu.Unlock()
	for _, f := range owned {
		r.removeTrack(f)
	}
	r.sfu.dropIfEmpty(r)
}

// forward copies RTP from the publisher's track to the shared local track
// until the track ends.
func (r *Room) forward(f *forwarded) {
	defer r.removeTrack(f)
	for {
		pkt, _, err := f.remote.ReadRTP()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.sfu.log.Debug("track ended", "room", r.id, "track", f.local.ID(), "err", err)
			}
			return
		}
		f.packets.Add(1)
		if err := f.local.WriteRTP(pkt); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			return
		}
	}
}
