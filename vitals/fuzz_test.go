package vitals

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/fhir/fhirtime"
	"github.com/bedside-health/bedside/internal/jsonscan"
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
	f.Add(gattEnv(4, gattMsg("2a35", "15 A0 F0 6B F0 00 00 48 00 02 00")))
	f.Add(devEnv(5, `{"name":"Polar H10","event":"connected","time":"2026-11-25T10:00:00Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEnvelope(b)
		var fe *FieldError
		switch {
		case err == nil:
			kinds := 0
			for _, r := range [][]byte{e.Observation, e.GATT, e.Device} {
				if len(r) > 0 {
					kinds++
				}
			}
			if e.Seq < 1 || kinds != 1 {
				t.Fatalf("accepted %+v", e)
			}
			switch {
			case e.Device != nil:
				if ev, err := ParseDeviceEvent(e.Device); err == nil && (ev.Name == "" || !writableUTC(ev.Time)) {
					t.Fatalf("accepted event %+v", ev)
				}
			case e.GATT != nil:
				checkGATT(t, e.GATT)
			default:
				checkParse(t, e.Observation)
			}
		case e.Seq != 0 && (!errors.As(err, &fe) || fe.Field != "observation" && fe.Field != "gatt" && fe.Field != "device"):
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

// FuzzParseDeviceEvent sends arbitrary relayed device events: an error
// names a device field, and an accepted event is whole.
func FuzzParseDeviceEvent(f *testing.F) {
	f.Add([]byte(`{"name":"Polar H10 7E2F","event":"connected","time":"2026-11-25T10:00:00Z"}`))
	f.Add([]byte(`{"name":"Omron","event":"disconnected","time":"2026-11-25T11:00:00.25+01:00"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseDeviceEvent(b)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, "device") {
				t.Fatalf("error %v does not name a device field", err)
			}
			return
		}
		if e.Name == "" || len([]rune(e.Name)) > maxDeviceName || (e.Event != DeviceConnected && e.Event != DeviceDisconnected) || !writableUTC(e.Time) {
			t.Fatalf("accepted %+v", e)
		}
	})
}

// writableUTC reports whether t is a time a message can carry: in UTC, in
// the years 0001 to 9999. Its first instant is the zero time.Time.
func writableUTC(t time.Time) bool {
	return t.Location() == time.UTC && !t.Before(firstWritable) && t.Before(pastWritable)
}

// FuzzParseGATT sends arbitrary relayed characteristic messages; the
// seeds hold one value of each characteristic Bedside reads.
func FuzzParseGATT(f *testing.F) {
	for _, m := range []struct{ ch, hex string }{
		{"2a37", "1F A0 00 23 01 00 04 00 02"}, {"2a5e", "1F 61 00 48 00 EA 07 0C 04 0A 1E 00 00 40 20 20 00 50 00"},
		{"2a5f", "07 62 00 4B 00 60 00 4A 00 61 00 4B 00 20 00"}, {"2a35", "1E 79 00 51 00 5F 00 EA 07 0C 04 09 00 00 48 00 01 03 00"},
		{"2a1c", "06 6E 01 00 FF EA 07 0C 04 0A 00 00 06"}, {"2a9d", "0E B0 36 EA 07 0C 04 07 00 00 01 F2 00 9E 06"},
		{"2a18", "0B 01 00 EA 07 0C 04 08 00 00 0F 00 5F B0 11 20 00"},
	} {
		f.Add([]byte(gattMsg(m.ch, m.hex)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkGATT(t, b)
	})
}

// checkGATT asserts what ParseGATT promises for any input: an error names
// a gatt field, and whatever is accepted is a plausible reading.
func checkGATT(t *testing.T, b []byte) {
	p, err := ParseGATT(b)
	if err != nil {
		var fe *FieldError
		if !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, "gatt") {
			t.Fatalf("error %v does not name a gatt field", err)
		}
		return
	}
	if len(p.Readings) == 0 || p.Waveform != nil {
		t.Fatalf("want readings, got %+v", p)
	}
	checkReadings(t, p.Readings)
}

