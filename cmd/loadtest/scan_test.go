package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/internal/jsonscan"
)

// serverFrames are frames as the server sends them (docs/protocol.md), and
// the same with what JSON allows that the server does not write.
var serverFrames = []string{
	`[{"patient":42,"offset":17,"type":"reading","code":"8867-4","value":72,"unit":"/min","time":"2026-11-25T10:00:00Z","device":"Pulse oximeter"},
 {"patient":42,"offset":18,"type":"waveform","code":"131330","origin":0,"factor":0.001,"period":4,"unit":"mV","data":[12,15,null,-3,0.5e-2],"time":"2026-11-25T10:00:00.1Z","device":"Home hub","received":"2026-11-25T10:00:00.212Z"}]`,
	`[{"type":"stream","patient":7,"epoch":"e-1_x","offset":0,"appointment":3}]`,
	`[{"type":"gap","patient":7,"epoch":"e","from":4,"to":9},{"type":"news2","patient":7,"offset":5,"inputs":{"rr":{"value":16,"state":"measured"}},"band":"low"}]`,
	`[{"type":"error","error":"no visit \"3\" \u00e9\n","appointment":3}]`,
	`[{"type":"unsubscribed","appointment":3,"reason":"ended"}]`,
	` [ { "Type" : "reading" , "PATIENT" : 1 , "offset" : 2 , "time" : "2026-11-25T10:00:00+02:00" , "x" : [ [ ] , { } , true , false , null ] } ] `,
	`[{"type":"reading","patient":1,"offset":2,"offset":3,"time":null,"type":null}]`,
	`[null,{}]`,
	`[]`,
	`null`,
	`[{"typ\u0065":"reading","patient":-0,"offset":9223372036854775807}]`,
}

// sameMsgs compares two decodings, times by instant and zone offset.
func sameMsgs(a, b []streamMsg) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d messages, want %d", len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		_, xo := x.Time.Zone()
		_, yo := y.Time.Zone()
		if x.Type != y.Type || x.Patient != y.Patient || x.Offset != y.Offset || x.Error != y.Error ||
			!x.Time.Equal(y.Time) || xo != yo || x.Time.IsZero() != y.Time.IsZero() {
			return fmt.Errorf("message %d: %+v, want %+v", i, x, y)
		}
	}
	return nil
}

func TestAppendMessagesDecodesAsEncodingJSON(t *testing.T) {
	for _, f := range serverFrames {
		var want []streamMsg
		if err := json.Unmarshal([]byte(f), &want); err != nil {
			t.Fatalf("encoding/json refuses %s: %v", f, err)
		}
		got, err := appendMessages(nil, []byte(f))
		if err != nil {
			t.Fatalf("appendMessages(%s): %v", f, err)
		}
		if err := sameMsgs(got, want); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	// What is decoded is appended: a viewer reuses one slice.
	got, err := appendMessages([]streamMsg{{Type: "kept"}}, []byte(serverFrames[1]))
	if err != nil || len(got) != 2 || got[0].Type != "kept" || got[1].Type != "stream" {
		t.Errorf("appending to a slice: %+v, %v", got, err)
	}
}

func TestAppendMessagesRefusesMalformedFrames(t *testing.T) {
	for _, f := range []string{
		``, `{}`, `[`, `[{]`, `[{"type":}]`, `[{"type" "reading"}]`, `[{"type":"reading",}]`,
		`[{"type":"reading"}`, `[{"type":"reading"}] x`, `[{"type":"read` + "\n" + `ing"}]`,
		`[{"patient":1.5}]`, `[{"offset":"1"}]`, `[{"offset":99999999999999999999}]`,
		`[{"time":"yesterday"}]`, `[{"type":5}]`, `[1]`, `[{"data":[01]}]`, `[{"data":[1.]}]`,
		`[{"data":[-]}]`, `[{"data":[1e]}]`, `[{"x":tru}]`, `[{"x":[1 2]}]`,
		strings.Repeat("[", jsonscan.MaxDepth+1) + strings.Repeat("]", jsonscan.MaxDepth+1),
	} {
		if _, err := appendMessages(nil, []byte(f)); err == nil {
			t.Errorf("appendMessages(%.40q) accepted a malformed frame", f)
		}
	}
	if _, err := appendMessages(nil, []byte(`[{"x":tru}]`)); !errors.Is(err, errSyntax) {
		t.Errorf("a syntax error is %v, want errSyntax", err)
	}
}

func TestEnvelopeAtReadsTheDevicesEnvelope(t *testing.T) {
	at := time.Date(2026, 12, 6, 23, 10, 0, 123456789, time.UTC)
	for n := range numerics {
		b := appendNumeric(nil, 41+int64(n), n, at)
		seq, got, err := envelopeAt(b)
		if err != nil || seq != 41+int64(n) || !got.Equal(at) {
			t.Errorf("envelopeAt(%s) = %d, %v, %v; want %d, %v", b, seq, got, err, 41+n, at)
		}
	}
	for _, b := range []string{`{"seq":1,"observation":{"effectiveDateTime":"now"}}`, `{"seq":"1"}`, `{"seq":1,"observation":[]}`, `[]`} {
		if _, _, err := envelopeAt([]byte(b)); err == nil {
			t.Errorf("envelopeAt(%s) accepted it", b)
		}
	}
}

// FuzzAppendMessages holds the scanner to encoding/json: whatever it
// decodes into []streamMsg, appendMessages decodes the same, and nothing
// makes the scanner panic.
func FuzzAppendMessages(f *testing.F) {
	for _, s := range serverFrames {
		f.Add([]byte(s))
	}
	f.Add([]byte(`[{"type":"reading","patient":1,"offset":1,"time":"2026-01-01T00:00:00Z","data":[1,2,{"a":[null]}]}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := appendMessages(nil, b)
		var want []streamMsg
		if json.Unmarshal(b, &want) != nil {
			return
		}
		if err != nil {
			t.Fatalf("encoding/json decodes %q, appendMessages refuses it: %v", b, err)
		}
		if err := sameMsgs(got, want); err != nil {
			t.Fatalf("%q: %v", b, err)
		}
	})
}

// BenchmarkDecodeFrame compares the scanner with encoding/json on the
// frame a viewer of one patient gets most often: one ECG chunk.
func BenchmarkDecodeFrame(b *testing.B) {
	frame := []byte(`[{"patient":42,"offset":18,"type":"waveform","code":"131330","origin":0,"factor":0.001,"period":4,"unit":"mV",` +
		`"data":[0,20,40,60,79,98,116,133,149,164,177,189,199,207,214,219,222,223,900,221,218,213,206,198,188],` +
		`"time":"2026-11-25T10:00:00.1Z","device":"Home hub","received":"2026-11-25T10:00:00.212Z"}]`)
	var msgs []streamMsg
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			msgs = msgs[:0]
			if err := json.Unmarshal(frame, &msgs); err != nil || len(msgs) != 1 {
				b.Fatal(err)
			}
		}
	})
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			var err error
			if msgs, err = appendMessages(msgs[:0], frame); err != nil || len(msgs) != 1 {
				b.Fatal(err)
			}
		}
	})
}
