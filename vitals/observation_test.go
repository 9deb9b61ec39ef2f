package vitals

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

const at = "2026-11-25T10:00:00Z"

// quantityObs is a numeric observation with value and UCUM code.
func quantityObs(code string, value any, ucum string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","status":"final",`+
		`"code":{"coding":[{"system":"http://loinc.org","code":%q}]},"effectiveDateTime":%q,`+
		`"valueQuantity":{"value":%v,"unit":%q,"system":"http://unitsofmeasure.org","code":%q}}`,
		code, at, value, ucum, ucum)
}

func bpObs(sys, dia any) string {
	return fmt.Sprintf(`{"resourceType":"Observation","status":"final",`+
		`"code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"effectiveDateTime":%q,"component":[`+
		`{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":%v,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},`+
		`{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":%v,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`,
		at, sys, dia)
}

func waveObs(code, data string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","status":"final",`+
		`"code":{"coding":[{"system":"urn:oid:2.16.840.1.113883.6.24","code":%q}]},"effectiveDateTime":%q,`+
		`"valueSampledData":{"origin":{"value":0,"unit":"mV","code":"mV"},"period":4,"factor":0.001,"dimensions":1,"data":%q}}`,
		code, at, data)
}

var (
	hrObs  = quantityObs(CodeHeartRate, 72, "/min")
	ecgObs = waveObs(CodeECGLeadII, "10 12 -3 900 E 15")
)

func TestParseObservationAccepts(t *testing.T) {
	type want struct {
		code, unit string
		value      float64
	}
	cases := []struct {
		name string
		obs  string
		want []want
	}{
		{"heart rate", hrObs, []want{{"8867-4", "/min", 72}}},
		{"heart rate with a UCUM annotation", quantityObs("8867-4", 61, "{beats}/min"), []want{{"8867-4", "/min", 61}}},
		{"respiratory rate", quantityObs("9279-1", 15, "/min"), []want{{"9279-1", "/min", 15}}},
		{"SpO2 59408-5", quantityObs("59408-5", 97, "%"), []want{{"59408-5", "%", 97}}},
		{"SpO2 2708-6 at 100", quantityObs("2708-6", 100, "%"), []want{{"2708-6", "%", 100}}},
		{"blood pressure panel", bpObs(121, 79), []want{{"8480-6", "mm[Hg]", 121}, {"8462-4", "mm[Hg]", 79}}},
		{"blood pressure panel with mean pressure", strings.Replace(bpObs(121, 79), `"component":[`,
			`"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8478-0"}]},"valueQuantity":{"value":93,"code":"mm[Hg]"}},`, 1),
			[]want{{"8480-6", "mm[Hg]", 121}, {"8462-4", "mm[Hg]", 79}}},
		{"temperature in Cel", quantityObs("8310-5", 36.8, "Cel"), []want{{"8310-5", "Cel", 36.8}}},
		{"temperature in degF is stored in Cel", quantityObs("8310-5", 98.6, "[degF]"), []want{{"8310-5", "Cel", 37}}},
		{"weight", quantityObs("29463-7", 70.5, "kg"), []want{{"29463-7", "kg", 70.5}}},
		{"glucose mg/dL", quantityObs("2339-0", 95, "mg/dL"), []want{{"2339-0", "mg/dL", 95}}},
		{"glucose mmol/L", quantityObs("15074-8", 5.4, "mmol/L"), []want{{"15074-8", "mmol/L", 5.4}}},
		{"unit only, no UCUM code", strings.Replace(hrObs, `,"system":"http://unitsofmeasure.org","code":"/min"`, "", 1), []want{{"8867-4", "/min", 72}}},
		{"LOINC after another coding", strings.Replace(hrObs, `"coding":[`, `"coding":[{"system":"http://snomed.info/sct","code":"364075005"},`, 1), []want{{"8867-4", "/min", 72}}},
		{"fractional seconds and an offset", strings.Replace(hrObs, at, "2026-11-25T11:00:00.250+01:00", 1), []want{{"8867-4", "/min", 72}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParseObservation(json.RawMessage(c.obs))
			if err != nil {
				t.Fatal(err)
			}
			if p.Waveform != nil || len(p.Readings) != len(c.want) {
				t.Fatalf("got %+v, want %d readings", p, len(c.want))
			}
			for i, r := range p.Readings {
				w := c.want[i]
				if r.Code != w.code || r.Unit != w.unit || math.Abs(r.Value-w.value) > 1e-9 {
					t.Errorf("reading %d = %+v, want %s %v %s", i, r, w.code, w.value, w.unit)
				}
				if r.Time.Location().String() != "UTC" || r.Time.Hour() != 10 {
					t.Errorf("reading %d time %v, want 10:00 UTC", i, r.Time)
				}
			}
		})
	}
}

