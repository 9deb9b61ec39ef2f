package vitals

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// unhex reads bytes written as hex with any spacing.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// smallFrame is seq 7: three ECG lead II samples (10, -3, a gap) 4 ms
// apart, factor 0.001 mV, origin 0, starting 2026-11-25T10:00:00Z.
const smallFrame = `
42 53 57 46  01  02  00 00
07 00 00 00 00 00 00 00
02 01 02 00
03 00 00 00
00 00 00 00 00 00 10 40
fc a9 f1 d2 4d 62 50 3f
00 00 00 00 00 00 00 00
00 40 68 02 6a 41 eb 18
6d 56
0a 00  fd ff  00 80`

var frameTime = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func sameWaveform(a, b *Waveform) bool {
	if a == nil || b == nil || a.Code != b.Code || a.Origin != b.Origin || a.OriginUnit != b.OriginUnit || a.Period != b.Period ||
		a.Factor != b.Factor || a.Dimensions != b.Dimensions || !a.Time.Equal(b.Time) || len(a.Data) != len(b.Data) {
		return false
	}
	for i := range a.Data {
		if a.Data[i] != b.Data[i] && !(math.IsNaN(a.Data[i]) && math.IsNaN(b.Data[i])) {
			return false
		}
	}
	return true
}

func TestWaveFrameByteVector(t *testing.T) {
	b := unhex(t, smallFrame)
	seq, w, err := DecodeWaveFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	want := &Waveform{Code: CodeECGLeadII, Origin: 0, OriginUnit: "mV", Period: 4, Factor: 0.001, Dimensions: 1,
		Data: []float64{10, -3, math.NaN()}, Time: frameTime}
	if seq != 7 || !sameWaveform(w, want) {
		t.Fatalf("decoded seq %d %+v", seq, w)
	}
	again, err := AppendWaveFrame(nil, 7, want)
	if err != nil || string(again) != string(b) {
		t.Fatalf("encoded\n% x\nwant\n% x (%v)", again, b, err)
	}
	// The same chunk as FHIR JSON, as the JSON path reads it.
	if got := w.SampledData().Data; got != "10 -3 E" {
		t.Fatalf("SampledData data %q", got)
	}
	p, err := ParseObservation([]byte(strings.Replace(waveObs(CodeECGLeadII, "10 -3 E"), at, "2026-11-25T10:00:00Z", 1)))
	if err != nil || !sameWaveform(p.Waveform, w) {
		t.Fatalf("the JSON path gives %+v (%v), the frame %+v", p.Waveform, err, w)
	}
}

// ecgChunk is a 25-sample lead II chunk (a tenth of a second at 250 Hz) in
// microvolts, with a gap, as devicesim sends.
func ecgChunk() *Waveform {
	w := &Waveform{Code: CodeECGLeadII, OriginUnit: "mV", Period: 4, Factor: 0.001, Dimensions: 1,
		Time: frameTime.Add(123456789 * time.Nanosecond)}
	for i := range 25 {
		w.Data = append(w.Data, math.Round(1150*math.Exp(-float64((i-12)*(i-12))/8)-40))
	}
	w.Data[20] = math.NaN()
	return w
}

// TestWaveFrameRoundTrip: a frame, its SampledData in an Observation, and
// the Observation parsed back are the same Waveform, and viewers get the
// same live message from either path.
func TestWaveFrameRoundTrip(t *testing.T) {
	for _, w := range []*Waveform{
		ecgChunk(),
		{Code: CodePleth, Origin: -2.5, Period: 1000.0 / 256, Factor: 1.0 / 3, Dimensions: 1, Data: []float64{-32767, 32767, 0, math.NaN()}, Time: frameTime},
		{Code: CodeECG, Origin: 1e300, Period: 1e-3, Factor: -7e-300, Dimensions: 1, Data: []float64{1}, Time: time.Unix(0, math.MinInt64).UTC()},
	} {
		frame, err := AppendWaveFrame(nil, 3, w)
		if err != nil {
			t.Fatal(err)
		}
		seq, fromFrame, err := DecodeWaveFrame(frame)
		if err != nil || seq != 3 || !sameWaveform(fromFrame, w) {
			t.Fatalf("frame round trip: %+v %v", fromFrame, err)
		}
		obs, err := fromFrame.Observation()
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParseObservation(obs)
		if err != nil || !sameWaveform(p.Waveform, fromFrame) {
			t.Fatalf("SampledData round trip:\n%s\n%+v %v", obs, p.Waveform, err)
		}
		a, b := encodeLive(Parsed{Waveform: fromFrame}, "hub", frameTime), encodeLive(p, "hub", frameTime)
		if len(a) != 1 || string(a[0]) != string(b[0]) {
			t.Fatalf("live messages differ:\n%s\n%s", a, b)
		}
	}
}

