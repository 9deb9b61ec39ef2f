package live

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bedside-health/bedside/mono"
)

// Config bounds a hub's streams and viewers. Zero fields take defaults.
type Config struct {
	// HistoryMessages and HistoryBytes bound each stream's history
	// (default 2,400 messages and 1 MiB: about 160 s of five 1 Hz numerics
	// and a 250 Hz ECG in 10 chunks a second, at about 450 KB).
	HistoryMessages int
	HistoryBytes    int
	// FreshWaveform is how much waveform a new viewer is replayed with the
	// numerics of the whole history (default 5 s).
	FreshWaveform time.Duration
	// QueueMessages bounds each viewer's queue; a viewer with that many
	// messages waiting has fallen behind (default HistoryMessages + 1,024,
	// so a full replay fits, and never less than that).
	QueueMessages int
	// IdleExpiry drops a stream with no viewer and no message for this
	// long, with its history (default 15 min); it comes back with a new epoch.
	IdleExpiry time.Duration
	// FeedTimeout bounds each call to the Feed (default 500 ms); FeedRetry
	// is how long publishing stays on this node after the feed failed
	// before trying it again (default 1 s).
	FeedTimeout, FeedRetry time.Duration
	// Now is the clock (by default mono.Now: Publish reads it once a
	// message, and its times are spans between readings on this node).
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.HistoryMessages <= 0 {
		c.HistoryMessages = 2400
	}
	if c.HistoryBytes <= 0 {
		c.HistoryBytes = 1 << 20
	}
	if c.FreshWaveform <= 0 {
		c.FreshWaveform = 5 * time.Second
	}
	if c.QueueMessages < c.HistoryMessages+4 {
		c.QueueMessages = max(c.QueueMessages, c.HistoryMessages+1024)
	}
	if c.IdleExpiry <= 0 {
		c.IdleExpiry = 15 * time.Minute
	}
	if c.FeedTimeout <= 0 {
		c.FeedTimeout = 500 * time.Millisecond
	}
	if c.FeedRetry <= 0 {
		c.FeedRetry = time.Second
	}
	if c.Now == nil {
		c.Now = mono.Now // spans on this node only; see mono
	}
}

// Snapshot is a shared stream as a node finds it when it starts watching.
type Snapshot struct {
	Epoch   string // "" if the stream has no message yet
	Last    int64
	History []Entry // oldest first, contiguous, ending at Last
}

// Feed shares streams between nodes (cluster.RedisFeed). Offsets are then
// assigned by the feed, and every node watching a patient receives each
// entry through Hub.Deliver, in offset order as far as the feed can.
type Feed interface {
	// Append assigns body the next offset of the patient's shared stream,
	// keeps it in the shared history and sends it to every watching node.
	// renew first starts a new epoch (this node published on its own while
	// the feed failed, so the others missed messages). An empty body only
	// renews.
	Append(ctx context.Context, patient int64, body []byte, bulky, renew bool) (epoch string, e Entry, err error)
	// Watch starts delivering the patient's entries to this node and
	// returns the stream as it is; Unwatch stops.
	Watch(ctx context.Context, patient int64) (Snapshot, error)
	Unwatch(patient int64)
	// Range returns the current epoch and its entries with offsets in
	// (after, upto] that the shared history still holds.
	Range(ctx context.Context, patient int64, after, upto int64) (epoch string, entries []Entry, err error)
}

// Hub holds this node's live streams, one per patient.
type Hub struct {
	cfg  Config
	feed Feed

	mu      sync.Mutex
	streams map[int64]*stream
	// With a Feed: per patient whose messages were published here alone,
	// and no renewal followed, seq as of the latest such message; seq
	// never repeats, so a renewal that began before it can tell.
	diverged map[int64]uint64
	seq      uint64
	// ticks orders the starts of this node's appends (which read it)
	// against its streams leaving a shared epoch to go alone, taking one
	// again, and renewing (which count it up).
	ticks     atomic.Int64
	renewing  map[int64]chan struct{} // closed when the patient's renewal ends
	feedDown  time.Time               // until when publishing skips the feed
	lastSweep atomic.Int64            // Unix nanoseconds of the last sweep; written under mu
}

