package vitals

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/mono"
)

// DefaultAckInterval is the time between two commits, and so two acks, of
// one device connection while it streams (sends ahead of its acks; see
// committer); the commits fall on the clock's multiples of it (shifted by
// the device's slot), where those of other devices fall too. The first
// message after a quiet spell, and each of a device that waits for its
// acks, is committed and acked at once.
const DefaultAckInterval = time.Second

// staged is what Accept has handled but not yet committed: the readings
// and events of the messages after LastSeq up to accepted.
type staged struct {
	readings []StoredReading
	events   []RelayedEvent
}

// maxSpareReadings bounds the staged readings array an Ingester keeps
// between commits (spare).
const maxSpareReadings = 64

// Accept is the first half of the pipelined contract ServeDevice runs: it
// handles one frame (websocket.TextMessage for an envelope, BinaryMessage
// for a waveform frame) in sequence and publishes its live
// messages at once, but only stages its readings. Commit stores what is
// staged and returns the ack. Accept returns the replies to send now:
// rejections ({"error", "seq"}), the ack of a sequence already committed,
// or a lone {"error"}. Accept and Commit may run on different goroutines;
// Handle is the two in one call. The caller may reuse frame's array once
// Accept returns: a message held for an earlier sequence is copied.
func (in *Ingester) Accept(ctx context.Context, kind int, frame []byte) (replies [][]byte) {
	// Accept runs on the device's read loop, whose goroutine starts with a
	// small stack: the work is split so that no function on the way holds
	// much of it (TestAcceptStack), and what only a refused or early
	// message needs is kept out of the way.
	in.mu.Lock()
	defer in.mu.Unlock()
	var h held
	seq, err := readHeld(kind, frame, &h)
	if seq == 0 {
		return refusal(err)
	}
	if in.accepted < in.dev.LastSeq {
		in.accepted = in.dev.LastSeq
	}
	switch {
	case seq <= in.dev.LastSeq:
		// Already committed: acknowledge again; store and show nothing.
		return [][]byte{ackReply(in.dev.LastSeq)}
	case seq <= in.accepted:
		// Already accepted: the coming ack covers it.
		return nil
	case seq > in.accepted+1:
		return in.hold(seq, &h)
	}
	return in.acceptRun(ctx, &h)
}

// readHeld reads a frame's sequence and message into h; seq is 0 if the
// frame's sequence cannot be known, and err then says why.
//
//go:noinline
func readHeld(kind int, frame []byte, h *held) (seq int64, err error) {
	if kind == websocket.BinaryMessage {
		if seq, err = WaveFrameSeq(frame); err != nil {
			return 0, err
		}
		*h = held{kind: heldWaveFrame, raw: frame}
		return seq, nil
	}
	env, err := DecodeEnvelope(frame)
	if err != nil && (env.Seq == 0 || !isFieldError(err)) {
		return 0, err
	}
	switch {
	case env.GATT != nil:
		*h = held{kind: heldGATT, raw: env.GATT}
	case env.Device != nil:
		*h = held{kind: heldDevice, raw: env.Device}
	default:
		*h = held{kind: heldObservation, raw: env.Observation, err: err}
	}
	return env.Seq, nil
}

// isFieldError reports whether err is a *FieldError. It is apart so that
// the variable errors.As needs, which escapes, is only made for an error.
func isFieldError(err error) bool {
	var fe *FieldError
	return errors.As(err, &fe)
}

// refusal is the reply to a frame whose sequence cannot be known.
//
//go:noinline
func refusal(err error) [][]byte {
	return [][]byte{errorReply(err.Error(), 0)}
}

// hold keeps h, a message after a gap, until the gap fills, or refuses it
// if that is too much to hold.
//
//go:noinline
func (in *Ingester) hold(seq int64, h *held) [][]byte {
	if seq-in.accepted > MaxAhead || in.pendingBytes+h.size() > maxPendingBytes {
		msg := fmt.Sprintf("seq %d is too far ahead of %d to hold; send again from %d", seq, in.accepted, in.accepted+1)
		in.err = fmt.Errorf("%w: seq %d after %d", ErrGap, seq, in.accepted)
		return [][]byte{errorReply(msg, 0)}
	}
	if in.pending == nil {
		in.pending = make(map[int64]held)
	}
	if _, dup := in.pending[seq]; !dup {
		in.pending[seq] = h.clone()
		in.pendingBytes += h.size()
	}
	return nil
}