func TestParseObservationWaveforms(t *testing.T) {
	for _, code := range []string{CodeECG, CodeECGLeadI, CodeECGLeadII, CodePleth} {
		p, err := ParseObservation(json.RawMessage(waveObs(code, "1 2 3")))
		if err != nil || p.Waveform == nil || p.Readings != nil {
			t.Fatalf("%s: %+v %v", code, p, err)
		}
	}
	p, err := ParseObservation(json.RawMessage(ecgObs))
	if err != nil {
		t.Fatal(err)
	}
	w := p.Waveform
	if w.Code != CodeECGLeadII || w.Period != 4 || w.Factor != 0.001 || w.Origin != 0 || w.OriginUnit != "mV" || w.Dimensions != 1 {
		t.Fatalf("waveform %+v", w)
	}
	if len(w.Data) != 6 || w.Data[3] != 900 || !math.IsNaN(w.Data[4]) || w.Data[5] != 15 {
		t.Fatalf("samples %v, want 6 with E as NaN", w.Data)
	}
	// Factor defaults to 1.
	p, err = ParseObservation(json.RawMessage(strings.Replace(ecgObs, `"factor":0.001,`, "", 1)))
	if err != nil || p.Waveform.Factor != 1 {
		t.Fatalf("no factor: %+v %v", p.Waveform, err)
	}
}

