package live

import (
	"strings"
	"testing"
)

func TestDecodeRequest(t *testing.T) {
	for _, c := range []struct {
		in    string
		want  Request
		field string // named in the error; "" for success
	}{
		{`{"type":"subscribe","appointment":12}`, Request{Type: TypeSubscribe, Appointment: 12}, ""},
		{`{"type":"subscribe","appointment":12,"epoch":"Ab-_9","offset":40}`, Request{Type: TypeSubscribe, Appointment: 12, From: Position{Resume: true, Epoch: "Ab-_9", Offset: 40}}, ""},
		{`{"type":"subscribe","appointment":12,"epoch":"","offset":0}`, Request{Type: TypeSubscribe, Appointment: 12, From: Position{Resume: true}}, ""},
		{`{"type":"unsubscribe","appointment":3,"extra":true}`, Request{Type: TypeUnsubscribe, Appointment: 3}, ""},
		{`{"appointment":12}`, Request{}, "type"},
		{`{"type":"watch","appointment":12}`, Request{}, "type"},
		{`{"type":"subscribe"}`, Request{}, "appointment"},
		{`{"type":"subscribe","appointment":0}`, Request{}, "appointment"},
		{`{"type":"subscribe","appointment":1.5}`, Request{}, "appointment"},
		{`{"type":"subscribe","appointment":"12"}`, Request{}, "appointment"},
		{`{"type":"subscribe","appointment":1e3}`, Request{}, "appointment"},
		{`{"type":"subscribe","appointment":12,"epoch":"x"}`, Request{}, "offset"},
		{`{"type":"subscribe","appointment":12,"offset":3}`, Request{}, "epoch"},
		{`{"type":"subscribe","appointment":12,"epoch":"a b","offset":3}`, Request{}, "epoch"},
		{`{"type":"subscribe","appointment":12,"epoch":"` + strings.Repeat("a", 65) + `","offset":3}`, Request{}, "epoch"},
		{`{"type":"subscribe","appointment":12,"epoch":"a","offset":-1}`, Request{}, "offset"},
		{`{"type":"subscribe","appointment":12,"epoch":"a","offset":99999999999999999999}`, Request{}, "offset"},
		{`{"type":"subscribe","appointment":12} {}`, Request{}, "one JSON object"},
		{`[1]`, Request{}, "JSON object"},
		{`{"type":`, Request{}, "JSON object"},
	} {
		got, err := DecodeRequest([]byte(c.in))
		if c.field == "" {
			if err != nil || got != c.want {
				t.Errorf("DecodeRequest(%s) = %+v, %v; want %+v", c.in, got, err, c.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("DecodeRequest(%s): error %v, want one naming %q", c.in, err, c.field)
		}
	}
}

func TestParsePosition(t *testing.T) {
	if p, err := ParsePosition("", "", false); err != nil || p.Resume {
		t.Fatalf("no parameters: %+v %v, want fresh", p, err)
	}
	if p, err := ParsePosition("e1", "17", true); err != nil || p != (Position{Resume: true, Epoch: "e1", Offset: 17}) {
		t.Fatalf("e1/17: %+v %v", p, err)
	}
	for _, c := range [][3]string{{"e1", "", "offset"}, {"", "3", "epoch"}, {"e1", "x", "offset"}, {"e 1", "3", "epoch"}} {
		if _, err := ParsePosition(c[0], c[1], c[0] != ""); err == nil || !strings.Contains(err.Error(), c[2]) {
			t.Errorf("ParsePosition(%q, %q): %v, want an error naming %s", c[0], c[1], err, c[2])
		}
	}
}

// FuzzDecodeRequest: whatever a viewer sends, decoding never panics, and
// what it accepts is a well-formed request that survives a round trip.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"type":"subscribe","appointment":12}`,
		`{"type":"subscribe","appointment":12,"epoch":"Ab-_9","offset":40}`,
		`{"type":"unsubscribe","appointment":3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		if r.Appointment < 1 || (r.Type != TypeSubscribe && r.Type != TypeUnsubscribe) {
			t.Fatalf("accepted %q as %+v", b, r)
		}
		if r.From.Resume {
			p, err := position(r.From.Epoch, r.From.Offset)
			if err != nil || p != r.From {
				t.Fatalf("accepted position %+v fails its own check: %v", r.From, err)
			}
		}
	})
}