// NewHub returns an in-process hub; SetFeed shares it between nodes.
func NewHub(cfg Config) *Hub {
	cfg.defaults()
	return &Hub{cfg: cfg, streams: make(map[int64]*stream), diverged: make(map[int64]uint64), renewing: make(map[int64]chan struct{})}
}

// SetFeed makes the hub mirror streams shared through f. Call it before
// the hub is used.
func (h *Hub) SetFeed(f Feed) { h.feed = f }

// Config returns the hub's settings with defaults filled in.
func (h *Hub) Config() Config { return h.cfg }

// NewViewer returns a viewer whose queue holds Config.QueueMessages.
func (h *Hub) NewViewer() *Viewer {
	v := newViewer(h.cfg.QueueMessages)
	v.roomAt = replayRoomAt(h.cfg.QueueMessages, h.cfg.HistoryMessages)
	return v
}

// NewEpoch returns a fresh random epoch.
func NewEpoch() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (h *Hub) now() int64 { return h.cfg.Now().UnixMilli() }

// lookup returns the patient's stream, making it if create; made reports
// whether it is new.
func (h *Hub) lookup(patient int64, create bool) (s *stream, made bool) {
	return h.lookupAt(patient, create, h.cfg.Now())
}

// lookupAt is lookup at time now, for a caller that needs the time too:
// the clock is read once a message (on a virtual machine a read of it
// costs about as much as the rest of a lookup).
func (h *Hub) lookupAt(patient int64, create bool, now time.Time) (s *stream, made bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sweepLocked(now)
	s = h.streams[patient]
	if s == nil && create {
		s = newStream(h, patient)
		if h.feed == nil {
			s.epoch, s.loaded = NewEpoch(), true
		}
		h.streams[patient] = s
		made = true
	}
	return s, made
}

// sweepLocked drops in-process streams idle past IdleExpiry, at most once
// a minute.
func (h *Hub) sweepLocked(now time.Time) {
	if !h.sweepDue(now) {
		return
	}
	h.lastSweep.Store(now.UnixNano())
	cut := now.Add(-h.cfg.IdleExpiry).UnixMilli()
	for id, s := range h.streams {
		s.mu.Lock()
		if len(s.viewers) == 0 && s.touched < cut && s.loaded && h.feed == nil {
			s.dead = true
			delete(h.streams, id)
		}
		s.mu.Unlock()
	}
}

// sweepDue reports whether a minute has passed since the last sweep.
func (h *Hub) sweepDue(now time.Time) bool {
	return now.UnixNano()-h.lastSweep.Load() >= int64(time.Minute)
}

// Source is one publisher's way into a patient's stream, such as a
// device connection's: it keeps the stream it publishes to, so that its
// messages skip the hub's lock and map of streams, which every device's
// messages would otherwise share. It is safe for concurrent use.
type Source struct {
	h       *Hub
	patient int64
	s       atomic.Pointer[stream] // nil until the first message, or once dropped
}

// Source returns a Source of the patient's stream.
func (h *Hub) Source(patient int64) *Source { return &Source{h: h, patient: patient} }

// Publish is Hub.Publish; to the source's patient, through the stream it
// keeps (a Source is a vitals.Publisher of its patient's messages).
func (src *Source) Publish(ctx context.Context, patient int64, body []byte) error {
	if src.h.feed != nil || patient != src.patient {
		return src.h.Publish(ctx, patient, body)
	}
	src.h.publishInProcess(patient, body, &src.s)
	return nil
}