func TestParseObservationRejectsNamingTheField(t *testing.T) {
	cases := []struct{ name, obs, field, reason string }{
		{"not JSON", `{"resourceType":`, "observation", "not valid JSON"},
		{"not an object", `[1]`, "observation", "an array, want an object"},
		{"wrong resource type", strings.Replace(hrObs, `"Observation"`, `"Patient"`, 1), "observation.resourceType", `"Patient"`},
		{"no status", strings.Replace(hrObs, `"status":"final",`, "", 1), "observation.status", "missing"},
		{"cancelled", strings.Replace(hrObs, `"final"`, `"cancelled"`, 1), "observation.status", "cancelled"},
		{"no code", strings.Replace(hrObs, `"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},`, "", 1), "observation.code.coding", "missing"},
		{"unknown code", quantityObs("1234-5", 72, "/min"), "observation.code.coding[0].code", `"1234-5"`},
		{"waveform code under LOINC", strings.Replace(ecgObs, "urn:oid:2.16.840.1.113883.6.24", "http://loinc.org", 1), "observation.code.coding[0].code", "not a measurement"},
		{"no effectiveDateTime", strings.Replace(hrObs, `"effectiveDateTime":"`+at+`",`, "", 1), "observation.effectiveDateTime", "missing"},
		{"date only", strings.Replace(hrObs, at, "2026-11-25", 1), "observation.effectiveDateTime", "not a FHIR dateTime with seconds and a time zone"},
		{"no time zone", strings.Replace(hrObs, at, "2026-11-25T10:00:00", 1), "observation.effectiveDateTime", "not a FHIR dateTime with seconds and a time zone"},
		{"time is a number", strings.Replace(hrObs, `"`+at+`"`, "1764064800", 1), "observation.effectiveDateTime", "a number, want a string"},
		{"no valueQuantity", hrObs[:strings.Index(hrObs, `,"valueQuantity"`)] + "}", "observation.valueQuantity", "missing"},
		{"no value", strings.Replace(hrObs, `"value":72,`, "", 1), "observation.valueQuantity.value", "missing"},
		{"value as a string", strings.Replace(hrObs, `"value":72`, `"value":"72"`, 1), "observation.valueQuantity.value", "a string, want a number"},
		{"value overflows", strings.Replace(hrObs, `"value":72`, `"value":1e999`, 1), "observation.valueQuantity.value", "not a finite number"},
		{"comparator", strings.Replace(hrObs, `"value":72,`, `"value":72,"comparator":">",`, 1), "observation.valueQuantity.comparator", "exact"},
		{"not UCUM", strings.Replace(hrObs, "http://unitsofmeasure.org", "http://example.org/units", 1), "observation.valueQuantity.system", "unitsofmeasure"},
		{"wrong UCUM code", quantityObs("8867-4", 72, "mm[Hg]"), "observation.valueQuantity.code", `"mm[Hg]" is not the UCUM unit for 8867-4 (want "/min")`},
		{"no unit at all", strings.Replace(hrObs, `"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"`, `"system":"http://unitsofmeasure.org"`, 1), "observation.valueQuantity.code", "missing"},
		{"temperature unit", quantityObs("8310-5", 37, "K"), "observation.valueQuantity.code", `(want "Cel" or "[degF]")`},
		{"heart rate 0", quantityObs("8867-4", 0, "/min"), "observation.valueQuantity.value", "impossible for heart rate"},
		{"heart rate negative", quantityObs("8867-4", -5, "/min"), "observation.valueQuantity.value", "impossible"},
		{"heart rate 300", quantityObs("8867-4", 300, "/min"), "observation.valueQuantity.value", "must be > 0 and < 300 /min"},
		{"respiratory rate 0", quantityObs("9279-1", 0, "/min"), "observation.valueQuantity.value", "impossible"},
		{"respiratory rate 70", quantityObs("9279-1", 70, "/min"), "observation.valueQuantity.value", "impossible for respiratory rate"},
		{"SpO2 0", quantityObs("59408-5", 0, "%"), "observation.valueQuantity.value", "impossible"},
		{"SpO2 above 100", quantityObs("2708-6", 100.5, "%"), "observation.valueQuantity.value", "<= 100 %"},
		{"temperature 10 Cel", quantityObs("8310-5", 10, "Cel"), "observation.valueQuantity.value", "impossible"},
		{"temperature 50 Cel", quantityObs("8310-5", 50, "Cel"), "observation.valueQuantity.value", "impossible"},
		{"temperature 130 degF", quantityObs("8310-5", 130, "[degF]"), "observation.valueQuantity.value", `130 [degF] is impossible for body temperature`},
		{"weight 0", quantityObs("29463-7", 0, "kg"), "observation.valueQuantity.value", "impossible"},
		{"glucose negative", quantityObs("2339-0", -1, "mg/dL"), "observation.valueQuantity.value", "impossible"},
		{"systolic 0", bpObs(0, 79), "observation.component[0].valueQuantity.value", "impossible"},
		{"systolic 400", bpObs(400, 79), "observation.component[0].valueQuantity.value", "impossible for systolic"},
		{"diastolic above systolic", bpObs(120, 130), "observation.component[1].valueQuantity.value", "not below systolic"},
		{"systolic twice", strings.Replace(bpObs(121, 79), `"8462-4"`, `"8480-6"`, 1), "observation.component[1].code", "twice"},
		{"panel without diastolic", strings.Replace(bpObs(121, 79), `"8462-4"`, `"8478-0"`, 1), "observation.component", "both"},
		{"panel without components", strings.Replace(hrObs, `"8867-4"`, `"85354-9"`, 1), "observation.component", "missing"},
		{"component in the wrong unit", strings.Replace(bpObs(121, 79), `"code":"mm[Hg]"}},{`, `"code":"kPa"}},{`, 1), "observation.component[0].valueQuantity.code", `"kPa"`},
		{"waveform as a quantity", strings.Replace(strings.Replace(hrObs, "http://loinc.org", SystemMDC, 1), `"8867-4"`, `"131330"`, 1), "observation.valueSampledData", "missing"},
		{"numeric as a waveform", strings.Replace(strings.Replace(ecgObs, SystemMDC, SystemLOINC, 1), `"131330"`, `"8867-4"`, 1), "observation.valueQuantity", "missing"},
		{"waveform without origin", strings.Replace(ecgObs, `"origin":{"value":0,"unit":"mV","code":"mV"},`, "", 1), "observation.valueSampledData.origin.value", "missing"},
		{"waveform without period", strings.Replace(ecgObs, `"period":4,`, "", 1), "observation.valueSampledData.period", "missing"},
		{"waveform period 0", strings.Replace(ecgObs, `"period":4,`, `"period":0,`, 1), "observation.valueSampledData.period", "above 0"},
		{"waveform factor 0", strings.Replace(ecgObs, `"factor":0.001,`, `"factor":0,`, 1), "observation.valueSampledData.factor", "other than 0"},
		{"waveform of two channels", strings.Replace(ecgObs, `"dimensions":1`, `"dimensions":2`, 1), "observation.valueSampledData.dimensions", "one channel"},
		{"waveform dimensions 1.5", strings.Replace(ecgObs, `"dimensions":1`, `"dimensions":1.5`, 1), "observation.valueSampledData.dimensions", "want a whole number"},
		{"waveform without data", strings.Replace(ecgObs, `,"data":"10 12 -3 900 E 15"`, "", 1), "observation.valueSampledData.data", "missing"},
		{"waveform with empty data", waveObs(CodePleth, " "), "observation.valueSampledData.data", "no samples"},
		{"waveform bad sample", waveObs(CodePleth, "1 2 x"), "observation.valueSampledData.data", `sample 2 ("x")`},
		{"waveform NaN sample", waveObs(CodePleth, "1 NaN"), "observation.valueSampledData.data", "sample 1"},
		{"waveform infinite sample", waveObs(CodePleth, "1 1e309"), "observation.valueSampledData.data", "sample 1"},
		{"waveform too long", waveObs(CodePleth, strings.Repeat("1 ", maxSamples+1)), "observation.valueSampledData.data", "at most 4096"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParseObservation(json.RawMessage(c.obs))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %+v, %v; want a FieldError", p, err)
			}
			if fe.Field != c.field || !strings.Contains(fe.Reason, c.reason) {
				t.Fatalf("error %q\nwant field %q with reason containing %q", err, c.field, c.reason)
			}
			if !strings.HasPrefix(err.Error(), c.field+": ") {
				t.Fatalf("error %q does not start with its field", err)
			}
		})
	}
}

