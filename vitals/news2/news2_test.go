package news2

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// TestPointsOnEveryEdge walks each row of the chart across every boundary:
// the last value of one band and the first of the next.
func TestPointsOnEveryEdge(t *testing.T) {
	type edge struct {
		v    float64
		want int
	}
	rows := []struct {
		name   string
		p      Param
		scale2 bool
		oxygen bool
		edges  []edge
	}{
		{"respiration", RespirationRate, false, false, []edge{
			{0, 3}, {8, 3}, {9, 1}, {11, 1}, {12, 0}, {20, 0}, {21, 2}, {24, 2}, {25, 3}, {60, 3}}},
		{"SpO2 scale 1", SpO2, false, false, []edge{
			{50, 3}, {91, 3}, {92, 2}, {93, 2}, {94, 1}, {95, 1}, {96, 0}, {100, 0}}},
		{"SpO2 scale 1 on oxygen (oxygen changes nothing)", SpO2, false, true, []edge{
			{91, 3}, {92, 2}, {93, 2}, {94, 1}, {95, 1}, {96, 0}, {100, 0}}},
		{"SpO2 scale 2 on air", SpO2, true, false, []edge{
			{50, 3}, {83, 3}, {84, 2}, {85, 2}, {86, 1}, {87, 1}, {88, 0}, {92, 0}, {93, 0}, {97, 0}, {100, 0}}},
		{"SpO2 scale 2 on oxygen", SpO2, true, true, []edge{
			{83, 3}, {84, 2}, {85, 2}, {86, 1}, {87, 1}, {88, 0}, {92, 0}, {93, 1}, {94, 1}, {95, 2}, {96, 2}, {97, 3}, {100, 3}}},
		{"air or oxygen", AirOrOxygen, false, false, []edge{{OnAir, 0}, {OnOxygen, 2}}},
		{"systolic", SystolicBP, false, false, []edge{
			{50, 3}, {90, 3}, {91, 2}, {100, 2}, {101, 1}, {110, 1}, {111, 0}, {219, 0}, {220, 3}, {300, 3}}},
		{"pulse", Pulse, false, false, []edge{
			{20, 3}, {40, 3}, {41, 1}, {50, 1}, {51, 0}, {90, 0}, {91, 1}, {110, 1}, {111, 2}, {130, 2}, {131, 3}, {250, 3}}},
		{"consciousness", Consciousness, false, false, []edge{
			{float64(Alert), 0}, {float64(Confusion), 3}, {float64(Voice), 3}, {float64(Pain), 3}, {float64(Unresponsive), 3}}},
		{"temperature", Temperature, false, false, []edge{
			{30, 3}, {35.0, 3}, {35.1, 1}, {36.0, 1}, {36.1, 0}, {38.0, 0}, {38.1, 1}, {39.0, 1}, {39.1, 2}, {42, 2}}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			for _, e := range row.edges {
				var in Inputs
				in.Scale2 = row.scale2
				in.Params[row.p] = Input{Source: Measured, Value: e.v, Time: t0}
				if row.p != AirOrOxygen {
					o := float64(OnAir)
					if row.oxygen {
						o = OnOxygen
					}
					in.Params[AirOrOxygen] = Input{Source: Entered, Value: o, Time: t0}
				}
				s := Compute(in)
				if s.Points[row.p] != e.want {
					t.Errorf("%s %v: %d points, want %d", row.p, e.v, s.Points[row.p], e.want)
				}
				if got := Points(row.p, e.v, row.scale2, row.oxygen); got != e.want && row.p != AirOrOxygen {
					t.Errorf("Points(%s, %v): %d, want %d", row.p, e.v, got, e.want)
				}
			}
		})
	}
}