// publishInProcess publishes body to the patient's stream of a hub without
// a Feed. With keep, the stream is taken from it and kept in it, and the
// hub's lock is taken only for a sweep that is due or a stream to find;
// without, each message looks the stream up.
func (h *Hub) publishInProcess(patient int64, body []byte, keep *atomic.Pointer[stream]) {
	now := h.cfg.Now()
	bulky := isBulky(body)
	for {
		var s *stream
		if keep != nil {
			s = keep.Load()
		}
		switch {
		case s == nil:
			s, _ = h.lookupAt(patient, true, now) // sweeps if due
			if keep != nil {
				keep.Store(s)
			}
		case h.sweepDue(now):
			h.mu.Lock()
			h.sweepLocked(now)
			h.mu.Unlock()
		}
		if s.publishLocal(body, bulky, now.UnixMilli(), false) {
			return
		}
		// Dropped by a sweep since (idle, no viewer): the hub makes the
		// patient a new stream.
		if keep != nil {
			keep.CompareAndSwap(s, nil)
		}
	}
}

// Publish adds one message body (a JSON object with a type, e.g.
// {"type":"reading",...}) to the patient's stream. It never blocks on a
// viewer. With a Feed that fails, the message still reaches this node's
// viewers, on an epoch of this node's own, and the shared stream gets a
// new epoch once the feed is back, so other nodes' viewers learn of the
// gap. body is not kept: the stream keeps its own copy.
func (h *Hub) Publish(ctx context.Context, patient int64, body []byte) error {
	if h.feed == nil {
		h.publishInProcess(patient, body, nil)
		return nil
	}
	bulky := isBulky(body)
	if h.publishShared(ctx, patient, body, bulky) {
		return nil
	}
	if s, _ := h.lookup(patient, false); s != nil {
		<-s.loadWait
		s.publishLocal(body, bulky, h.now(), true)
	}
	// Marked once published: a renewal that began before does not take
	// the patient for renewed, so one follows, after this message.
	h.mu.Lock()
	h.seq++
	h.diverged[patient] = h.seq
	h.mu.Unlock()
	return nil
}

// publishShared publishes body to the patient's shared stream, unless the
// feed is taken for down or fails; false then: the message goes to this
// node alone. A patient that diverged is renewed first, with body as the
// new epoch's first message, so that the other nodes hear of the epoch and
// the message together; one renewal of a patient at a time, which a
// message that comes meanwhile waits for (at most FeedTimeout) rather
// than go to this node alone, or start an epoch of its own.
func (h *Hub) publishShared(ctx context.Context, patient int64, body []byte, bulky bool) bool {
	for {
		h.mu.Lock()
		if h.cfg.Now().Before(h.feedDown) {
			h.mu.Unlock()
			return false
		}
		since, diverged := h.diverged[patient]
		if !diverged {
			h.mu.Unlock()
			return h.appendShared(ctx, patient, body, bulky, false, 0) == nil
		}
		if busy := h.renewing[patient]; busy != nil {
			h.mu.Unlock()
			<-busy   // bounded by FeedTimeout
			continue // renewed, or the feed failed: look again
		}
		done := h.startRenewalLocked(patient)
		h.mu.Unlock()
		err := h.appendShared(ctx, patient, body, bulky, true, since)
		h.endRenewal(patient, done)
		return err == nil
	}
}

// startRenewalLocked marks the patient's renewal as on its way (h.mu
// held); endRenewal marks it ended.
func (h *Hub) startRenewalLocked(patient int64) chan struct{} {
	done := make(chan struct{})
	h.renewing[patient] = done
	return done
}

func (h *Hub) endRenewal(patient int64, done chan struct{}) {
	h.mu.Lock()
	delete(h.renewing, patient)
	h.mu.Unlock()
	close(done)
}

