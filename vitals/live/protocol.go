package live

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// MaxEpochLen is the longest epoch a client may send back.
const MaxEpochLen = 64

// maxOffset is the largest offset a client may send: JavaScript numbers are
// exact up to 2^53.
const maxOffset = 1<<53 - 1

// Position is where a viewer was in a patient's stream: the epoch and the
// last offset it received. Resume false means a fresh viewer, which gets a
// short recent history instead of what it missed.
type Position struct {
	Resume bool
	Epoch  string
	Offset int64
}

// Request is one message a viewer sends on the multi-visit socket.
type Request struct {
	Type        string // "subscribe" or "unsubscribe"
	Appointment int64
	From        Position // subscribe only
}

// Request types.
const (
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
)

// DecodeRequest reads a viewer's request, e.g.
// {"type":"subscribe","appointment":12,"epoch":"k3...","offset":40}. The
// error names the field that is wrong.
func DecodeRequest(b []byte) (Request, error) {
	var raw struct {
		Type        *string         `json:"type"`
		Appointment json.RawMessage `json:"appointment"`
		Epoch       *string         `json:"epoch"`
		Offset      json.RawMessage `json:"offset"`
	}
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&raw); err != nil {
		return Request{}, fmt.Errorf("not a JSON object: %w", err)
	}
	if d.More() {
		return Request{}, errors.New("one JSON object per message")
	}
	var r Request
	if raw.Type == nil {
		return r, errors.New("type: missing")
	}
	r.Type = *raw.Type
	if r.Type != TypeSubscribe && r.Type != TypeUnsubscribe {
		return r, fmt.Errorf("type: %q is not subscribe or unsubscribe", truncate(r.Type, 40))
	}
	n, err := wholeNumber(raw.Appointment)
	if err != nil || n < 1 {
		if err == nil {
			err = errors.New("must be above 0")
		}
		return r, fmt.Errorf("appointment: %w", err)
	}
	r.Appointment = n
	if r.Type == TypeUnsubscribe {
		return r, nil
	}
	switch {
	case raw.Epoch == nil && raw.Offset == nil:
		return r, nil
	case raw.Epoch == nil:
		return r, errors.New("epoch: missing (resuming needs epoch and offset)")
	case raw.Offset == nil:
		return r, errors.New("offset: missing (resuming needs epoch and offset)")
	}
	off, err := wholeNumber(raw.Offset)
	if err != nil {
		return r, fmt.Errorf("offset: %w", err)
	}
	r.From, err = position(*raw.Epoch, off)
	return r, err
}

// ParsePosition reads a resume position from text (the epoch and offset
// query parameters of the single-visit socket); both empty means fresh.
func ParsePosition(epoch, offset string, hasEpoch bool) (Position, error) {
	if !hasEpoch && offset == "" {
		return Position{}, nil
	}
	if offset == "" {
		return Position{}, errors.New("offset: missing (resuming needs epoch and offset)")
	}
	if !hasEpoch {
		return Position{}, errors.New("epoch: missing (resuming needs epoch and offset)")
	}
	off, err := wholeNumber(json.RawMessage(offset))
	if err != nil {
		return Position{}, fmt.Errorf("offset: %w", err)
	}
	return position(epoch, off)
}

func position(epoch string, off int64) (Position, error) {
	if len(epoch) > MaxEpochLen {
		return Position{}, fmt.Errorf("epoch: longer than %d characters", MaxEpochLen)
	}
	for i := 0; i < len(epoch); i++ {
		if !epochByte(epoch[i]) {
			return Position{}, fmt.Errorf("epoch: character %d is not a letter, digit, - or _", i+1)
		}
	}
	if off < 0 || off > maxOffset {
		return Position{}, errors.New("offset: must be 0 or more")
	}
	return Position{Resume: true, Epoch: epoch, Offset: off}, nil
}

func epochByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// wholeNumber reads a JSON integer: no sign but -, no fraction, exponent
// or quotes.
func wholeNumber(raw json.RawMessage) (int64, error) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || s == "null" {
		return 0, errors.New("missing")
	}
	if len(s) > 17 {
		return 0, errors.New("too large")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%q is not a whole number", truncate(s, 20))
	}
	return n, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Encode puts patient and offset at the front of a message body (a JSON
// object such as {"type":"reading",...}): this is the only encoding of a
// stream message, done once per stream.
func Encode(patient, offset int64, body []byte) []byte {
	b := make([]byte, 0, len(body)+40)
	return AppendEncoded(b, patient, offset, body)
}

// AppendEncoded is Encode appending to b.
func AppendEncoded(b []byte, patient, offset int64, body []byte) []byte {
	b = append(b, `{"patient":`...)
	b = strconv.AppendInt(b, patient, 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, offset, 10)
	inner := bytes.TrimSpace(body)
	if len(inner) >= 2 && inner[0] == '{' {
		inner = bytes.TrimSpace(inner[1:])
		if len(inner) > 0 && inner[0] != '}' {
			b = append(b, ',')
		}
		return append(b, inner...)
	}
	return append(b, '}')
}

// isBulky reports whether a body is a waveform chunk: new viewers get only
// the last few seconds of those.
func isBulky(body []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte(`{"type":"waveform"`))
}

// StreamMessage is the control message placing a viewer in a stream: live
// messages follow on from offset+1 of epoch. It is sent after the history
// a subscription replays, and whenever the stream starts a new epoch.
func StreamMessage(patient, appointment int64, epoch string, offset int64) []byte {
	b := make([]byte, 0, 96)
	b = append(b, `{"type":"stream","patient":`...)
	b = strconv.AppendInt(b, patient, 10)
	if appointment > 0 {
		b = append(b, `,"appointment":`...)
		b = strconv.AppendInt(b, appointment, 10)
	}
	b = append(b, `,"epoch":"`...)
	b = append(b, epoch...)
	b = append(b, `","offset":`...)
	b = strconv.AppendInt(b, offset, 10)
	return append(b, '}')
}

// GapMessage tells a viewer that offsets from..to of epoch will never
// reach it; to 0 means everything after from-1 in that epoch (the epoch
// ended and how many followed is unknown).
func GapMessage(patient int64, epoch string, from, to int64) []byte {
	b := make([]byte, 0, 96)
	b = append(b, `{"type":"gap","patient":`...)
	b = strconv.AppendInt(b, patient, 10)
	b = append(b, `,"epoch":"`...)
	b = append(b, epoch...)
	b = append(b, `","from":`...)
	b = strconv.AppendInt(b, from, 10)
	if to > 0 {
		b = append(b, `,"to":`...)
		b = strconv.AppendInt(b, to, 10)
	}
	return append(b, '}')
}

// ErrorMessage answers a viewer's request that was refused; appointment
// names it when known.
func ErrorMessage(appointment int64, text string) []byte {
	type msg struct {
		Type        string `json:"type"`
		Appointment int64  `json:"appointment,omitempty"`
		Error       string `json:"error"`
	}
	b, _ := json.Marshal(msg{Type: "error", Appointment: appointment, Error: text})
	return b
}

// UnsubscribedMessage confirms that a viewer no longer receives a visit's
// stream, with why when the server ended it.
func UnsubscribedMessage(appointment int64, reason string) []byte {
	type msg struct {
		Type        string `json:"type"`
		Appointment int64  `json:"appointment"`
		Reason      string `json:"reason,omitempty"`
	}
	b, _ := json.Marshal(msg{Type: "unsubscribed", Appointment: appointment, Reason: reason})
	return b
}
