package vitals

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// The live messages are encoded by hand: they are encoded for every
// message a device sends, and reflection made json.Marshal most of the
// cost of publishing one. The output is byte for byte what json.Marshal
// gives (TestLiveEncodingMatchesJSON, FuzzLiveEncoding).

// appendJSON appends r as json.Marshal would.
func (r *LiveReading) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, r.Type)
	b = append(b, `,"code":`...)
	b = appendJSONString(b, r.Code)
	b = append(b, `,"value":`...)
	b, err := appendJSONFloat(b, r.Value)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"unit":`...)
	b = appendJSONString(b, r.Unit)
	b = append(b, `,"time":`...)
	if b, err = appendJSONTime(b, r.Time); err != nil {
		return nil, err
	}
	if r.Device != "" {
		b = append(b, `,"device":`...)
		b = appendJSONString(b, r.Device)
	}
	if r.Relay != "" {
		b = append(b, `,"relay":`...)
		b = appendJSONString(b, r.Relay)
	}
	if len(r.Flags) > 0 {
		b = append(b, `,"flags":[`...)
		for i, f := range r.Flags {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, f)
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

// appendJSON appends w as json.Marshal would.
func (w *LiveWaveform) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, w.Type)
	b = append(b, `,"code":`...)
	b = appendJSONString(b, w.Code)
	var err error
	for _, f := range [...]struct {
		name string
		v    float64
	}{{`,"origin":`, w.Origin}, {`,"factor":`, w.Factor}, {`,"period":`, w.Period}} {
		b = append(b, f.name...)
		if b, err = appendJSONFloat(b, f.v); err != nil {
			return nil, err
		}
	}
	if w.Unit != "" {
		b = append(b, `,"unit":`...)
		b = appendJSONString(b, w.Unit)
	}
	b = append(b, `,"data":`...)
	for _, v := range w.Data {
		if math.IsInf(v, 0) {
			return nil, &json.UnsupportedValueError{Str: strconv.FormatFloat(v, 'g', -1, 64)}
		}
	}
	// As json.Marshal calls Samples.MarshalJSON (nil included), and compacts
	// what it returns, which has no spaces to remove.
	b, _ = w.Data.appendJSON(b)
	b = append(b, `,"time":`...)
	if b, err = appendJSONTime(b, w.Time); err != nil {
		return nil, err
	}
	if w.Device != "" {
		b = append(b, `,"device":`...)
		b = appendJSONString(b, w.Device)
	}
	b = append(b, `,"received":`...)
	if b, err = appendJSONTime(b, w.Received); err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// appendJSONFloat appends f as encoding/json writes a float64.
func appendJSONFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, &json.UnsupportedValueError{Str: strconv.FormatFloat(f, 'g', -1, 64)}
	}
	abs := math.Abs(f)
	if abs < 1<<53 && f == math.Trunc(f) && (f != 0 || !math.Signbit(f)) {
		// A whole number (most readings, a waveform's origin and period)
		// has the digits AppendFloat's 'f' format gives it, found without
		// its shortest-decimal search.
		return strconv.AppendInt(b, int64(f), 10), nil
	}
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// appendJSONTime appends t as encoding/json writes it (Time.MarshalJSON:
// RFC 3339 with the nanoseconds' trailing zeros cut, quoted). A UTC time
// from the year 0 to 9999, every time the server publishes, is written
// here: Time.AppendText uses most of a device reader's stack.
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	year, month, day := t.Date()
	if t.Location() != time.UTC || year < 0 || year > 9999 {
		return appendJSONTimeSlow(b, t)
	}
	hour, minute, sec := t.Clock()
	b = append(b, '"')
	b = append4(b, year)
	b = append(b, '-')
	b = append2(b, int(month))
	b = append(b, '-')
	b = append2(b, day)
	b = append(b, 'T')
	b = append2(b, hour)
	b = append(b, ':')
	b = append2(b, minute)
	b = append(b, ':')
	b = append2(b, sec)
	if ns := t.Nanosecond(); ns != 0 {
		b = append(b, '.')
		digits := 9
		for ns%10 == 0 {
			ns /= 10
			digits--
		}
		for p := digits - 1; p >= 0; p-- {
			d := ns
			for range p {
				d /= 10
			}
			b = append(b, byte('0'+d%10))
		}
	}
	return append(b, 'Z', '"'), nil
}

func append2(b []byte, n int) []byte { return append(b, byte('0'+n/10), byte('0'+n%10)) }

func append4(b []byte, n int) []byte {
	return append(b, byte('0'+n/1000), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10))
}

// appendJSONTimeSlow is appendJSONTime through Time.AppendText, for any
// time.
//
//go:noinline
func appendJSONTimeSlow(b []byte, t time.Time) ([]byte, error) {
	b, err := t.AppendText(append(b, '"'))
	if err != nil {
		return nil, err
	}
	return append(b, '"'), nil
}

// appendJSONString appends s as encoding/json quotes it, HTML-safe.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // rare: let encoding/json escape it
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