// TestDateTimeOutsideFHIRIsRefused: a reading's or an event's time is a
// FHIR dateTime with seconds and a time zone. Forms time.Parse takes but
// neither FHIR nor RFC 3339 writes (a ',' as the decimal mark, more than
// nine fraction digits, which it cut, a zone beyond 14:00, the year 0000)
// are refused, naming the field and the form read, by each message that
// carries a time; the forms at FHIR's edges are read.
func TestDateTimeOutsideFHIRIsRefused(t *testing.T) {
	parsers := []struct {
		field string
		parse func(when string) (time.Time, error)
	}{
		{"observation.effectiveDateTime", func(when string) (time.Time, error) {
			p, err := ParseObservation(json.RawMessage(strings.Replace(hrObs, at, when, 1)))
			if err != nil {
				return time.Time{}, err
			}
			return p.Readings[0].Time, nil
		}},
		{"observation.effectiveDateTime", func(when string) (time.Time, error) { // as encoding/json reads it
			o, err := unmarshalObservation([]byte(strings.Replace(hrObs, at, when, 1)))
			var p Parsed
			if err == nil {
				err = o.parsed(&p)
			}
			if err != nil {
				return time.Time{}, err
			}
			return p.Readings[0].Time, nil
		}},
		{"device.time", func(when string) (time.Time, error) {
			e, err := ParseDeviceEvent([]byte(`{"name":"Cuff","event":"connected","time":"` + when + `"}`))
			return e.Time, err
		}},
		{"gatt.time", func(when string) (time.Time, error) {
			p, err := ParseGATT([]byte(strings.Replace(gattMsg("2a37", "00 48"), "2026-11-25T10:00:00Z", when, 1)))
			if err != nil {
				return time.Time{}, err
			}
			return p.Readings[0].Time, nil
		}},
	}
	for _, when := range []string{
		"2026-12-06T02:00:00,5Z",
		"2026-12-06T02:00:00.1234567891Z",
		"2026-12-06T02:00:00+14:30",
		"2026-12-06T02:00:00-15:00",
		"2026-12-06T02:00:00.Z",
		"2026-12-06t02:00:00z",
		"2026-12-06T02:00Z",
		"2026-12-06T2:00:00Z",
		"0000-12-31T23:30:00-01:00", // 0001-01-01T00:30Z, but FHIR has no year 0000
	} {
		for _, p := range parsers {
			got, err := p.parse(when)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != p.field || !strings.Contains(fe.Reason, "not a FHIR dateTime with seconds and a time zone") {
				t.Errorf("%s %q: read %v, error %v; want a %s error saying a FHIR dateTime is read", p.field, when, got, err, p.field)
			}
		}
	}
	for when, want := range map[string]time.Time{
		"2026-12-06T02:00:00.123456789Z": time.Date(2026, 12, 6, 2, 0, 0, 123456789, time.UTC),
		"2026-12-06T02:00:00+14:00":      time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC),
		"2026-12-06T02:00:00-14:00":      time.Date(2026, 12, 6, 16, 0, 0, 0, time.UTC),
		"2026-12-06T02:00:00.5+13:59":    time.Date(2026, 12, 5, 12, 1, 0, 5e8, time.UTC),
		"2026-12-06T02:00:00-00:00":      time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC),
	} {
		for _, p := range parsers {
			if got, err := p.parse(when); err != nil || !got.Equal(want) || got.Location() != time.UTC {
				t.Errorf("%s %q: read %v, %v; want %v", p.field, when, got, err, want)
			}
		}
	}
	// The right form, but no such day or time: the reason says which.
	for when, reason := range map[string]string{"2026-02-29T00:00:00Z": "day out of range", "2026-12-06T02:00:60Z": "second out of range"} {
		for _, p := range parsers {
			var fe *FieldError
			if _, err := p.parse(when); !errors.As(err, &fe) || fe.Field != p.field || !strings.Contains(fe.Reason, reason) {
				t.Errorf("%s %q: error %v, want %q", p.field, when, err, reason)
			}
		}
	}
}

