package vitals

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// ErrStore reports that the Sink failed: nothing of the message was
// handled, the ack did not move, and the device must send it again.
var ErrStore = errors.New("could not store readings")

// ErrGap reports a sequence too far ahead of the last handled one to be
// held until the gap before it fills; the device must resend from the ack.
var ErrGap = errors.New("sequence gap too large")

// Limits on messages held while waiting for an earlier sequence.
const (
	MaxAhead        = 256     // highest seq accepted is LastSeq + MaxAhead
	maxPendingBytes = 1 << 20 // total size of held observations
)

// Device is the device a connection streams for, with the highest
// contiguous sequence already handled (stored or rejected).
type Device struct {
	ID        int64
	PatientID int64
	Name      string
	LastSeq   int64
}

// StoredReading is a reading with the device sequence it arrived in.
type StoredReading struct {
	Seq     int64
	Reading Reading
	// Source names the Bluetooth device a relay paired that measured it
	// (Parsed.Source, checked as the live stream's); "" when the
	// connection's own device did.
	Source string
}

// Sink stores a device's readings. Append must, in one transaction, store
// the readings not already stored (by device, sequence and code) and advance
// the device's last handled sequence to lastSeq. readings may be empty: the
// messages up to lastSeq were rejected or were waveforms, and only the
// sequence moves. On error nothing may be stored. readings is only lent
// for the call: the Ingester stages the next commit's in the same array.
type Sink interface {
	Append(ctx context.Context, deviceID, lastSeq int64, readings []StoredReading) error
}

// Publisher sends one encoded live-vitals message (docs/protocol.md) to the
// viewers of a patient. The same bytes go to every viewer. msg is only
// lent for the call: the Ingester encodes the next message in the same
// buffer, so a Publisher that keeps a message keeps a copy.
type Publisher interface {
	Publish(ctx context.Context, patientID int64, msg []byte) error
}

// Observer follows a patient's accepted readings, such as the NEWS2
// monitor (vitals/ward). It is called after the readings are stored and
// published, in the order they arrived.
type Observer interface {
	Observe(ctx context.Context, patientID int64, readings []Reading)
}

// held is one message: a message waiting for the sequences before it, or
// the one being handled.
type held struct {
	kind heldKind
	raw  []byte // the observation, gatt value or device event; or the frame
	err  error  // a rejection already known from the envelope
}

// heldKind is what a held message's raw is.
type heldKind uint8

const (
	heldObservation heldKind = iota // a FHIR Observation (JSON)
	heldGATT                        // a relayed characteristic value (JSON)
	heldDevice                      // a relayed device event (JSON)
	heldWaveFrame                   // a binary waveform frame
)

// clone is h in an array of its own, to be held past the call that read
// it (the frame's array may be reused).
func (h held) clone() held {
	h.raw = bytes.Clone(h.raw)
	return h
}

func (h held) size() int { return len(h.raw) }

// Ingester applies the device acknowledgement contract to one device's
// frames, independent of the transport: each sequence is handled (stored,
// or rejected) exactly once and in order, and every reply ends with
// {"ack": N}, N the highest sequence up to which all are handled. Waveforms
// are validated and published live but not stored. It is not safe for
// concurrent use: one connection owns it, and only one connection per
// device may be open at a time.
type Ingester struct {
	sink         Sink
	pub          Publisher
	obs          Observer
	dev          Device
	pending      map[int64]held // nil while none is held: looked at on every message
	pendingBytes int
	err          error
	// Used by Accept and Commit, which may run on two goroutines: mu
	// guards the fields above, accepted and staged.
	mu       sync.Mutex
	accepted int64 // highest sequence Accept handled; LastSeq <= accepted
	staged   staged
	spare    []StoredReading // the last commit's readings array, emptied, for stage
	now      func() time.Time
	events   EventRecorder
	ackEvery time.Duration
}

// NewIngester returns an Ingester for dev that continues after dev.LastSeq,
// which must be the sequence the Sink last stored for the device.
func NewIngester(sink Sink, pub Publisher, dev Device) *Ingester {
	return &Ingester{sink: sink, pub: pub, dev: dev, now: time.Now, ackEvery: DefaultAckInterval}
}

// WithClock makes the Ingester read the time from now (the server's clock,
// which stamps each waveform chunk's `received`) and returns it.
func (in *Ingester) WithClock(now func() time.Time) *Ingester {
	in.now = now
	return in
}

// WithAckInterval sets the shortest time between two commits, and so two
// acks, while a device's messages keep coming (DefaultAckInterval), and
// returns the Ingester. Longer means fewer commits and ack frames, and
// more messages the device holds unacked.
func (in *Ingester) WithAckInterval(d time.Duration) *Ingester {
	in.ackEvery = d
	return in
}

