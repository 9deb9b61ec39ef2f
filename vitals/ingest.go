package vitals

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/wsconn"
)

// StoredReading is a reading with the device sequence it arrived in.
type StoredReading struct {
	Seq     int64
	Reading Reading
}

// Device is the device a connection streams for, with the highest
// contiguous sequence already handled.
type Device struct {
	ID        int64
	PatientID int64
	Name      string
	LastSeq   int64
}

// Sink stores a device's readings. Append must, in one transaction, store
// readings not stored before (by device, sequence and code) and advance the
// device's last handled sequence to lastSeq.
type Sink interface {
	Append(ctx context.Context, deviceID, lastSeq int64, readings []StoredReading) error
}

// Publisher sends an encoded live message to a patient's viewers.
type Publisher interface {
	Publish(ctx context.Context, patientID int64, msg []byte) error
}

// maxPending bounds how many messages ahead of a gap are held.
const maxPending = 256

// Ingester applies the device acknowledgement contract to one device's
// frames: each sequence is handled once, in order, and acknowledged with the
// highest sequence up to which everything is handled. It is not safe for
// concurrent use; one connection owns it.
type Ingester struct {
	sink    Sink
	pub     Publisher
	dev     Device
	pending map[int64]json.RawMessage
}

// NewIngester returns an Ingester continuing after dev.LastSeq.
func NewIngester(sink Sink, pub Publisher, dev Device) *Ingester {
	return &Ingester{sink: sink, pub: pub, dev: dev, pending: make(map[int64]json.RawMessage)}
}

// LastSeq is the highest contiguous sequence handled.
func (in *Ingester) LastSeq() int64 { return in.dev.LastSeq }

type ackReply struct {
	Ack int64 `json:"ack"`
}

type errorReply struct {
	Error string `json:"error"`
	Seq   *int64 `json:"seq,omitempty"`
}

func encode(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// Handle processes one text frame and returns the replies to send.
func (in *Ingester) Handle(ctx context.Context, frame []byte) [][]byte {
	env, err := DecodeEnvelope(frame)
	if err != nil {
		var fe *FieldError
		if env.Seq > 0 && errors.As(err, &fe) {
			// A known sequence with no observation: reject it like any bad observation.
			return in.handleSeq(ctx, env.Seq, nil, err)
		}
		return [][]byte{encode(errorReply{Error: err.Error()})}
	}
	return in.handleSeq(ctx, env.Seq, env.Observation, nil)
}

func (in *Ingester) handleSeq(ctx context.Context, seq int64, obs json.RawMessage, decodeErr error) [][]byte {
	var replies [][]byte
	switch {
	case seq <= in.dev.LastSeq:
		// Already handled: acknowledge again, store and show nothing.
	case seq > in.dev.LastSeq+1:
		if _, dup := in.pending[seq]; !dup {
			if len(in.pending) >= maxPending {
				s := seq
				return [][]byte{encode(errorReply{Error: fmt.Sprintf("seq: %d is too far ahead of %d; resend from %d", seq, in.dev.LastSeq, in.dev.LastSeq+1), Seq: &s})}
			}
			if decodeErr != nil {
				obs = nil
			}
			in.pending[seq] = obs
		}
	default:
		replies = in.apply(ctx, seq, obs, decodeErr)
		for {
			next, ok := in.pending[in.dev.LastSeq+1]
			if !ok {
				break
			}
			delete(in.pending, in.dev.LastSeq+1)
			var perr error
			if next == nil {
				perr = fieldErr("observation", "missing")
			}
			replies = append(replies, in.apply(ctx, in.dev.LastSeq+1, next, perr)...)
		}
	}
	return append(replies, encode(ackReply{Ack: in.dev.LastSeq}))
}

// apply validates, stores and publishes the message with the next sequence.
// A failure to store leaves LastSeq where it was, so the device resends.
func (in *Ingester) apply(ctx context.Context, seq int64, obs json.RawMessage, perr error) [][]byte {
	var p Parsed
	if perr == nil {
		p, perr = ParseObservation(obs)
	}
	if perr == nil && p.Subject != "" && p.Subject != "Patient/"+strconv.FormatInt(in.dev.PatientID, 10) {
		perr = fieldErr("observation.subject", "%q: a device may post only for its own patient", p.Subject)
	}
	var rejected []byte
	var readings []StoredReading
	if perr != nil {
		s := seq
		rejected = encode(errorReply{Error: perr.Error(), Seq: &s})
	} else {
		for _, r := range p.Readings {
			readings = append(readings, StoredReading{Seq: seq, Reading: r})
		}
	}
	// A rejected message is handled too: advance the stored sequence past it.
	if err := in.sink.Append(ctx, in.dev.ID, seq, readings); err != nil {
		s := seq
		return [][]byte{encode(errorReply{Error: "could not store; send it again", Seq: &s})}
	}
	in.dev.LastSeq = seq
	if rejected != nil {
		return [][]byte{rejected}
	}
	for _, msg := range liveMessages(p, in.dev.Name) {
		_ = in.pub.Publish(ctx, in.dev.PatientID, msg)
	}
	return nil
}

// LiveReading is the message viewers receive for each numeric reading.
type LiveReading struct {
	Type   string    `json:"type"` // "reading"
	Code   string    `json:"code"`
	Value  float64   `json:"value"`
	Unit   string    `json:"unit"`
	Time   time.Time `json:"time"`
	Device string    `json:"device,omitempty"`
}

// LiveWaveform is the message viewers receive for a waveform chunk.
type LiveWaveform struct {
	Type   string    `json:"type"` // "waveform"
	Code   string    `json:"code"`
	Origin float64   `json:"origin"`
	Factor float64   `json:"factor"`
	Period float64   `json:"period"`
	Data   []float64 `json:"data"`
	Time   time.Time `json:"time"`
}

// liveMessages encodes an observation once for all its viewers.
func liveMessages(p Parsed, device string) [][]byte {
	var out [][]byte
	for _, r := range p.Readings {
		out = append(out, encode(LiveReading{Type: "reading", Code: r.Code, Value: r.Value, Unit: r.Unit, Time: r.Time, Device: device}))
	}
	if w := p.Waveform; w != nil {
		out = append(out, encode(LiveWaveform{Type: "waveform", Code: w.Code, Origin: w.Origin, Factor: w.Factor, Period: w.Period, Data: w.Data, Time: w.Time}))
	}
	return out
}

// ServeDevice reads a device connection's frames until it closes, answering
// each through the Ingester.
func ServeDevice(ctx context.Context, conn *wsconn.Conn, ing *Ingester) error {
	for {
		kind, frame, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		if kind != websocket.TextMessage {
			if err := conn.Send(encode(errorReply{Error: "frames must be JSON text"})); err != nil {
				return err
			}
			continue
		}
		for _, r := range ing.Handle(ctx, frame) {
			if err := conn.Send(r); err != nil {
				return err
			}
		}
	}
}