// checkReadings fails on any reading that is not plausible, in its stored
// unit, at a UTC time; or on a blood pressure whose diastolic is not
// below its systolic.
func checkReadings(t *testing.T, rs []Reading) {
	t.Helper()
	var sys, dia float64
	for _, r := range rs {
		unit, ok := Unit(r.Code)
		if !ok || r.Unit != unit || math.IsNaN(r.Value) || math.IsInf(r.Value, 0) || !Plausible(r.Code, r.Value) || !writableUTC(r.Time) {
			t.Fatalf("accepted implausible reading %+v", r)
		}
		switch r.Code {
		case CodeSystolic:
			sys = r.Value
		case CodeDiastolic:
			dia = r.Value
		}
	}
	if dia != 0 && dia >= sys {
		t.Fatalf("accepted blood pressure %+v", rs)
	}
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
	checkReadings(t, p.Readings)
	if len(p.Readings) == 2 && !(p.Readings[0].Code == CodeSystolic && p.Readings[1].Code == CodeDiastolic) {
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
	for _, msg := range encodeLive(p, "dev", time.Now()) {
		if !json.Valid(msg) {
			t.Fatalf("live message %q is not JSON", msg)
		}
	}
}

// FuzzDecodeWaveFrame sends arbitrary binary frames. Whatever decodes must
// encode back to the same bytes, convert to FHIR SampledData and parse
// back to the same Waveform, and the session logic must answer JSON. The
// seeds in testdata/fuzz hold a good frame and the refusals' edges.
func FuzzDecodeWaveFrame(f *testing.F) {
	w := ecgChunk()
	for seq, c := range []*Waveform{w, {Code: CodePleth, Period: 8, Factor: 1, Dimensions: 1, Data: []float64{math.NaN(), -32767, 32767}, Time: frameTime}} {
		b, err := AppendWaveFrame(nil, int64(seq+1), c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, w, err := DecodeWaveFrame(b)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, "frame") || w != nil || seq < 0 {
				t.Fatalf("error %v (seq %d, %+v) does not name a frame field", err, seq, w)
			}
		} else {
			again, err := AppendWaveFrame(nil, seq, w)
			if err != nil || string(again) != string(b) {
				t.Fatalf("re-encoding %+v: %v\n% x\n% x", w, err, again, b)
			}
			obs, err := w.Observation()
			if err != nil {
				t.Fatal(err)
			}
			p, err := ParseObservation(obs)
			if err != nil || !sameWaveform(p.Waveform, w) {
				t.Fatalf("SampledData round trip of %+v: %+v %v", w, p.Waveform, err)
			}
			checkParse(t, obs)
		}
		in := NewIngester(newMemStore(t), &memPub{}, Device{ID: 1, PatientID: 2})
		for _, r := range in.HandleBinary(context.Background(), b) {
			if !json.Valid(r) {
				t.Fatalf("reply %q is not JSON", r)
			}
		}
	})
}

