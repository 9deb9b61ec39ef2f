package live

import "sync"

// stream is one patient's live stream on this node. In-process it assigns
// offsets itself; with a Feed it mirrors the shared stream, applying
// entries in offset order as they arrive and repairing holes from the feed.
type stream struct {
	hub     *Hub
	patient int64

	mu        sync.Mutex
	epoch     string // "" until a mirrored stream has its first message
	local     bool   // with a Feed: the epoch was made here while the feed failed
	last      int64
	hist      ring
	viewers   []*Viewer
	loaded    bool            // with a Feed: the snapshot is applied
	loadWait  chan struct{}   // closed once loaded; without a Feed, loaded (shared by every such stream)
	pending   map[int64]Entry // ahead of last+1, waiting for the hole to fill
	pendEpoch string
	left      [4]leftEpoch // with a Feed: shared epochs it left to go alone, newest first
	repairing bool
	touched   int64 // Unix ms of the last message or viewer change
	dead      bool  // removed from the hub: subscribe again
}

// leftEpoch is a shared epoch a stream left to go alone, and the hub's
// tick (Hub.ticks) after which an append's reply of it means it is the
// shared epoch again.
type leftEpoch struct {
	epoch string
	at    int64
}

func newStream(h *Hub, patient int64) *stream {
	s := &stream{hub: h, patient: patient, hist: newRing(h.cfg.HistoryMessages, h.cfg.HistoryBytes), loadWait: nothingToLoad}
	if h.feed != nil {
		s.loadWait = make(chan struct{})
	}
	return s
}

// nothingToLoad is the loadWait of a stream that has nothing to load (a hub
// without a Feed): closed from the start, one for all of them, rather
// than a channel each (96 bytes a patient).
var nothingToLoad = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// appendLocked adds the entry with offset last+1 and hands it to every
// viewer, dropping those that fell behind.
func (s *stream) appendLocked(e Entry) {
	s.last = e.Offset
	s.touched = e.At
	s.fanOutLocked(s.hist.push(e))
}

func (s *stream) fanOutLocked(msg []byte) {
	for i := 0; i < len(s.viewers); {
		if s.viewers[i].enqueueOne(msg) {
			i++
			continue
		}
		last := len(s.viewers) - 1
		s.viewers[i] = s.viewers[last]
		s.viewers[last] = nil
		s.viewers = s.viewers[:last]
	}
}

// publishLocal assigns the next offset and appends body; false, and
// nothing done, if the stream was dropped from its hub (only a Source
// holds on to one past that). alone (with a Feed whose append failed)
// first moves a shared stream to an epoch of this node's own, under the
// same lock, so no shared entry can come between.
func (s *stream) publishLocal(body []byte, bulky bool, now int64, alone bool) bool {
	s.mu.Lock()
	if s.dead && s.hub.feed == nil {
		s.mu.Unlock()
		return false
	}
	if alone && !s.local {
		s.restartLocked(NewEpoch(), true)
	}
	s.last++
	s.touched = now
	s.fanOutLocked(s.hist.pushEncoded(s.patient, s.last, now, bulky, body))
	s.mu.Unlock()
	return true
}

// restartLocked starts epoch at offset 0. Viewers are told what of the old
// epoch they may have missed: nothing when it was empty or made here (they
// had all of it), else everything after the last offset they got.
func (s *stream) restartLocked(epoch string, local bool) {
	if s.epoch != "" && !s.local {
		s.fanOutLocked(GapMessage(s.patient, s.epoch, s.last+1, 0))
	}
	if local && s.epoch != "" && !s.local {
		// Going alone: this node renews the shared stream before it takes
		// shared entries again, so the epoch it leaves is done with here.
		// (Not so between shared epochs: with no order between them, the
		// one left may be the live one, and a stream that dropped it would
		// stop.)
		copy(s.left[1:], s.left[:])
		s.left[0] = leftEpoch{s.epoch, s.hub.ticks.Add(1)}
	}
	if s.local && !local {
		// Back on a shared epoch: only an append begun from now on can
		// tell of a failover back to an epoch left before.
		s.raiseLeftLocked()
	}
	s.epoch, s.local, s.last = epoch, local, 0
	s.hist.reset()
	s.pending, s.repairing = nil, false
	s.fanOutLocked(StreamMessage(s.patient, 0, epoch, 0))
}

