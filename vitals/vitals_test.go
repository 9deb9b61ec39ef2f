package vitals

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

const when = `"effectiveDateTime":"2026-11-25T10:00:00Z"`

func quantityObs(code string, value any, unit string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":%q}]},%s,"valueQuantity":{"value":%v,"unit":%q,"system":"http://unitsofmeasure.org","code":%q}}`,
		code, when, value, unit, unit)
}

const bpObs = `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},` + when + `,
"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":121,"unit":"mm[Hg]","code":"mm[Hg]"}},
{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":79,"unit":"mm[Hg]","code":"mm[Hg]"}}]}`

const ecgObs = `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"131328"}]},` + when + `,
"valueSampledData":{"origin":{"value":0},"period":4,"factor":0.005,"dimensions":1,"data":"10 12 -3 400"}}`

func TestParseObservationAccepts(t *testing.T) {
	cases := []struct {
		name  string
		obs   string
		codes []string
		vals  []float64
	}{
		{"heart rate", quantityObs("8867-4", 72, "/min"), []string{"8867-4"}, []float64{72}},
		{"SpO2 at 100", quantityObs("59408-5", 100, "%"), []string{"59408-5"}, []float64{100}},
		{"respiratory rate", quantityObs("9279-1", 15, "/min"), []string{"9279-1"}, []float64{15}},
		{"temperature in Cel", quantityObs("8310-5", 36.8, "Cel"), []string{"8310-5"}, []float64{36.8}},
		{"temperature in degF becomes Cel", quantityObs("8310-5", 98.6, "[degF]"), []string{"8310-5"}, []float64{37}},
		{"weight", quantityObs("29463-7", 70.5, "kg"), []string{"29463-7"}, []float64{70.5}},
		{"glucose", quantityObs("2339-0", 95, "mg/dL"), []string{"2339-0"}, []float64{95}},
		{"blood pressure panel", bpObs, []string{"8480-6", "8462-4"}, []float64{121, 79}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParseObservation(json.RawMessage(c.obs))
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Readings) != len(c.codes) {
				t.Fatalf("got %d readings, want %d", len(p.Readings), len(c.codes))
			}
			for i, r := range p.Readings {
				if r.Code != c.codes[i] || math.Abs(r.Value-c.vals[i]) > 1e-9 || r.Time.IsZero() {
					t.Errorf("reading %d = %+v, want %s %v", i, r, c.codes[i], c.vals[i])
				}
			}
		})
	}
	p, err := ParseObservation(json.RawMessage(ecgObs))
	if err != nil || p.Waveform == nil || len(p.Waveform.Data) != 4 || p.Waveform.Period != 4 || p.Waveform.Factor != 0.005 {
		t.Fatalf("waveform: %+v, %v", p.Waveform, err)
	}
}

