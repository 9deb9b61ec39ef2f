package vitals

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// LiveReading is the live-vitals message for one numeric reading.
type LiveReading struct {
	Type   string    `json:"type"` // "reading"
	Code   string    `json:"code"`
	Value  float64   `json:"value"`
	Unit   string    `json:"unit"`
	Time   time.Time `json:"time"`
	Device string    `json:"device,omitempty"`
	// Relay names the device that relayed the reading (the patient's
	// browser, a hub) when Device is a Bluetooth device paired to it.
	Relay string   `json:"relay,omitempty"`
	Flags []string `json:"flags,omitempty"` // what the device reported: show the value as doubtful
}

// LiveWaveform is the live-vitals message for one waveform chunk. Data
// holds the raw samples; a sample sent as E, L or U is null. Received is
// the server's clock when it published the chunk: viewers estimate their
// clock's offset from it.
type LiveWaveform struct {
	Type     string    `json:"type"` // "waveform"
	Code     string    `json:"code"`
	Origin   float64   `json:"origin"`
	Factor   float64   `json:"factor"`
	Period   float64   `json:"period"`
	Unit     string    `json:"unit,omitempty"`
	Data     Samples   `json:"data"`
	Time     time.Time `json:"time"`
	Device   string    `json:"device,omitempty"`
	Received time.Time `json:"received"`
}

// Samples encodes as a JSON array with null for each NaN.
type Samples []float64

// MarshalJSON writes the samples, NaN as null.
func (s Samples) MarshalJSON() ([]byte, error) {
	return s.appendJSON(make([]byte, 0, 2+len(s)*6))
}

func (s Samples) appendJSON(b []byte) ([]byte, error) {
	b = append(b, '[')
	for i, v := range s {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(v) {
			b = append(b, "null"...)
			continue
		}
		// Samples are mostly whole numbers (a waveform frame's are): below
		// 1e6, where 'g' would turn to an exponent, and not -0, their
		// integer digits are the same bytes, several times faster.
		if i := int64(v); float64(i) == v && -1e6 < v && v < 1e6 && (i != 0 || !math.Signbit(v)) {
			b = strconv.AppendInt(b, i, 10)
			continue
		}
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads an array of numbers, null as NaN.
func (s *Samples) UnmarshalJSON(b []byte) error {
	var raw []*float64
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*s = make(Samples, len(raw))
	for i, v := range raw {
		if v == nil {
			(*s)[i] = math.NaN()
		} else {
			(*s)[i] = *v
		}
	}
	return nil
}

// encodeLive encodes an observation's live messages, once for all viewers;
// received stamps a waveform chunk with the server's clock. Accept
// publishes the same messages one at a time (Ingester.publish).
func encodeLive(p Parsed, device string, received time.Time) [][]byte {
	out := make([][]byte, 0, len(p.Readings)+1)
	from, relay := p.origin(device)
	for i := range p.Readings {
		if b, err := appendLiveReading(nil, &p.Readings[i], from, relay); err == nil {
			out = append(out, b)
		}
	}
	if e := p.Event; e != nil {
		out = append(out, EncodeRelayedEvent(e.Event, e.Name, device, e.Time))
	}
	if p.Waveform != nil {
		if b, err := appendLiveWaveform(nil, p.Waveform, device, &received); err == nil {
			out = append(out, b)
		}
	}
	return out
}

// appendLiveReading and appendLiveWaveform each append one live message
// to dst.
func appendLiveReading(dst []byte, r *Reading, device, relay string) ([]byte, error) {
	lr := LiveReading{Type: "reading", Code: r.Code, Value: r.Value, Unit: r.Unit, Time: r.Time, Device: device, Relay: relay, Flags: r.Flags}
	return lr.appendJSON(dst)
}

func appendLiveWaveform(dst []byte, w *Waveform, device string, received *time.Time) ([]byte, error) {
	lw := LiveWaveform{Type: "waveform", Code: w.Code, Origin: w.Origin, Factor: w.Factor,
		Period: w.Period, Unit: w.OriginUnit, Data: Samples(w.Data), Time: w.Time, Device: device,
		Received: received.UTC().Truncate(time.Millisecond)}
	return lw.appendJSON(dst)
}