// frameWith is the small frame with bytes from off replaced.
func frameWith(t *testing.T, off int, repl ...byte) []byte {
	b := unhex(t, smallFrame)
	return append(b[:off:off], append(repl, b[min(off+len(repl), len(b)):]...)...)
}

func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func TestDecodeWaveFrameRefuses(t *testing.T) {
	good := unhex(t, smallFrame)
	cases := []struct {
		name  string
		frame []byte
		seq   int64 // 0: the error cannot name a seq
		field string
	}{
		{"empty", nil, 0, "frame: 0 bytes"},
		{"three bytes", good[:3], 0, "frame: 3 bytes"},
		{"JSON text", []byte(`{"seq":1,"observation":{}}`), 0, "frame.magic: 7b 22 73 65"},
		{"wrong magic", frameWith(t, 0, 'B', 'S', 'W', 'X'), 0, "frame.magic: "},
		{"wrong version", frameWith(t, 4, 2), 0, "frame.version: 2: this server reads version 1"},
		{"version 0, truncated", good[:5:5], 0, "frame: 5 bytes"},
		{"truncated before seq ends", good[:12], 0, "frame: 12 bytes"},
		{"seq 0", frameWith(t, 8, le64(0)...), 0, "frame.seq: 0 "},
		{"seq negative", frameWith(t, 8, le64(math.MaxUint64)...), 0, "frame.seq: -1 "},
		{"truncated header", good[:40], 7, "frame: 40 bytes: too short"},
		{"reserved", frameWith(t, 6, 1), 7, "frame.reserved: 1"},
		{"not a waveform code", frameWith(t, 16, le32(8867)...), 7, "frame.code: 8867 is not a waveform"},
		{"no samples", frameWith(t, 20, le32(0)...), 7, "frame.count: 0 samples"},
		{"count larger than the payload", frameWith(t, 20, le32(4)...), 7, "frame.count: 4 samples and a 2-byte unit make a 66-byte frame, but it has 64 bytes"},
		{"count smaller than the payload", frameWith(t, 20, le32(2)...), 7, "frame.count: 2 samples"},
		{"count over the limit", frameWith(t, 20, le32(4097)...), 7, "frame.count: 4097 samples, want 1 to 4096"},
		{"huge count", frameWith(t, 20, le32(math.MaxUint32)...), 7, "frame.count: 4294967295 samples"},
		{"zero period", frameWith(t, 24, le64(0)...), 7, "frame.period: 0, want milliseconds above 0"},
		{"negative period", frameWith(t, 24, le64(math.Float64bits(-4))...), 7, "frame.period: -4"},
		{"NaN period", frameWith(t, 24, le64(math.Float64bits(math.NaN()))...), 7, "frame.period: NaN"},
		{"infinite period", frameWith(t, 24, le64(math.Float64bits(math.Inf(1)))...), 7, "frame.period: +Inf"},
		{"zero factor", frameWith(t, 32, le64(0)...), 7, "frame.factor: 0"},
		{"NaN origin", frameWith(t, 40, le64(math.Float64bits(math.NaN()))...), 7, "frame.origin: NaN"},
		{"unit too long", frameWith(t, 5, 200), 7, "frame.unitLength: 200"},
		{"unit with a space", frameWith(t, 56, 'm', ' '), 7, "frame.unit: \"m \""},
		{"trailing byte", append(unhex(t, smallFrame), 0), 7, "frame.count: 3 samples and a 2-byte unit make a 64-byte frame, but it has 65 bytes"},
		{"sample beyond a finite value", frameWith(t, 32, le64(math.Float64bits(math.MaxFloat64))...), 7, "frame.samples: sample 0 (10)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seq, w, err := DecodeWaveFrame(c.frame)
			var fe *FieldError
			if err == nil || w != nil || !errors.As(err, &fe) || !strings.HasPrefix(err.Error(), c.field) {
				t.Fatalf("got %v (%+v), want an error starting %q", err, w, c.field)
			}
			if seq != c.seq {
				t.Fatalf("seq %d, want %d", seq, c.seq)
			}
		})
	}
}