func TestParseObservationRejectsNamingTheField(t *testing.T) {
	cases := []struct{ name, obs, field string }{
		{"not JSON", `{"resourceType":`, "observation"},
		{"wrong resource", strings.Replace(quantityObs("8867-4", 72, "/min"), `"Observation"`, `"Patient"`, 1), "observation.resourceType"},
		{"bad status", strings.Replace(quantityObs("8867-4", 72, "/min"), `"final"`, `"guess"`, 1), "observation.status"},
		{"unknown code", quantityObs("1234-5", 72, "/min"), "observation.code.coding"},
		{"no time", strings.Replace(quantityObs("8867-4", 72, "/min"), when+",", "", 1), "observation.effectiveDateTime"},
		{"bad time", strings.Replace(quantityObs("8867-4", 72, "/min"), "2026-11-25T10:00:00Z", "yesterday", 1), "observation.effectiveDateTime"},
		{"wrong unit", quantityObs("8867-4", 72, "mm[Hg]"), "observation.valueQuantity.code"},
		{"no value", strings.Replace(quantityObs("8867-4", 72, "/min"), `"value":72,`, "", 1), "observation.valueQuantity.value"},
		{"heart rate 0", quantityObs("8867-4", 0, "/min"), "observation.valueQuantity.value"},
		{"heart rate 300", quantityObs("8867-4", 300, "/min"), "observation.valueQuantity.value"},
		{"SpO2 above 100", quantityObs("59408-5", 100.5, "%"), "observation.valueQuantity.value"},
		{"systolic 400", strings.Replace(bpObs, "121", "400", 1), "observation.component[0].valueQuantity.value"},
		{"temperature 9 Cel", quantityObs("8310-5", 9, "Cel"), "observation.valueQuantity.value"},
		{"temperature 130 degF", quantityObs("8310-5", 130, "[degF]"), "observation.valueQuantity.value"},
		{"respiratory rate 70", quantityObs("9279-1", 70, "/min"), "observation.valueQuantity.value"},
		{"panel without diastolic", strings.Replace(bpObs, `"8462-4"`, `"8480-6"`, 1), "observation.component[1].code"},
		{"waveform without period", strings.Replace(ecgObs, `"period":4,`, "", 1), "observation.valueSampledData.period"},
		{"waveform bad sample", strings.Replace(ecgObs, "400", "E", 1), "observation.valueSampledData.data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseObservation(json.RawMessage(c.obs))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a FieldError", err)
			}
			if fe.Field != c.field {
				t.Fatalf("field %q (%v), want %q", fe.Field, err, c.field)
			}
		})
	}
}