// acceptRun handles h, the message after the last one accepted, and the
// held messages that follow it without a gap.
func (in *Ingester) acceptRun(ctx context.Context, h *held) (replies [][]byte) {
	start := in.accepted + 1
	in.accepted = start
	// The time a waveform chunk is stamped as received, read once for the
	// run and only if it holds one: a read of the clock costs some 200 ns
	// on a virtual machine.
	var received time.Time
	sc := acceptPool.Get().(*acceptScratch)
	replies = in.acceptOne(ctx, start, h, sc, &received, replies)
	// Nothing held is the usual case: then not even a look into the map.
	if in.pending != nil {
		replies = in.acceptHeld(ctx, sc, &received, replies)
	}
	acceptPool.Put(sc)
	return replies
}

// acceptHeld handles the held messages that follow the last one accepted
// without a gap.
//
//go:noinline
func (in *Ingester) acceptHeld(ctx context.Context, sc *acceptScratch, received *time.Time, replies [][]byte) [][]byte {
	for {
		seq := in.accepted + 1
		h, ok := in.pending[seq]
		if !ok {
			if len(in.pending) == 0 {
				in.pending = nil
			}
			return replies
		}
		in.pendingBytes -= h.size()
		delete(in.pending, seq)
		in.accepted = seq
		replies = in.acceptOne(ctx, seq, &h, sc, received, replies)
	}
}

// acceptOne validates one message in sequence, stages its readings and
// events, and publishes its live messages; a rejection is appended to
// replies.
func (in *Ingester) acceptOne(ctx context.Context, seq int64, h *held, sc *acceptScratch, received *time.Time, replies [][]byte) [][]byte {
	p := Parsed{Readings: sc.readings[:0]}
	defer clear(sc.readings[:])
	if err := in.parse(h, &sc.wave, &p); err != nil {
		return append(replies, errorReply(err.Error(), seq))
	}
	in.stage(seq, &p)
	in.publish(ctx, &p, received)
	return replies
}

// stage adds a message's readings and events to what the next Commit
// stores.
//
//go:noinline
func (in *Ingester) stage(seq int64, p *Parsed) {
	if in.staged.readings == nil && len(p.Readings) > 0 {
		in.staged.readings, in.spare = in.spare, nil
	}
	for _, r := range p.Readings {
		in.staged.readings = append(in.staged.readings, StoredReading{Seq: seq, Reading: r, Source: p.Source})
	}
	if p.Event != nil {
		in.staged.events = append(in.staged.events, *p.Event)
	}
}

// publish sends a message's live messages to the patient's viewers. Live
// delivery is best effort and does not wait for the store: a viewer that
// misses a reading finds it in the stored history.
//
//go:noinline
func (in *Ingester) publish(ctx context.Context, p *Parsed, received *time.Time) {
	// What encodeLive encodes, a message at a time, in a buffer the
	// Publisher does not keep (its contract), so a message costs no
	// allocation of its own.
	buf := liveBufs.Get().(*[]byte)
	defer liveBufs.Put(buf)
	from, relay := p.origin(in.dev.Name)
	for i := range p.Readings {
		if b, err := appendLiveReading((*buf)[:0], &p.Readings[i], from, relay); err == nil {
			*buf = b
			_ = in.pub.Publish(ctx, in.dev.PatientID, b)
		}
	}
	if e := p.Event; e != nil {
		_ = in.pub.Publish(ctx, in.dev.PatientID, EncodeRelayedEvent(e.Event, e.Name, in.dev.Name, e.Time))
	}
	if p.Waveform != nil {
		if received.IsZero() {
			*received = in.now()
		}
		if b, err := appendLiveWaveform((*buf)[:0], p.Waveform, in.dev.Name, received); err == nil {
			*buf = b
			_ = in.pub.Publish(ctx, in.dev.PatientID, b)
		}
	}
}