func TestAppendWaveFrameRefuses(t *testing.T) {
	for name, change := range map[string]func(w *Waveform){
		"a fraction":          func(w *Waveform) { w.Data[0] = 1.5 },
		"beyond int16":        func(w *Waveform) { w.Data[0] = 40000 },
		"the gap's own value": func(w *Waveform) { w.Data[0] = -32768 },
		"no samples":          func(w *Waveform) { w.Data = nil },
		"too many samples":    func(w *Waveform) { w.Data = make([]float64, maxSamples+1) },
		"not a waveform":      func(w *Waveform) { w.Code = CodeHeartRate },
		"a long unit":         func(w *Waveform) { w.OriginUnit = strings.Repeat("m", 33) },
		"a unit with a space": func(w *Waveform) { w.OriginUnit = "m V" },
		"beyond 2262":         func(w *Waveform) { w.Time = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) },
		"zero period":         func(w *Waveform) { w.Period = 0 },
		"infinite sample":     func(w *Waveform) { w.Factor = math.MaxFloat64; w.Data[0] = 100 },
		"factor zero":         func(w *Waveform) { w.Factor = 0 },
		"origin not a number": func(w *Waveform) { w.Origin = math.NaN() },
	} {
		w := ecgChunk()
		change(w)
		if b, err := AppendWaveFrame(nil, 1, w); err == nil {
			t.Errorf("%s: encoded % x", name, b)
		}
	}
	if _, err := AppendWaveFrame(nil, 0, ecgChunk()); err == nil {
		t.Error("seq 0 encoded")
	}
}

