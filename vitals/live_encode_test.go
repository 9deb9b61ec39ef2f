package vitals

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"testing"
	"time"
)

// checkLiveEncoding fails unless the hand encoding of r and w is byte for
// byte json.Marshal's, or both fail.
func checkLiveEncoding(t *testing.T, r LiveReading, w LiveWaveform) {
	t.Helper()
	want, werr := json.Marshal(r)
	got, gerr := r.appendJSON(nil)
	if (werr != nil) != (gerr != nil) || !bytes.Equal(got, want) {
		t.Errorf("reading %+v:\n got %s (%v)\nwant %s (%v)", r, got, gerr, want, werr)
	}
	want, werr = json.Marshal(w)
	got, gerr = w.appendJSON(nil)
	if (werr != nil) != (gerr != nil) || !bytes.Equal(got, want) {
		t.Errorf("waveform %+v:\n got %s (%v)\nwant %s (%v)", w, got, gerr, want, werr)
	}
}

func TestLiveEncodingMatchesJSON(t *testing.T) {
	at := time.Date(2026, 12, 5, 20, 1, 2, 345678901, time.UTC)
	for _, s := range []string{"", "8867-4", "/min", "mm[Hg]", `a "quoted" \ name`, "<b>&", "Pulsoxímetro", "tab\there", "\u2028", "\xff"} {
		for _, v := range []float64{0, math.Copysign(0, -1), 72, -72, 4, 1e15, 1 << 53, 1<<53 - 1, -(1<<53 - 1), 1<<53 + 2, 1e20, -0.5, 36.65, 1e-7, 1.5e-6, 1e21, 123456789012345678901234.0, math.SmallestNonzeroFloat64, math.MaxFloat64, math.NaN(), math.Inf(1)} {
			checkLiveEncoding(t,
				LiveReading{Type: "reading", Code: s, Value: v, Unit: s, Time: at, Device: s, Relay: s, Flags: []string{s, "motion"}},
				LiveWaveform{Type: "waveform", Code: s, Origin: v, Factor: 0.001, Period: 4, Unit: s,
					Data: Samples{1, v, -3, math.NaN()}, Time: at, Device: s, Received: at})
		}
	}
	// Zero and odd times, no flags, no data, an infinite sample.
	odd := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tm := range []time.Time{{}, at.In(time.FixedZone("", -5*3600-1800)), odd} {
		checkLiveEncoding(t, LiveReading{Type: "reading", Time: tm}, LiveWaveform{Time: at, Received: tm})
	}
	checkLiveEncoding(t, LiveReading{}, LiveWaveform{Data: Samples{}})
	checkLiveEncoding(t, LiveReading{}, LiveWaveform{Data: Samples{math.Inf(-1)}})
}

func FuzzLiveEncoding(f *testing.F) {
	f.Add("8867-4", "/min", "hub", 72.0, 0.001, int64(1764961262345), int64(0), 12.5)
	f.Add("<&>", "\x00\xff", "", 1e-9, -1e22, int64(-1), int64(123456789), math.NaN())
	f.Add("8867-4", "/min", "hub", 36.8, 0.001, int64(-62167219200000), int64(1), 12.5)    // 0000-01-01
	f.Add("8867-4", "/min", "hub", 5.4, 0.001, int64(253402300799999), int64(999999), 0.0) // 9999-12-31T23:59:59.999999999
	f.Fuzz(func(t *testing.T, code, unit, device string, v, factor float64, ms, ns int64, sample float64) {
		at := time.UnixMilli(ms).Add(time.Duration(ns)).UTC()
		checkLiveEncoding(t,
			LiveReading{Type: "reading", Code: code, Value: v, Unit: unit, Time: at, Device: device, Relay: code, Flags: []string{unit}},
			LiveWaveform{Type: "waveform", Code: code, Origin: v, Factor: factor, Period: 4, Unit: unit,
				Data: Samples{sample, v}, Time: at, Device: device, Received: at})
	})
}

// TestSamplesWholeNumbers: the whole-number shortcut of Samples writes
// what strconv's 'g' format does, at the edges of where it applies.
func TestSamplesWholeNumbers(t *testing.T) {
	vs := []float64{0, math.Copysign(0, -1), 1, -1, 512, -32768, 32767, 999999, -999999, 1e6, -1e6, 1e6 - 0.5, 1234567, 0.5, -2.5, 1e21, math.MaxInt64, math.MinInt64, 1e300, -1e300, math.SmallestNonzeroFloat64}
	for v := -1100000.0; v <= 1100000; v += 997 {
		vs = append(vs, v, v+0.25)
	}
	got, _ := Samples(vs).appendJSON(nil)
	want := []byte{'['}
	for i, v := range vs {
		if i > 0 {
			want = append(want, ',')
		}
		want = strconv.AppendFloat(want, v, 'g', -1, 64)
	}
	want = append(want, ']')
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// BenchmarkLiveWaveform encodes one live ECG chunk (25 samples of a
// waveform frame, whole numbers), as each waveform frame is published.
func BenchmarkLiveWaveform(b *testing.B) {
	w := LiveWaveform{Type: "waveform", Code: CodeECGLeadII, Factor: 0.005, Period: 4, Unit: "mV", Time: time.Now(), Received: time.Now(), Device: "hub"}
	for i := range 25 {
		w.Data = append(w.Data, float64(i*37%1024-512))
	}
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf, _ = w.appendJSON(buf[:0])
	}
}