// RecordEvents makes the Ingester hand each relayed device event to r once
// it is handled; without it, events are only published live.
func (in *Ingester) RecordEvents(r EventRecorder) { in.events = r }

// SetObserver makes o follow the readings this Ingester accepts.
func (in *Ingester) SetObserver(o Observer) { in.obs = o }

// LastSeq is the highest sequence up to which every message is handled.
func (in *Ingester) LastSeq() int64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.dev.LastSeq
}

// Pending is how many messages are held waiting for an earlier sequence.
func (in *Ingester) Pending() int { return len(in.pending) }

// Err reports why the last Handle could not make progress: an error
// wrapping ErrStore or ErrGap, or nil. After either, the connection should
// be closed so the device reconnects and resends what is not acked.
func (in *Ingester) Err() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.err
}

// Handle processes one text frame and stores what it completes before
// returning, and returns the replies to send, in order: rejections
// ({"error", "seq"}) then {"ack": N}; or a lone {"error"} without seq for
// a frame that is not an envelope. It is Accept followed by Commit: the
// per-message form of the pipelined contract ServeDevice runs, for callers
// that want each message stored before they go on.
func (in *Ingester) Handle(ctx context.Context, frame []byte) (replies [][]byte) {
	return in.handleNow(ctx, websocket.TextMessage, frame)
}

// handleNow accepts a frame and commits at once. A message held out of
// order, or refused as too far ahead, is answered with the ack of what is
// stored, so the device knows where to resume.
func (in *Ingester) handleNow(ctx context.Context, kind int, frame []byte) [][]byte {
	in.mu.Lock()
	if !errors.Is(in.err, ErrStore) {
		in.err = nil // each call reports its own progress
	}
	in.mu.Unlock()
	replies := in.Accept(ctx, kind, frame)
	acks, _ := in.Commit(ctx)
	if len(acks) == 0 && !acked(replies) {
		if len(replies) == 0 || errors.Is(in.Err(), ErrGap) {
			in.mu.Lock()
			acks = [][]byte{ackReply(in.dev.LastSeq)}
			in.mu.Unlock()
		}
	}
	return append(replies, acks...)
}

// acked reports whether replies already end with an ack.
func acked(replies [][]byte) bool {
	return len(replies) > 0 && bytes.HasPrefix(replies[len(replies)-1], []byte(`{"ack"`))
}

// parse validates a message into p, including that its subject, if
// named, is the device's own patient. A binary frame's waveform is decoded
// into wave, which must not be in use elsewhere.
func (in *Ingester) parse(h *held, wave *Waveform, p *Parsed) error {
	switch {
	case h.err != nil:
		return h.err
	case h.kind == heldGATT || h.kind == heldDevice:
		return parseRelayed(h, p, in.dev.Name)
	case h.kind == heldWaveFrame:
		if _, err := decodeWaveFrame(h.raw, wave); err != nil {
			return err
		}
		p.Waveform = wave
		return nil
	}
	if err := parseObservation(h.raw, true, p); err != nil { // DecodeEnvelope checked the frame
		return err
	}
	if p.Subject != "" {
		return in.checkSubject(p.Subject)
	}
	return nil
}

// parseRelayed parses a relayed characteristic value or device event,
// relayed by the device named relay.
//
//go:noinline
func parseRelayed(h *held, p *Parsed, relay string) error {
	if h.kind == heldGATT {
		var err error
		*p, err = ParseGATT(h.raw) // a relayed value names no subject: it is the device's patient
		if err != nil {
			return err
		}
		return checkRelayedBy("gatt.device", p.Source, relay)
	}
	e, err := ParseDeviceEvent(h.raw)
	if err != nil {
		return err
	}
	if err := checkRelayedBy("device.name", e.Name, relay); err != nil {
		return err
	}
	p.Event = &e
	return nil
}

// checkSubject refuses an observation for another patient than the
// device's.
//
//go:noinline
func (in *Ingester) checkSubject(subject string) error {
	own := "Patient/" + strconv.FormatInt(in.dev.PatientID, 10)
	if subject != own && !strings.HasSuffix(subject, "/"+own) {
		return fieldErr("observation.subject.reference", "%q: a device may post only for its own patient", truncate(subject, 60))
	}
	return nil
}

func ackReply(n int64) []byte {
	return append(strconv.AppendInt([]byte(`{"ack":`), n, 10), '}')
}

//go:noinline
func errorReply(msg string, seq int64) []byte {
	type reply struct {
		Error string `json:"error"`
		Seq   int64  `json:"seq,omitempty"`
	}
	b, _ := json.Marshal(reply{Error: msg, Seq: seq})
	return b
}