// TestRounding pins how values between the chart's numbers are banded:
// rounded to the chart's precision, half away from zero, on the decimal
// the value was written as.
func TestRounding(t *testing.T) {
	cases := []struct {
		p    Param
		v    float64
		want int
	}{
		{RespirationRate, 8.49, 3}, {RespirationRate, 8.5, 1}, {RespirationRate, 11.49, 1}, {RespirationRate, 11.5, 0},
		{RespirationRate, 20.49, 0}, {RespirationRate, 20.5, 2}, {RespirationRate, 24.5, 3},
		{SpO2, 91.49, 3}, {SpO2, 91.5, 2}, {SpO2, 95.5, 0}, {SpO2, 95.4999, 1},
		{SystolicBP, 90.4, 3}, {SystolicBP, 90.5, 2}, {SystolicBP, 110.5, 0}, {SystolicBP, 219.49, 0}, {SystolicBP, 219.5, 3},
		{Pulse, 40.5, 1}, {Pulse, 50.49, 1}, {Pulse, 50.5, 0}, {Pulse, 90.5, 1}, {Pulse, 130.5, 3}, {Pulse, 130.4, 2},
		// 35.05 is stored a hair below 35.05; it still rounds to 35.1.
		{Temperature, 35.04, 3}, {Temperature, 35.05, 1}, {Temperature, 36.04, 1}, {Temperature, 36.05, 0},
		{Temperature, 38.049, 0}, {Temperature, 38.05, 1}, {Temperature, 39.05, 2}, {Temperature, 39.04, 1},
		// 95.09 °F converts to 35.05 °C (stored to 0.01).
		{Temperature, math.Round((95.09-32)*5/9*100) / 100, 1},
	}
	for _, c := range cases {
		if got := Points(c.p, c.v, false, false); got != c.want {
			t.Errorf("%s %v: %d points, want %d", c.p, c.v, got, c.want)
		}
	}
	for _, c := range []struct {
		v      float64
		places int
		want   int
	}{{35.05, 1, 351}, {35.0, 1, 350}, {0.05, 1, 1}, {-0.05, 1, -1}, {91.5, 0, 92}, {1e300, 0, 1e6}, {36.95, 1, 370}, {2.675, 2, 268}} {
		if got := scaled(c.v, c.places); got != c.want {
			t.Errorf("scaled(%v, %d) = %d, want %d", c.v, c.places, got, c.want)
		}
	}
}

// full is a complete set of inputs scoring 0 on scale 1.
func full() Inputs {
	var in Inputs
	for p, v := range [NumParams]float64{16, 98, OnAir, 120, 70, float64(Alert), 37} {
		src := Measured
		if Param(p) == AirOrOxygen || Param(p) == Consciousness {
			src = Entered
		}
		in.Params[p] = Input{Source: src, Value: v, Time: t0}
	}
	return in
}

func TestBands(t *testing.T) {
	cases := []struct {
		name       string
		set        map[Param]float64
		total      int
		band       Band
		monitoring string
	}{
		{"all normal", nil, 0, Low, "Minimum 12-hourly"},
		{"1", map[Param]float64{Pulse: 95}, 1, Low, "Minimum 4-6-hourly"},
		{"4 without a 3", map[Param]float64{Pulse: 115, RespirationRate: 22}, 4, Low, "Minimum 4-6-hourly"},
		{"a single 3, total 3", map[Param]float64{Consciousness: float64(Confusion)}, 3, LowMedium, "Minimum 1-hourly"},
		{"a single 3, total 4", map[Param]float64{RespirationRate: 26, Pulse: 95}, 4, LowMedium, "Minimum 1-hourly"},
		{"5", map[Param]float64{AirOrOxygen: OnOxygen, Pulse: 115, Temperature: 38.5}, 5, Medium, "Minimum 1-hourly"},
		{"5 with a 3 is medium, not low-medium", map[Param]float64{SystolicBP: 85, RespirationRate: 22}, 5, Medium, "Minimum 1-hourly"},
		{"6", map[Param]float64{SystolicBP: 95, Pulse: 115, RespirationRate: 22}, 6, Medium, "Minimum 1-hourly"},
		{"7", map[Param]float64{SystolicBP: 85, Pulse: 115, RespirationRate: 22}, 7, High, "Continuous monitoring of vital signs"},
		{"20, every parameter at its worst", map[Param]float64{RespirationRate: 30, SpO2: 85, AirOrOxygen: OnOxygen, SystolicBP: 80, Pulse: 140, Consciousness: float64(Unresponsive), Temperature: 34.5}, 20, High, "Continuous monitoring of vital signs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := full()
			for p, v := range c.set {
				in.Params[p].Value = v
			}
			s := Compute(in)
			if s.Total != c.total || s.Band != c.band || !s.Complete() {
				t.Fatalf("total %d band %s complete %v; want %d %s complete", s.Total, s.Band, s.Complete(), c.total, c.band)
			}
			if r := s.Response(); r.Monitoring != c.monitoring || r.Action == "" || r.Urgency == "" {
				t.Fatalf("response %+v, want monitoring %q", r, c.monitoring)
			}
		})
	}
}