// appendShared appends body to the patient's shared stream and delivers
// it here. A renewal starts a new epoch first, with body, if any, as its
// first message; the patient then no longer diverges, unless a message
// went to this node alone after since. When the feed fails, publishing
// skips it for FeedRetry.
func (h *Hub) appendShared(ctx context.Context, patient int64, body []byte, bulky, renew bool, since uint64) error {
	// Bounded by FeedTimeout alone: a caller that gives up (a client that
	// hung up on a batch) must not make the feed look down for every
	// patient of this node.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.FeedTimeout)
	var began time.Time
	if renew {
		began = h.cfg.Now()
	}
	tick := h.ticks.Load() // read, not counted: every message takes one
	epoch, e, err := h.feed.Append(cctx, patient, body, bulky, renew)
	cancel()
	if err != nil {
		h.mu.Lock()
		h.feedDown = h.cfg.Now().Add(h.cfg.FeedRetry)
		h.mu.Unlock()
		return err
	}
	if !renew {
		h.deliver(patient, epoch, e, tick)
		return nil
	}
	h.mu.Lock()
	if h.diverged[patient] == since {
		delete(h.diverged, patient)
	}
	if !h.feedDown.After(began.Add(h.cfg.FeedRetry)) {
		h.feedDown = time.Time{} // (not a failure that came since)
	}
	h.mu.Unlock()
	if s, _ := h.lookup(patient, false); s != nil {
		// Redis ran the renewal: an append begun before it may still have
		// run on an epoch the stream left, so only one begun from now on
		// can tell of a failover back to it, whichever shared epoch the
		// stream is on meanwhile (a late entry may have moved it).
		s.mu.Lock()
		s.raiseLeftLocked()
		s.mu.Unlock()
	}
	h.deliver(patient, epoch, e, tick)
	return nil
}

// Deliver applies an entry of a shared stream that a Feed received (an
// Offset of 0 only announces a new epoch). Patients this node does not
// watch are ignored.
func (h *Hub) Deliver(patient int64, epoch string, e Entry) {
	h.deliver(patient, epoch, e, -1)
}

// deliver is Deliver; current, for the reply to this node's own append,
// is the tick the append began at (-1 for none).
func (h *Hub) deliver(patient int64, epoch string, e Entry, current int64) {
	s, _ := h.lookup(patient, false)
	if s == nil {
		return
	}
	repair, after, upto := s.deliver(epoch, e, current)
	h.repair(s, repair, after, upto)
}

// repair fetches a hole of s from the feed, in the background, until the
// stream has no hole left.
func (h *Hub) repair(s *stream, need bool, after, upto int64) {
	if !need || h.feed == nil {
		return
	}
	go func() {
		for need {
			ctx, cancel := context.WithTimeout(context.Background(), h.cfg.FeedTimeout)
			epoch, entries, err := h.feed.Range(ctx, s.patient, after, upto)
			cancel()
			if err != nil {
				epoch, entries = "", nil // declare the hole: never hang on it
			}
			need, after, upto = s.repaired(epoch, after, upto, entries)
		}
	}()
}

// Subscribe adds v to the patient's stream from position from: a resuming
// viewer gets exactly what it missed (or gap markers for what the history
// no longer holds), a fresh one a short recent history; then a stream
// message with the epoch and offset, then every new message. appointment
// is echoed in that stream message (0 leaves it out).
func (h *Hub) Subscribe(ctx context.Context, v *Viewer, patient int64, from Position, appointment int64) error {
	for {
		s, made := h.lookup(patient, true)
		if made && h.feed != nil {
			cctx, cancel := context.WithTimeout(ctx, h.cfg.FeedTimeout)
			snap, err := h.feed.Watch(cctx, patient)
			cancel()
			repair, after, upto := s.load(snap, err == nil, NewEpoch())
			h.repair(s, repair, after, upto)
		}
		select {
		case <-s.loadWait:
		case <-ctx.Done():
			return ctx.Err()
		}
		if from.Resume && h.feed != nil {
			h.catchUp(ctx, s, from.Epoch, from.Offset)
		}
		v.mu.Lock()
		v.subs[patient] = s
		v.mu.Unlock()
		if s.attach(v, from, appointment, h.now()) {
			return nil
		}
	}
}