func TestDecodeEnvelope(t *testing.T) {
	if e, err := DecodeEnvelope([]byte(`{"seq":3,"observation":{}}`)); err != nil || e.Seq != 3 {
		t.Fatalf("good envelope: %+v %v", e, err)
	}
	for _, bad := range []string{`nope`, `{"seq":0,"observation":{}}`, `{"seq":1.5,"observation":{}}`, `{"seq":"1","observation":{}}`, `{"observation":{}}`, `{"seq":1}{}`} {
		if _, err := DecodeEnvelope([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// memSink is a small real implementation of the store's rules: readings are
// unique by (device, seq, code) and the last sequence only moves forward.
type memSink struct {
	rows    map[string]Reading
	lastSeq int64
	fail    bool
}

func (m *memSink) Append(_ context.Context, _ int64, lastSeq int64, rs []StoredReading) error {
	if m.fail {
		return errors.New("disk full")
	}
	for _, r := range rs {
		k := fmt.Sprintf("%d/%s", r.Seq, r.Reading.Code)
		if _, ok := m.rows[k]; !ok {
			m.rows[k] = r.Reading
		}
	}
	m.lastSeq = max(m.lastSeq, lastSeq)
	return nil
}

type memPub struct{ msgs [][]byte }

func (p *memPub) Publish(_ context.Context, _ int64, msg []byte) error {
	p.msgs = append(p.msgs, msg)
	return nil
}

func env(seq int, obs string) []byte {
	return []byte(fmt.Sprintf(`{"seq":%d,"observation":%s}`, seq, obs))
}

type replyMsg struct {
	Ack   *int64 `json:"ack"`
	Error string `json:"error"`
	Seq   *int64 `json:"seq"`
}

func replies(t *testing.T, raw [][]byte) (ack int64, errs []replyMsg) {
	t.Helper()
	ack = -1
	for _, b := range raw {
		var r replyMsg
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if r.Ack != nil {
			ack = *r.Ack
		}
		if r.Error != "" {
			errs = append(errs, r)
		}
	}
	return ack, errs
}

func TestIngesterAckContract(t *testing.T) {
	ctx := context.Background()
	sink := &memSink{rows: map[string]Reading{}}
	pub := &memPub{}
	dev := Device{ID: 1, PatientID: 9, Name: "Hub"}
	in := NewIngester(sink, pub, dev)
	hr := quantityObs("8867-4", 70, "/min")

	if ack, _ := replies(t, in.Handle(ctx, env(1, hr))); ack != 1 {
		t.Fatalf("ack %d, want 1", ack)
	}
	// Out of order: 3 is held until 2 arrives.
	if ack, _ := replies(t, in.Handle(ctx, env(3, bpObs))); ack != 1 {
		t.Fatalf("ack after a gap %d, want 1", ack)
	}
	if ack, _ := replies(t, in.Handle(ctx, env(2, hr))); ack != 3 {
		t.Fatalf("ack after filling the gap %d, want 3", ack)
	}
	// A rejected message is handled: it is acked and stores nothing.
	ack, errs := replies(t, in.Handle(ctx, env(4, quantityObs("8867-4", 999, "/min"))))
	if ack != 4 || len(errs) != 1 || *errs[0].Seq != 4 || !strings.Contains(errs[0].Error, "value") {
		t.Fatalf("rejected message: ack %d errors %+v", ack, errs)
	}
	// Another patient's subject is refused.
	_, errs = replies(t, in.Handle(ctx, env(5, strings.Replace(hr, `"status":"final",`, `"status":"final","subject":{"reference":"Patient/8"},`, 1))))
	if len(errs) != 1 || !strings.Contains(errs[0].Error, "observation.subject") {
		t.Fatalf("other patient's subject: %+v", errs)
	}
	// Malformed frames get an error without seq and do not move the ack.
	ack, errs = replies(t, in.Handle(ctx, []byte(`{"seq":`)))
	if ack != -1 || len(errs) != 1 || errs[0].Seq != nil {
		t.Fatalf("malformed: ack %d errors %+v", ack, errs)
	}
	if len(sink.rows) != 4 || sink.lastSeq != 5 {
		t.Fatalf("stored %d rows, last seq %d; want 4 rows (2 HR + BP panel), 5", len(sink.rows), sink.lastSeq)
	}
	if len(pub.msgs) != 4 {
		t.Fatalf("published %d live messages, want 4", len(pub.msgs))
	}

	// Reconnect: a new Ingester from the stored sequence ignores resends.
	in2 := NewIngester(sink, pub, Device{ID: 1, PatientID: 9, LastSeq: sink.lastSeq})
	if ack, _ := replies(t, in2.Handle(ctx, env(2, hr))); ack != 5 {
		t.Fatalf("resend after reconnect: ack %d, want 5", ack)
	}
	if len(sink.rows) != 4 || len(pub.msgs) != 4 {
		t.Fatal("a resend was stored or shown again")
	}

	// A store failure does not advance the ack: the device will resend.
	sink.fail = true
	ack, errs = replies(t, in2.Handle(ctx, env(6, hr)))
	if ack != 5 || len(errs) != 1 {
		t.Fatalf("store failure: ack %d errors %+v", ack, errs)
	}
	sink.fail = false
	if ack, _ := replies(t, in2.Handle(ctx, env(6, hr))); ack != 6 {
		t.Fatalf("retry after store failure: ack %d, want 6", ack)
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte(`{"seq":1,"observation":` + quantityObs("8867-4", 72, "/min") + `}`))
	f.Add([]byte(`{"seq":2,"observation":` + bpObs + `}`))
	f.Add([]byte(`{"seq":3,"observation":` + ecgObs + `}`))
	f.Add([]byte(`{"seq":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEnvelope(b)
		if err != nil {
			return
		}
		if e.Seq < 1 {
			t.Fatalf("accepted seq %d", e.Seq)
		}
		p, err := ParseObservation(e.Observation)
		if err != nil {
			return
		}
		for _, r := range p.Readings {
			m := catalogue[r.Code]
			if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) || r.Value <= m.min || r.Value > m.max || r.Unit != m.unit {
				t.Fatalf("accepted implausible reading %+v", r)
			}
		}
	})
}