func TestScale2ScoresSpO2Differently(t *testing.T) {
	in := full()
	in.Params[SpO2].Value = 90
	if s := Compute(in); s.Points[SpO2] != 3 || s.Scale != 1 || s.Band != LowMedium {
		t.Fatalf("scale 1, 90 %%: %+v", s)
	}
	in.Scale2 = true
	if s := Compute(in); s.Points[SpO2] != 0 || s.Scale != 2 || s.Band != Low {
		t.Fatalf("scale 2, 90 %% on air: %+v", s)
	}
	in.Params[SpO2].Value = 98
	in.Params[AirOrOxygen].Value = OnOxygen
	if s := Compute(in); s.Points[SpO2] != 3 || s.Points[AirOrOxygen] != 2 || s.Total != 5 || s.Band != Medium {
		t.Fatalf("scale 2, 98 %% on oxygen: %+v", s)
	}
	// Without knowing air or oxygen, scale 2 scores a high saturation as on
	// air, and the score says the input is missing.
	in.Params[AirOrOxygen] = Input{}
	if s := Compute(in); s.Points[SpO2] != 0 || s.Complete() || !slices.Equal(s.Missing(), []Param{AirOrOxygen}) {
		t.Fatalf("scale 2, oxygen unknown: %+v", s)
	}
}

func TestCompleteness(t *testing.T) {
	in := full()
	if s := Compute(in); !s.Complete() || len(s.Missing()) != 0 || len(s.Stale()) != 0 {
		t.Fatalf("full inputs: %+v", s)
	}
	in.Params[Temperature].Source = Stale
	in.Params[Temperature].Value = 39.5
	in.Params[Consciousness] = Input{}
	in.Params[RespirationRate] = Input{Source: Measured, Value: math.NaN()}
	s := Compute(in)
	if s.Complete() || !slices.Equal(s.Missing(), []Param{RespirationRate, Consciousness}) || !slices.Equal(s.Stale(), []Param{Temperature}) {
		t.Fatalf("missing %v stale %v complete %v", s.Missing(), s.Stale(), s.Complete())
	}
	// Missing inputs count nothing; a stale one counts its last value.
	if s.Total != 2 || s.Points[Temperature] != 2 || s.Sources[Temperature] != Stale || s.Sources[RespirationRate] != Missing {
		t.Fatalf("partial score %+v", s)
	}
	// Values the parameter cannot take count as missing.
	for p, v := range map[Param]float64{AirOrOxygen: 0.5, Consciousness: 7, Pulse: math.Inf(1)} {
		in := full()
		in.Params[p].Value = v
		if s := Compute(in); s.Sources[p] != Missing || s.Complete() {
			t.Errorf("%s = %v: source %s", p, v, s.Sources[p])
		}
	}
}

func TestNames(t *testing.T) {
	for p := range NumParams {
		back, err := ParseParam(p.String())
		if err != nil || back != p || p.Title() == "" {
			t.Errorf("param %d: %q %v", p, p.String(), err)
		}
	}
	if _, err := ParseParam("heart"); err == nil {
		t.Error("ParseParam accepted an unknown name")
	}
	for l := Alert; l <= Unresponsive; l++ {
		var back Level
		b, _ := l.MarshalText()
		if err := back.UnmarshalText(b); err != nil || back != l {
			t.Errorf("level %d: %q %v", l, b, err)
		}
	}
	if _, err := ParseLevel("drowsy"); err == nil {
		t.Error("ParseLevel accepted an unknown level")
	}
	b, err := json.Marshal(struct {
		B Band
		S Source
		P Param
	}{LowMedium, Stale, SystolicBP})
	if err != nil || string(b) != `{"B":"low-medium","S":"stale","P":"systolic"}` {
		t.Fatalf("JSON %s %v", b, err)
	}
	if _, err := json.Marshal(Param(9)); err == nil {
		t.Error("an unknown parameter marshalled")
	}
	if fmt.Sprint(Band(9), Source(9), Level(9)) == "" {
		t.Error("unknown values print nothing")
	}
}

func BenchmarkCompute(b *testing.B) {
	in := full()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		in.Params[Pulse].Value = float64(60 + i%80)
		_ = Compute(in)
	}
}