// raiseLeftLocked moves the ticks of the epochs the stream left up to now.
func (s *stream) raiseLeftLocked() {
	t := s.hub.ticks.Add(1)
	for i := range s.left {
		s.left[i].at = max(s.left[i].at, t)
	}
}

// deliver applies an entry of the shared stream (offset 0: only the start
// of a new epoch). It returns a hole to repair from the feed, if any.
// current, for the reply to this node's own append, is the hub's tick
// as that append began (-1 for an entry from the feed): the epoch is the
// shared one as of then, if the tick is not below the left epoch's.
func (s *stream) deliver(epoch string, e Entry, current int64) (repair bool, after, upto int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return false, 0, 0
	}
	if !s.loaded {
		// The snapshot is on its way: hold it, applied after the snapshot.
		if s.pending == nil || s.pendEpoch != epoch {
			s.pending = make(map[int64]Entry)
		}
		if len(s.pending) < s.hub.cfg.QueueMessages {
			s.pending[e.Offset] = e
			s.pendEpoch = epoch
		}
		return false, 0, 0
	}
	if epoch != s.epoch {
		if i := s.leftLocked(epoch); i >= 0 {
			if current < s.left[i].at {
				// Late: an echo of what this node published before it
				// went alone, another node's message meanwhile, or an
				// append's reply that lost the race with the renewal.
				return false, 0, 0
			}
			// Redis answered an append begun since with that epoch: it is
			// the shared one again (a failover to a replica that had not
			// heard of the renewal).
			s.left[i] = leftEpoch{}
		}
		s.restartLocked(epoch, false)
	}
	if e.Offset <= s.last {
		return false, 0, 0
	}
	if e.Offset == s.last+1 {
		s.appendLocked(e)
		return s.drainLocked()
	}
	if s.pending == nil {
		s.pending = make(map[int64]Entry)
	}
	s.pending[e.Offset] = e
	if len(s.pending) > s.hub.cfg.QueueMessages {
		// Too far behind to wait for the hole: declare it.
		s.gapToPendingLocked()
		return s.drainLocked()
	}
	if s.repairing {
		return false, 0, 0
	}
	s.repairing = true
	return true, s.last, s.minPendingLocked() - 1
}

// leftLocked returns the index in left of epoch, -1 if the stream did not
// leave it to go alone. An entry of one it left is late and must not take
// it back there (its viewers would get that epoch's history again).
func (s *stream) leftLocked(epoch string) int {
	if epoch == "" {
		return -1 // an empty slot of left
	}
	for i, l := range s.left {
		if l.epoch == epoch {
			return i
		}
	}
	return -1
}

func (s *stream) minPendingLocked() int64 {
	var m int64
	for off := range s.pending {
		if m == 0 || off < m {
			m = off
		}
	}
	return m
}

// drainLocked appends the pending entries that follow on, and asks for a
// repair if a hole remains.
func (s *stream) drainLocked() (bool, int64, int64) {
	for len(s.pending) > 0 {
		e, ok := s.pending[s.last+1]
		if !ok {
			break
		}
		delete(s.pending, e.Offset)
		s.appendLocked(e)
	}
	if len(s.pending) == 0 || s.repairing {
		return false, 0, 0
	}
	s.repairing = true
	return true, s.last, s.minPendingLocked() - 1
}

// gapToPendingLocked gives up on the hole before the first pending entry:
// viewers get a gap marker, and the history restarts after the hole so it
// stays contiguous.
func (s *stream) gapToPendingLocked() {
	next := s.minPendingLocked()
	if next <= s.last+1 {
		return
	}
	s.fanOutLocked(GapMessage(s.patient, s.epoch, s.last+1, next-1))
	s.hist.reset()
	s.last = next - 1
}

// repaired applies what the feed returned for the hole (after, upto]: the
// entries it still had, and a gap marker for whatever it no longer has.
func (s *stream) repaired(epoch string, after, upto int64, entries []Entry) (bool, int64, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repairing = false
	if s.dead {
		return false, 0, 0
	}
	if epoch == s.epoch && s.last == after {
		for _, e := range entries {
			if e.Offset == s.last+1 && e.Offset <= upto {
				s.appendLocked(e)
			}
		}
	}
	s.gapToPendingLocked()
	return s.drainLocked()
}