// liveBufs are the buffers publish encodes live messages in.
var liveBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// acceptScratch is what Accept parses a message into: its waveform and its
// readings are published and staged (copied) before the next message, and
// then done with. Pooled, so an idle connection holds none.
type acceptScratch struct {
	wave     Waveform
	readings [2]Reading // a blood-pressure panel's two
}

var acceptPool = sync.Pool{New: func() any { return new(acceptScratch) }}

// progress is the highest sequence Accept has handled, the highest
// Commit has stored (and so acked, or is about to), and Err: what the read
// loop needs after each frame, read under one lock.
func (in *Ingester) progress() (accepted, stored int64, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return max(in.accepted, in.dev.LastSeq), in.dev.LastSeq, in.err
}

// Uncommitted reports whether Accept has handled messages that Commit has
// not yet stored.
func (in *Ingester) Uncommitted() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.accepted > in.dev.LastSeq && !errors.Is(in.err, ErrStore)
}

// Commit stores what Accept staged, with the device's sequence advanced to
// the last message accepted, in one Sink.Append, and returns the replies:
// {"ack": N} for everything up to N. If the Sink fails, it returns an
// error and the ack of what was committed before, and Err reports
// ErrStore from then on: the connection must close, and the device resends
// what is not acked. Only one Commit may run at a time.
func (in *Ingester) Commit(ctx context.Context) ([][]byte, error) {
	in.mu.Lock()
	if errors.Is(in.err, ErrStore) || in.accepted <= in.dev.LastSeq {
		in.mu.Unlock()
		return nil, nil
	}
	start, end, batch := in.dev.LastSeq+1, in.accepted, in.staged
	in.staged = staged{}
	in.mu.Unlock()

	if err := in.sink.Append(ctx, in.dev.ID, end, batch.readings); err != nil {
		in.mu.Lock()
		in.err = fmt.Errorf("%w: seq %d to %d: %w", ErrStore, start, end, err)
		last := in.dev.LastSeq
		in.mu.Unlock()
		msg := fmt.Sprintf("could not store seq %d; reconnect and send it again", start)
		return [][]byte{errorReply(msg, 0), ackReply(last)}, in.err
	}
	in.mu.Lock()
	in.dev.LastSeq = end
	in.mu.Unlock()
	if in.events != nil {
		for _, e := range batch.events {
			in.events.RecordDeviceEvent(ctx, in.dev, e)
		}
	}
	if in.obs != nil && len(batch.readings) > 0 {
		rs := make([]Reading, len(batch.readings))
		for i, sr := range batch.readings {
			rs[i] = sr.Reading
		}
		in.obs.Observe(ctx, in.dev.PatientID, rs)
	}
	if cap(batch.readings) <= maxSpareReadings {
		// The Sink and the Observer are done with it: the next commit's
		// readings reuse it.
		clear(batch.readings)
		in.mu.Lock()
		in.spare = batch.readings[:0]
		in.mu.Unlock()
	}
	return [][]byte{ackReply(end)}, nil
}

// committer runs a connection's commits off its read loop: at once after a
// quiet spell, then on the interval's ticks while the device streams, each
// on a goroutine of its own, so an idle connection holds none.
//
// A device streams when it sends ahead of its acks: a message comes while
// earlier ones still wait for theirs. One that has not done so for an
// interval may be waiting for this ack (stop-and-wait), and holding the ack
// until its slot would let it send one message an interval, so its commit
// runs at once. Whether such a device streams after all is tried at most
// once an interval: its ack is held for twice its last gaps between
// messages (a probe), and a message coming meanwhile shows it streams.
type committer struct {
	ing   *Ingester
	every time.Duration
	ctx   context.Context
	send  func([]byte) error
	fail  func(error) // a commit failed: close the connection

	mu      sync.Mutex
	armed   bool // a commit is scheduled or running
	probing bool // the scheduled commit is a probe's
	closed  bool
	timer   *time.Timer
	last    tick // when the last commit began
	running sync.WaitGroup

	// What the device's sending shows, updated on each arrival (poke).
	seen     int64            // the highest sequence accepted at the last arrival
	arrived  tick             // the last arrival
	gaps     [2]time.Duration // the last two times between arrivals
	streamed tick             // the last arrival ahead of an ack
	probed   tick             // the last probe
}