// The design's own example message, byte for byte.
func TestUnitErrorMessage(t *testing.T) {
	obs := strings.Replace(hrObs, `"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"`, `"unit":"mmHg"`, 1)
	_, err := ParseObservation(json.RawMessage(obs))
	want := `observation.valueQuantity.unit: "mmHg" is not the UCUM unit for 8867-4 (want "/min")`
	if err == nil || err.Error() != want {
		t.Fatalf("error %v\nwant  %s", err, want)
	}
}

func TestDecodeEnvelope(t *testing.T) {
	good := []struct {
		frame string
		seq   int64
	}{
		{`{"seq":1,"observation":{}}`, 1},
		{` {"observation":{"resourceType":"Observation"}, "seq": 9007199254740993, "extra": true} `, 9007199254740993},
	}
	for _, g := range good {
		e, err := DecodeEnvelope([]byte(g.frame))
		if err != nil || e.Seq != g.seq || len(e.Observation) == 0 {
			t.Errorf("%s: %+v %v", g.frame, e, err)
		}
	}
	bad := []struct {
		name, frame, field string // field "" means not an envelope at all
		seq                int64  // seq still known despite the error
	}{
		{"not JSON", `nope`, "", 0},
		{"truncated", `{"seq":1,"observation":{`, "", 0},
		{"trailing data", `{"seq":1,"observation":{}} }`, "", 0},
		{"an array", `[{"seq":1}]`, "", 0},
		{"a string", `"hello"`, "", 0},
		{"no seq", `{"observation":{}}`, "seq", 0},
		{"seq 0", `{"seq":0,"observation":{}}`, "seq", 0},
		{"seq negative", `{"seq":-4,"observation":{}}`, "seq", 0},
		{"seq fraction", `{"seq":1.5,"observation":{}}`, "seq", 0},
		{"seq exponent", `{"seq":1e3,"observation":{}}`, "seq", 0},
		{"seq string", `{"seq":"1","observation":{}}`, "seq", 0},
		{"seq null", `{"seq":null,"observation":{}}`, "seq", 0},
		{"seq too big", `{"seq":92233720368547758070,"observation":{}}`, "seq", 0},
		{"no observation", `{"seq":7}`, "observation", 7},
		{"null observation", `{"seq":7,"observation":null}`, "observation", 7},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			e, err := DecodeEnvelope([]byte(b.frame))
			if err == nil {
				t.Fatalf("accepted: %+v", e)
			}
			var fe *FieldError
			isField := errors.As(err, &fe)
			switch {
			case b.field == "" && isField:
				t.Fatalf("error %v is a FieldError; want a plain envelope error", err)
			case b.field != "" && (!isField || fe.Field != b.field):
				t.Fatalf("error %v; want field %q", err, b.field)
			}
			if e.Seq != b.seq {
				t.Fatalf("seq %d, want %d", e.Seq, b.seq)
			}
		})
	}
}

