package media

import (
	"sync"
)

// Room is one appointment's call: its participants and the tracks they
// publish.
type Room struct {
	id  int64
	sfu *SFU

	done chan struct{} // closed when the room closes
	// speakMu orders telling the speaker's name: see detectSpeakers.
	speakMu sync.Mutex

	mu           sync.Mutex
	participants map[string]*Participant
	tracks       map[string]*publishedTrack // by local track id
	speaker      string                     // the dominant speaker's id, "" before anyone spoke
}

func newRoom(s *SFU, id int64) *Room {
	r := &Room{id: id, sfu: s, done: make(chan struct{}), participants: make(map[string]*Participant), tracks: make(map[string]*publishedTrack)}
	go r.detectSpeakers(r.done)
	return r
}

func (r *Room) empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.participants) == 0
}

// register adds p to the room and returns the tracks it should receive.
func (r *Room) register(p *Participant) ([]*publishedTrack, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.participants[p.id]; dup {
		return nil, ErrDuplicate
	}
	r.participants[p.id] = p
	existing := make([]*publishedTrack, 0, len(r.tracks))
	for _, f := range r.tracks {
		existing = append(existing, f)
	}
	return existing, nil
}

// has reports whether f is still published in the room.
func (r *Room) has(f *publishedTrack) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tracks[f.id] == f
}

// othersLocked lists the participants other than p; r.mu must be held.
func (r *Room) othersLocked(p *Participant) []*Participant {
	out := make([]*Participant, 0, len(r.participants))
	for _, o := range r.participants {
		if o != p {
			out = append(out, o)
		}
	}
	return out
}

// addTrack publishes f to every other participant. It reports false if f's
// owner has already left.
func (r *Room) addTrack(f *publishedTrack) bool {
	r.mu.Lock()
	if r.participants[f.owner.id] != f.owner {
		r.mu.Unlock()
		return false
	}
	r.tracks[f.id] = f
	others := r.othersLocked(f.owner)
	r.mu.Unlock()
	r.sfu.log.Info("track published", "room", r.id, "participant", f.owner.id, "track", f.id, "kind", f.kind.String())
	for _, p := range others {
		if p.subscribe(f) {
			p.negotiate()
		}
	}
	return true
}

// removeTrack withdraws f from every subscriber, once.
func (r *Room) removeTrack(f *publishedTrack) {
	r.mu.Lock()
	if r.tracks[f.id] != f {
		r.mu.Unlock()
		return
	}
	delete(r.tracks, f.id)
	others := r.othersLocked(f.owner)
	r.mu.Unlock()
	r.sfu.log.Info("track withdrawn", "room", r.id, "participant", f.owner.id, "track", f.id)
	for _, p := range others {
		if p.unsubscribe(f) {
			p.negotiate()
		}
	}
}

// leave removes p and withdraws its tracks from the others, with one
// renegotiation each; the room closes when its last participant leaves.
func (r *Room) leave(p *Participant) {
	r.mu.Lock()
	if r.participants[p.id] != p {
		r.mu.Unlock()
		return
	}
	delete(r.participants, p.id)
	var owned []*publishedTrack
	for id, f := range r.tracks {
		if f.owner == p {
			owned = append(owned, f)
			delete(r.tracks, id)
		}
	}
	others := r.othersLocked(p)
	r.mu.Unlock()
	r.sfu.log.Info("participant left", "room", r.id, "participant", p.id, "tracks", len(owned))
	for _, o := range others {
		changed := false
		for _, f := range owned {
			if o.unsubscribe(f) {
				changed = true
			}
		}
		if changed {
			o.negotiate()
		}
	}
	r.sfu.dropIfEmpty(r)
}
