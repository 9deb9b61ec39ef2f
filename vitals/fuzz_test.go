package vitals

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

// The seed corpus is in testdata/fuzz; f.Add adds the tests' own examples.
func addSeeds(f *testing.F, wrap bool) {
	for _, obs := range []string{hrObs, bpObs(121, 79), ecgObs, quantityObs(CodeTemperature, 98.6, "[degF]"), quantityObs(CodeSpO2Alt, 100, "%")} {
		if wrap {
			f.Add(env(1, obs))
		} else {
			f.Add([]byte(obs))
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	addSeeds(f, true)
	f.Add([]byte(`{"seq":-1}`))
	f.Add([]byte(`{"seq":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEnvelope(b)
		var fe *FieldError
		switch {
		case err == nil:
			if e.Seq < 1 || len(e.Observation) == 0 {
				t.Fatalf("accepted %+v", e)
			}
			checkParse(t, e.Observation)
		case e.Seq != 0 && (!errors.As(err, &fe) || fe.Field != "observation"):
			t.Fatalf("seq %d returned with error %v", e.Seq, err)
		}
		// The whole session logic must not panic either, must answer JSON
		// and must never store anything implausible (memStore checks).
		in := NewIngester(newMemStore(t), &memPub{}, Device{ID: 1, PatientID: 2})
		for _, r := range in.Handle(context.Background(), b) {
			if !json.Valid(r) {
				t.Fatalf("reply %q is not JSON", r)
			}
		}
	})
}

func FuzzParseObservation(f *testing.F) {
	addSeeds(f, false)
	f.Fuzz(func(t *testing.T, b []byte) {
		checkParse(t, b)
	})
}

// checkParse asserts what ParseObservation promises for any input.
func checkParse(t *testing.T, b []byte) {
	p, err := ParseObservation(b)
	if err != nil {
		var fe *FieldError
		if !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, "observation") || !strings.HasPrefix(err.Error(), fe.Field+": ") {
			t.Fatalf("error %v does not name an observation field", err)
		}
		return
	}
	if (len(p.Readings) == 0) == (p.Waveform == nil) {
		t.Fatalf("want readings or a waveform, got %+v", p)
	}
	for _, r := range p.Readings {
		unit, ok := Unit(r.Code)
		if !ok || r.Unit != unit || math.IsNaN(r.Value) || math.IsInf(r.Value, 0) || !Plausible(r.Code, r.Value) || r.Time.IsZero() || r.Time.Location().String() != "UTC" {
			t.Fatalf("accepted implausible reading %+v", r)
		}
	}
	if len(p.Readings) == 2 && !(p.Readings[0].Code == CodeSystolic && p.Readings[1].Code == CodeDiastolic && p.Readings[1].Value < p.Readings[0].Value) {
		t.Fatalf("accepted panel %+v", p.Readings)
	}
	if w := p.Waveform; w != nil {
		finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
		if !IsWaveform(w.Code) || !(w.Period > 0) || !finite(w.Period) || w.Factor == 0 || !finite(w.Factor) || !finite(w.Origin) || len(w.Data) == 0 || len(w.Data) > maxSamples {
			t.Fatalf("accepted waveform %+v", w)
		}
		for _, v := range w.Data {
			if math.IsInf(v, 0) || math.IsInf(w.Origin+w.Factor*v, 0) {
				t.Fatalf("accepted sample %v", v)
			}
		}
	}
	for _, msg := range encodeLive(p, "dev") {
		if !json.Valid(msg) {
			t.Fatalf("live message %q is not JSON", msg)
		}
	}
}