func binFrame(t testing.TB, seq int64, w *Waveform) []byte {
	b, err := AppendWaveFrame(nil, seq, w)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIngesterBinary: binary frames share the envelopes' sequence and ack
// contract.
func TestIngesterBinary(t *testing.T) {
	in, st, pub := newTestIngester(t, 0)
	w := ecgChunk()
	handleBin := func(frame []byte) result {
		t.Helper()
		res := result{ack: -1}
		for _, b := range in.HandleBinary(t.Context(), frame) {
			var r reply
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("reply %s: %v", b, err)
			}
			switch {
			case r.Ack != nil:
				res.ack = *r.Ack
			case r.Seq != nil:
				res.rejected, res.errs = append(res.rejected, *r.Seq), append(res.errs, r.Error)
			default:
				res.plain, res.errs = res.plain+1, append(res.errs, r.Error)
			}
		}
		return res
	}
	if r := handle(t, in, env(1, hrObs)); r.ack != 1 {
		t.Fatalf("JSON 1: %+v", r)
	}
	if r := handleBin(binFrame(t, 2, w)); r.ack != 2 || len(r.errs) != 0 {
		t.Fatalf("frame 2: %+v", r)
	}
	// Ahead of order: held until 3 arrives, by either path.
	held := binFrame(t, 4, w)
	if r := handleBin(held); r.ack != 2 || in.Pending() != 1 {
		t.Fatalf("frame 4 ahead: %+v, pending %d", r, in.Pending())
	}
	held[len(held)-1] ^= 0x7f // the caller reuses its buffer: the held frame must not change
	if r := handle(t, in, env(3, hrObs)); r.ack != 4 {
		t.Fatalf("JSON 3 releases frame 4: %+v", r)
	}
	// A duplicate is acked again, not shown again.
	if r := handleBin(binFrame(t, 2, w)); r.ack != 4 || pub.count(patientID) != 4 {
		t.Fatalf("duplicate frame: %+v, published %d", r, pub.count(patientID))
	}
	// A frame that cannot be decoded is rejected by its seq and counts as
	// handled; one whose seq cannot be read is not handled at all.
	bad := binFrame(t, 5, w)
	binary.LittleEndian.PutUint32(bad[offCount:], 9999)
	if r := handleBin(bad); r.ack != 5 || fmt.Sprint(r.rejected) != "[5]" || !strings.HasPrefix(r.errs[0], "frame.count: ") {
		t.Fatalf("bad frame 5: %+v", r)
	}
	if r := handleBin([]byte("BSWF\x01")); r.ack != -1 || r.plain != 1 || in.LastSeq() != 5 {
		t.Fatalf("truncated frame: %+v", r)
	}
	if st.count() != 2 || st.last(devID) != 5 || in.Err() != nil {
		t.Fatalf("stored %d up to %d; want the 2 heart rates up to 5", st.count(), st.last(devID))
	}
	// Viewers see the frame exactly as the same chunk sent as JSON.
	obs, _ := w.Observation()
	want := encodeLive(Parsed{Waveform: w}, "Home hub", serverNow)[0]
	msgs := pub.msgs[patientID]
	if string(msgs[1]) != string(want) || string(msgs[3]) != string(want) {
		t.Fatalf("live messages\n%s\n%s\nwant %s", msgs[1], msgs[3], want)
	}
	in2, _, pub2 := newTestIngester(t, 0)
	handle(t, in2, env(1, string(obs)))
	if string(pub2.msgs[patientID][0]) != string(want) {
		t.Fatalf("JSON path: %s", pub2.msgs[patientID][0])
	}
	// Far ahead: the same gap limit as envelopes.
	handleBin(binFrame(t, 5+MaxAhead+1, w))
	if !errors.Is(in.Err(), ErrGap) {
		t.Fatalf("gap: %v", in.Err())
	}
}

// BenchmarkDecodeECGChunk compares decoding one 25-sample ECG chunk (a
// tenth of a second at 250 Hz) sent as a binary frame with the same chunk
// sent as a FHIR Observation envelope, in one run.
func BenchmarkDecodeECGChunk(b *testing.B) {
	w := ecgChunk()
	frame := binFrame(b, 1, w)
	obs, err := w.Observation()
	if err != nil {
		b.Fatal(err)
	}
	envelope := env(1, string(obs))
	b.Run("binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := DecodeWaveFrame(frame); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(frame)), "bytes/frame")
	})
	b.Run("fhir-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e, err := DecodeEnvelope(envelope)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ParseObservation(e.Observation); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(envelope)), "bytes/frame")
	})
	// Alternating batches of each, so that a machine whose load changes
	// during the run weighs on both alike; reports each one's cost and
	// their ratio.
	b.Run("interleaved", func(b *testing.B) {
		const batch = 64
		var bin, js time.Duration
		for b.Loop() {
			start := time.Now()
			for range batch {
				if _, _, err := DecodeWaveFrame(frame); err != nil {
					b.Fatal(err)
				}
			}
			mid := time.Now()
			for range batch {
				e, _ := DecodeEnvelope(envelope)
				if _, err := ParseObservation(e.Observation); err != nil {
					b.Fatal(err)
				}
			}
			bin, js = bin+mid.Sub(start), js+time.Since(mid)
		}
		n := float64(b.N * batch)
		b.ReportMetric(float64(bin.Nanoseconds())/n, "binary-ns/chunk")
		b.ReportMetric(float64(js.Nanoseconds())/n, "json-ns/chunk")
		b.ReportMetric(float64(js)/float64(bin), "json/binary")
	})
}