// FuzzEnvelopeScan: scanEnvelope, where it reads a frame, reads what
// encoding/json does, so DecodeEnvelope is the same with or without it.
func FuzzEnvelopeScan(f *testing.F) {
	addSeeds(f, true)
	for _, s := range []string{`{}`, `{"seq":1,"seq":2,"observation":{"a":[1,{"b":"}"}]}}`, `{"SEQ":3,"Observation":null}`,
		`{"seq":null,"gatt":"x"}`, ` { "seq" : 4 , "device" : {"x":"\"}"} } `, `{"seq":"5","obs\u0065rvation":{}}`, `[1]`, `null`, `{"seq":1e2}`,
		`{"ſeq":6}`, `{"seq":7,"observation":{},"observation":[]}`, `{"a":{"seq":1},"seq":8,"observation":"x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := scanEnvelope(b)
		if !ok {
			return
		}
		want, err := unmarshalEnvelope(b)
		if err != nil {
			t.Fatalf("scanned %q, which encoding/json refuses: %v", b, err)
		}
		for _, m := range [][2]json.RawMessage{{got.Seq, want.Seq}, {got.Observation, want.Observation}, {got.GATT, want.GATT}, {got.Device, want.Device}} {
			if !bytes.Equal(m[0], m[1]) {
				t.Fatalf("%q: scanned %+v, encoding/json read %+v", b, got, want)
			}
		}
	})
}

// FuzzObservationScan: scanObservation, where it reads an observation,
// reads what encoding/json does, so ParseObservation gives the same
// Parsed, or the same error, with or without it.
func FuzzObservationScan(f *testing.F) {
	addSeeds(f, false)
	withSubject := func(ref string) string {
		return strings.Replace(hrObs, `"status":"final",`, `"status":"final","subject":{"reference":"`+ref+`"},`, 1)
	}
	for _, s := range []string{
		string(deviceNumeric(nil, 1, frameTime))[len(`{"seq":1,"observation":`) : len(deviceNumeric(nil, 1, frameTime))-1],
		withSubject("Patient/42"), withSubject("https://bedside.example/fhir/Patient/7"),
		`{"resourceType":"Observation","status":"final","code":{"coding":[]},"effectiveDateTime":"2026-12-06T02:00:00Z"}`,
		`{"RESOURCETYPE":"Observation","Status":"final","code":{"text":"hr","coding":[{"display":"HR","system":"http://loinc.org","code":"8867-4"}]},"effectiveDateTime":"2026-12-06T02:00:00+01:00","valueQuantity":{"value":7.2e1,"code":"/min"},"device":{"display":"x"}}`,
		`{"resourceType":"Observation","status":"final","status":"amended"}`,
		`{"resourceType":"Observation","status":null}`,
		`{"resourceType":"Observation","valueQuantity":{"value":1e999}}`,
		`{"resourceType":"Observation","valueQuantity":{"value":"72"}}`,
		`{"resourceType":"Observation","code":{"coding":[{"code":"8867-4"},{"code":"x","system":"y"}]},"subject":{"reference":"Patient/2"}}`,
		`{"resourceType":"Obs\u0065rvation"}`, `{"résumé":1}`, ` {"status" : "final" } `, `[]`, `"x"`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, werr := unmarshalObservation(b)
		wantP, wantErr := Parsed{}, decodeError("observation", werr)
		if werr == nil {
			if wantErr = want.parsed(&wantP); wantErr != nil {
				wantP = Parsed{}
			}
		}
		gotP, gotErr := ParseObservation(b)
		gotW, wantW := gotP.Waveform, wantP.Waveform
		gotP.Waveform, wantP.Waveform = nil, nil
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(gotP, wantP) || (gotW != nil || wantW != nil) && !sameWaveform(gotW, wantW) {
			t.Fatalf("%q: ParseObservation gave %+v, %v; encoding/json and the same checks %+v, %v", b, gotP, gotErr, wantP, wantErr)
		}
		if !json.Valid(b) {
			return
		}
		var sc obsScratch
		if !scanObservation(b, &sc) {
			return
		}
		if werr != nil {
			t.Fatalf("scanned %q, which encoding/json refuses: %v", b, werr)
		}
		if sc.o.effective != nil { // effectiveDateTime, left in the bytes
			s := string(sc.o.effective)
			sc.o.EffectiveDateTime, sc.o.effective = &s, nil
		}
		if !reflect.DeepEqual(sc.o, want) {
			t.Fatalf("%q: scanned %+v, encoding/json read %+v", b, sc.o, want)
		}
	})
}

// TestObservationScanReadsDevices: the shapes devices send are read by
// scanObservation, not left to encoding/json.
func TestObservationScanReadsDevices(t *testing.T) {
	numeric := deviceNumeric(nil, 1, frameTime)
	for _, obs := range []string{string(numeric[len(`{"seq":1,"observation":`) : len(numeric)-1]), hrObs,
		quantityObs(CodeTemperature, 98.6, "[degF]"), quantityObs(CodeGlucoseMol, 5.4, "mmol/L")} {
		var sc obsScratch
		if !scanObservation([]byte(obs), &sc) {
			t.Errorf("not scanned: %s", obs)
		}
	}
}

// FuzzValidJSON: jsonscan.Valid is json.Valid.
func FuzzValidJSON(f *testing.F) {
	addSeeds(f, true)
	for _, s := range []string{``, ` `, `0`, `-0`, `-`, `01`, `1.`, `1.5e`, `1E+2`, `.5`, `1x`, `"a\u00e9\"\/"`, `"\u12"`, `"\x"`,
		"\"\x1f\"", "\"\xff\"", `[]`, `[1,]`, `[,1]`, `{}`, `{"a":1,}`, `{"a" : [true, false, null] }`, `{"a"}`, `{1:2}`,
		`nul`, `truex`, `[1]]`, `[[1]`, `{"a":{"b":[{}]}}`, " \t\r\n{}\n", `"` + "\x7f" + `"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := jsonscan.Valid(b), json.Valid(b); got != want {
			t.Fatalf("jsonscan.Valid(%q) = %v, json.Valid %v", b, got, want)
		}
	})
}

// TestValidJSONDepth: jsonscan.Valid refuses what nests deeper than
// encoding/json allows, as json.Valid does.
func TestValidJSONDepth(t *testing.T) {
	for _, depth := range []int{1, 63, 64, 65, jsonscan.MaxDepth, jsonscan.MaxDepth + 1} {
		for _, open := range []string{"[", `{"a":`} {
			closing := "]"
			if open != "[" {
				closing = "}"
			}
			b := []byte(strings.Repeat(open, depth) + "1" + strings.Repeat(closing, depth))
			if got, want := jsonscan.Valid(b), json.Valid(b); got != want {
				t.Errorf("%d deep in %s: jsonscan.Valid %v, json.Valid %v", depth, open, got, want)
			}
		}
	}
}

// BenchmarkValidJSON checks a numeric device envelope with jsonscan.Valid and
// with json.Valid, in alternating batches of 64 so both see the same load.
func BenchmarkValidJSON(b *testing.B) {
	frame := deviceNumeric(nil, 7, frameTime)
	var spent [2]time.Duration
	n := 0
	for b.Loop() {
		for way := range 2 {
			t0 := time.Now()
			for range 64 {
				if ok := way == 0 && jsonscan.Valid(frame) || way == 1 && json.Valid(frame); !ok {
					b.Fatal("not valid")
				}
			}
			spent[way] += time.Since(t0)
		}
		n += 64
	}
	b.ReportMetric(float64(spent[0].Nanoseconds())/float64(n), "validJSON-ns/frame")
	b.ReportMetric(float64(spent[1].Nanoseconds())/float64(n), "json.Valid-ns/frame")
}

// FuzzDateTime: parseUTCDateTime reads what time.Parse does, where it
// reads anything.
func FuzzDateTime(f *testing.F) {
	for _, s := range []string{"2026-12-06T02:00:00Z", "2026-12-06T02:00:00.123Z", "2026-12-06T02:00:00.123456789Z",
		"2026-12-06T02:00:00.1234567891Z", "2026-12-06T02:00:00,5Z", "2026-12-06T02:00:00.Z", "2024-02-29T23:59:59Z",
		"2026-02-29T00:00:00Z", "2026-12-06T24:00:00Z", "2026-12-06T02:00:60Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z",
		"2026-12-06T02:00:00+01:00", "2026-12-06t02:00:00z", "2026-13-01T00:00:00Z", "2026-12-06T02:00:0aZ", "2026-12-06 02:00:00Z"} {
		f.Add(s)
	}
	for _, s := range []string{"2026-12-06T02:00:00+14:30", "2026-12-06T02:00:00-14:00", "2026-12-06T02:00:00+13:59", "0000-12-31T23:30:00-01:00",
		"2026-12-06T2:00:00Z", "2026-12-06T02:00Z", "2026-12-06T02:00:00.5+0100"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		when, err := parseDateTime("t", s)
		if err == nil {
			want, perr := time.Parse(time.RFC3339Nano, s)
			if !fhirtime.IsDateTime(s) || perr != nil || when != want.UTC() {
				t.Fatalf("%q: read %v; time.Parse %v, %v", s, when, want.UTC(), perr)
			}
		}
		got, ok := parseUTCDateTime([]byte(s))
		if ok && (err != nil || got != when) {
			t.Fatalf("%q: read %v, parseDateTime %v, %v", s, got, when, err)
		}
	})
}