// tick is a reading of the monotonic clock (tickNow), 0 for never. The
// committer reads the clock on every frame a device sends, and a read of
// the monotonic clock alone costs about half of time.Now's (which reads
// the wall clock too) on a virtual machine; only a commit's slot, found
// once a commit, needs the wall clock.
type tick time.Duration

// tickNow reads the monotonic clock; never 0.
func tickNow() tick { return tick(mono.Since()) }

// since is the time from t to now; a very long time if t is never.
func (t tick) since(now tick) time.Duration {
	if t == 0 {
		return 1<<63 - 1
	}
	return time.Duration(now - t)
}

// poke tells the committer that the device's frame has been accepted
// (accepted and stored are the Ingester's progress), and schedules a
// commit of what is staged, unless one is scheduled.
func (c *committer) poke(accepted, stored int64) {
	now := tickNow()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen > stored {
		// This message came while earlier ones waited for their ack: the
		// device streams, and a probe holding its ack may wait for the slot.
		c.streamed = now
		if c.armed && c.probing && c.timer.Stop() {
			c.probing = false
			c.timer.Reset(c.slotWait())
		}
	}
	if c.arrived != 0 {
		c.gaps[0], c.gaps[1] = c.gaps[1], c.arrived.since(now)
	}
	c.arrived, c.seen = now, accepted
	c.pokeLocked()
}

func (c *committer) pokeLocked() {
	if c.armed || c.closed || !c.ing.Uncommitted() {
		return
	}
	c.armed = true
	c.running.Add(1)
	c.timer = time.AfterFunc(c.wait(tickNow()), c.run)
}

// commitSlots spreads the devices' commits over the interval: a device
// commits in slot ID mod commitSlots, so the busy devices' commits reach
// the store in several transactions a second rather than all at once,
// which would stall live delivery while the one transaction ran. A
// transaction's cost is about its devices' (each patient's index pages are
// written once a commit however many readings it holds), so more, smaller
// slots cost about the same a second in shorter bursts: ten slots keep
// each commit at 1,000 streaming patients to about a hundred of them.
const commitSlots = 10

// wait is how long a commit waits from now: none after a quiet spell or
// while the device does not stream (see committer), a probe's hold, and
// otherwise until the device's next slot on the clock, so the commits of
// the streaming devices of a slot reach the store together and share
// their transactions.
func (c *committer) wait(now tick) time.Duration {
	if c.every <= 0 || c.last.since(now) >= c.every {
		return 0
	}
	slot := c.slotWait()
	if c.streamed.since(now) < c.every {
		return slot
	}
	gap := max(c.gaps[0], c.gaps[1])
	if gap <= 0 || c.probed.since(now) < c.every {
		return 0
	}
	c.probed, c.probing = now, true
	return min(slot, 2*gap)
}

// slotWait is the time to the device's next slot, on the wall clock.
func (c *committer) slotWait() time.Duration {
	phase := int64(c.every) / commitSlots * (c.ing.dev.ID % commitSlots)
	into := (time.Now().UnixNano() - phase) % int64(c.every)
	if into < 0 {
		into += int64(c.every)
	}
	return c.every - time.Duration(into)
}

func (c *committer) run() {
	defer c.running.Done()
	c.mu.Lock()
	c.last, c.probing = tickNow(), false
	c.mu.Unlock()
	replies, err := c.ing.Commit(c.ctx)
	for _, r := range replies {
		_ = c.send(r)
	}
	if err != nil {
		c.fail(err)
	}
	c.mu.Lock()
	// The fired timer is let go: an idle connection keeps none.
	c.armed, c.timer = false, nil
	c.pokeLocked()
	c.mu.Unlock()
}

// close cancels a scheduled commit, waits for a running one, and commits
// what is left, so everything accepted is stored (or the failure known)
// before the connection lets the device go.
func (c *committer) close(ctx context.Context) {
	c.mu.Lock()
	c.closed = true
	if c.armed && c.timer.Stop() {
		c.armed = false
		c.running.Done()
	}
	c.mu.Unlock()
	c.running.Wait()
	replies, _ := c.ing.Commit(ctx)
	for _, r := range replies {
		_ = c.send(r)
	}
}