// catchUp brings a mirror that lags the shared stream up to offset off of
// epoch before a viewer resumes there: the viewer got that far on another
// node, and the entries it has would otherwise reach it again. What the
// feed no longer has (or never had) is left to attach, as before.
func (h *Hub) catchUp(ctx context.Context, s *stream, epoch string, off int64) {
	s.mu.Lock()
	after, upto := s.last, off
	if m := s.minPendingLocked(); m > 0 {
		upto = max(upto, m-1) // close the hole a repair may be fetching too
	}
	behind := epoch != "" && epoch == s.epoch && off > s.last && !s.dead
	s.mu.Unlock()
	if !behind {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, h.cfg.FeedTimeout)
	got, entries, err := h.feed.Range(cctx, s.patient, after, upto)
	cancel()
	if err != nil || got != epoch {
		return
	}
	repair, after, upto := s.caughtUp(epoch, entries)
	h.repair(s, repair, after, upto)
}

// Unsubscribe removes v from the patient's stream.
func (h *Hub) Unsubscribe(v *Viewer, patient int64) {
	v.mu.Lock()
	s := v.subs[patient]
	delete(v.subs, patient)
	v.mu.Unlock()
	if s != nil {
		h.release(s, v)
	}
}

// Leave removes v from every stream; it takes no more messages.
func (h *Hub) Leave(v *Viewer) {
	v.mu.Lock()
	v.left = true
	subs := v.subs
	v.subs = make(map[int64]*stream)
	clear(v.q)
	v.q = nil
	v.mu.Unlock()
	for _, s := range subs {
		h.release(s, v)
	}
}

// release detaches v from s; a mirrored stream with no viewer left is
// dropped and no longer watched.
func (h *Hub) release(s *stream, v *Viewer) {
	if s.detach(v, h.now()) > 0 || h.feed == nil {
		return
	}
	h.mu.Lock()
	s.mu.Lock()
	drop := len(s.viewers) == 0 && !s.dead && h.streams[s.patient] == s
	if drop {
		s.dead = true
		delete(h.streams, s.patient)
	}
	s.mu.Unlock()
	h.mu.Unlock()
	if drop {
		h.feed.Unwatch(s.patient)
	}
}

// Run renews, every FeedRetry, the shared streams this node published to
// on its own while the feed failed, so other nodes' viewers get their gap
// markers once the feed is back. It returns when ctx ends.
func (h *Hub) Run(ctx context.Context) {
	if h.feed == nil {
		return
	}
	t := time.NewTicker(h.cfg.FeedRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.Lock()
		var todo []int64
		if !h.cfg.Now().Before(h.feedDown) {
			// (While the feed is taken for down, messages go to this node
			// alone: a renewal now would only have to be made again.)
			for p := range h.diverged {
				todo = append(todo, p)
			}
		}
		h.mu.Unlock()
		for _, p := range todo {
			h.mu.Lock()
			since, diverged := h.diverged[p]
			var done chan struct{}
			if diverged && h.renewing[p] == nil {
				done = h.startRenewalLocked(p)
			}
			h.mu.Unlock()
			if done == nil {
				continue // renewed meanwhile, or a message of it is renewing it
			}
			err := h.appendShared(ctx, p, nil, false, true, since)
			h.endRenewal(p, done)
			if err != nil {
				break // still down: try again once FeedRetry has passed
			}
		}
	}
}

// Position reports the patient's stream as this node has it: its epoch
// and last offset (empty and 0 if there is none here).
func (h *Hub) Position(patient int64) (epoch string, last int64) {
	s, _ := h.lookup(patient, false)
	if s == nil {
		return "", 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch, s.last
}