func TestFahrenheitConversion(t *testing.T) {
	for _, c := range []struct{ f, c float64 }{{98.6, 37}, {32, 0}, {212, 100}, {100.4, 38}, {95, 35}} {
		if got := fahrenheitToCelsius(c.f); got != c.c {
			t.Errorf("%v [degF] = %v Cel, want %v", c.f, got, c.c)
		}
	}
}

// BenchmarkDecodeEnvelope reads the envelope of a numeric and of a JSON
// ECG chunk, in alternating batches of 64, with scanEnvelope and with
// encoding/json (what every frame cost before), so both see the same
// load; then the numeric's envelope and observation, as Accept does.
func BenchmarkDecodeEnvelope(b *testing.B) {
	frames := [][]byte{env(7, hrObs), env(8, waveObs(CodeECGLeadII, strings.TrimSpace(strings.Repeat("512 ", 25))))}
	var spent [2]time.Duration
	b.Run("interleaved", func(b *testing.B) {
		spent = [2]time.Duration{}
		n := 0
		for b.Loop() {
			for way := range 2 {
				t0 := time.Now()
				for j := range 64 {
					f := frames[j%2]
					if way == 0 {
						if _, ok := scanEnvelope(f); !ok {
							b.Fatal("not scanned")
						}
					} else if _, err := unmarshalEnvelope(f); err != nil {
						b.Fatal(err)
					}
				}
				spent[way] += time.Since(t0)
			}
			n += 64
		}
		b.ReportMetric(float64(spent[0].Nanoseconds())/float64(n), "scan-ns/envelope")
		b.ReportMetric(float64(spent[1].Nanoseconds())/float64(n), "json-ns/envelope")
	})
	b.Run("numeric-envelope-and-observation", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e, err := DecodeEnvelope(frames[0])
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ParseObservation(e.Observation); err != nil {
				b.Fatal(err)
			}
		}
	})
}