// caughtUp appends what the feed returned for a resuming viewer (catchUp)
// that follows on from the newest entry, and what was pending behind it.
func (s *stream) caughtUp(epoch string, entries []Entry) (bool, int64, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead || epoch != s.epoch {
		return false, 0, 0
	}
	for _, e := range entries {
		if e.Offset == s.last+1 {
			s.appendLocked(e)
		}
	}
	for off := range s.pending {
		if off <= s.last {
			delete(s.pending, off)
		}
	}
	return s.drainLocked()
}

// attach replays to v what its position calls for and adds it to the
// viewers, all under the stream's lock so nothing is missed or doubled.
func (s *stream) attach(v *Viewer, from Position, appointment int64, now int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return false
	}
	var out [][]byte
	first := s.hist.first()
	if first == 0 {
		first = s.last + 1
	}
	switch {
	case !from.Resume || (from.Epoch == s.epoch && from.Offset > s.last):
		// Fresh (or a position this epoch never reached): recent history,
		// all numerics and events but only the last seconds of waveform.
		cut := now - s.hub.cfg.FreshWaveform.Milliseconds()
		for i := 0; i < s.hist.n; i++ {
			if e := s.hist.at(i); !e.bulky || e.at >= cut {
				out = append(out, s.hist.msg(e))
			}
		}
	case from.Epoch == s.epoch:
		start := from.Offset + 1
		if start < first {
			out = append(out, GapMessage(s.patient, s.epoch, start, first-1))
			start = first
		}
		if i := s.hist.index(start); i >= 0 {
			for ; i < s.hist.n; i++ {
				out = append(out, s.hist.msg(s.hist.at(i)))
			}
		}
	default:
		// Another epoch: what followed the viewer's offset there is gone;
		// of this epoch it missed everything, which the history may hold.
		if from.Offset > 0 || from.Epoch != "" {
			out = append(out, GapMessage(s.patient, from.Epoch, from.Offset+1, 0))
		}
		if s.epoch != "" && first > 1 {
			out = append(out, GapMessage(s.patient, s.epoch, 1, first-1))
		}
		for i := 0; i < s.hist.n; i++ {
			out = append(out, s.hist.msg(s.hist.at(i)))
		}
	}
	out = append(out, StreamMessage(s.patient, appointment, s.epoch, s.last))
	if !v.enqueue(out...) {
		return true // fell behind at once; the transport closes it
	}
	for _, w := range s.viewers {
		if w == v {
			return true
		}
	}
	s.viewers = append(s.viewers, v)
	s.touched = now
	return true
}

// detach removes v and reports how many viewers remain.
func (s *stream) detach(v *Viewer, now int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, w := range s.viewers {
		if w == v {
			last := len(s.viewers) - 1
			s.viewers[i] = s.viewers[last]
			s.viewers[last] = nil
			s.viewers = s.viewers[:last]
			break
		}
	}
	s.touched = now
	return len(s.viewers)
}

// load applies a feed's snapshot to a new mirror, then what arrived
// meanwhile.
func (s *stream) load(snap Snapshot, ok bool, localEpoch string) (bool, int64, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer close(s.loadWait)
	s.loaded = true
	if !ok {
		// The feed is unreachable: start empty on an epoch of our own.
		s.epoch, s.local = localEpoch, true
	} else {
		s.epoch, s.last = snap.Epoch, snap.Last
		for _, e := range snap.History {
			if s.hist.n > 0 && e.Offset != s.hist.at(s.hist.n-1).offset+1 {
				s.hist.reset()
			}
			s.hist.push(e)
		}
	}
	held, epoch := s.pending, s.pendEpoch
	s.pending = nil
	if len(held) == 0 {
		return false, 0, 0
	}
	if epoch != s.epoch {
		s.restartLocked(epoch, false)
	}
	s.pending = make(map[int64]Entry)
	for off, e := range held {
		if off > s.last {
			s.pending[off] = e
		}
	}
	return s.drainLocked()
}
