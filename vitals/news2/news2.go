package news2

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Param is one of the seven parameters of the NEWS2 chart.
type Param int

// The parameters, in the chart's order.
const (
	RespirationRate Param = iota // breaths /min
	SpO2                         // %, on scale 1 or scale 2
	AirOrOxygen                  // OnAir or OnOxygen
	SystolicBP                   // mm[Hg]
	Pulse                        // /min
	Consciousness                // a Level (ACVPU)
	Temperature                  // Cel
	NumParams                    // how many parameters there are
)

var paramNames = [NumParams]string{"respiration-rate", "spo2", "air-or-oxygen", "systolic", "pulse", "consciousness", "temperature"}

var paramTitles = [NumParams]string{"Respiration rate", "SpO2", "Air or oxygen", "Systolic blood pressure", "Pulse", "Consciousness", "Temperature"}

// String is the parameter's name on the wire, such as "respiration-rate".
func (p Param) String() string {
	if p < 0 || p >= NumParams {
		return "param(" + strconv.Itoa(int(p)) + ")"
	}
	return paramNames[p]
}

// Title is the parameter's name in words, such as "Respiration rate".
func (p Param) Title() string {
	if p < 0 || p >= NumParams {
		return p.String()
	}
	return paramTitles[p]
}

// MarshalText writes the parameter's wire name.
func (p Param) MarshalText() ([]byte, error) {
	if p < 0 || p >= NumParams {
		return nil, fmt.Errorf("news2: no parameter %d", int(p))
	}
	return []byte(paramNames[p]), nil
}

// ParseParam reads a parameter's wire name.
func ParseParam(s string) (Param, error) {
	for i, n := range paramNames {
		if n == s {
			return Param(i), nil
		}
	}
	return 0, fmt.Errorf("%q is not a NEWS2 parameter", s)
}

// Values of the AirOrOxygen input.
const (
	OnAir    = 0
	OnOxygen = 1
)

// Level is a patient's level of consciousness on the ACVPU scale.
type Level int

// The ACVPU levels. Any level but Alert scores 3.
const (
	Alert        Level = iota // alert
	Confusion                 // new confusion (or new disorientation or agitation)
	Voice                     // responds to voice
	Pain                      // responds to pain
	Unresponsive              // unresponsive
)

var levelNames = []string{"alert", "confusion", "voice", "pain", "unresponsive"}

// String is the level's wire name, such as "confusion".
func (l Level) String() string {
	if l < Alert || l > Unresponsive {
		return "level(" + strconv.Itoa(int(l)) + ")"
	}
	return levelNames[l]
}

// MarshalText writes the level's wire name.
func (l Level) MarshalText() ([]byte, error) {
	if l < Alert || l > Unresponsive {
		return nil, fmt.Errorf("news2: no consciousness level %d", int(l))
	}
	return []byte(levelNames[l]), nil
}

// UnmarshalText reads a level's wire name.
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// ParseLevel reads a level's wire name: alert, confusion, voice, pain or
// unresponsive.
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if n == s {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("%q is not a consciousness level (want alert, confusion, voice, pain or unresponsive)", s)
}

// Source says where an input's value came from.
type Source int

// The sources. The zero value is Missing.
const (
	Missing  Source = iota // no value
	Measured               // from a device, at its Time
	Entered                // by a clinician, at its Time
	Stale                  // a value older than its freshness window
)

var sourceNames = [...]string{"missing", "measured", "entered", "stale"}

// String is the source's wire name, such as "measured".
func (s Source) String() string {
	if s < Missing || s > Stale {
		return "source(" + strconv.Itoa(int(s)) + ")"
	}
	return sourceNames[s]
}

// MarshalText writes the source's wire name.
func (s Source) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Input is one parameter's value and where it came from. Value is in the
// parameter's unit (see Param); for AirOrOxygen it is OnAir or OnOxygen,
// for Consciousness a Level. A Missing input's Value is not read; an input
// whose Value is not a finite number, or not a level or OnAir/OnOxygen
// where one is needed, counts as Missing.
type Input struct {
	Source Source
	Value  float64
	Time   time.Time // when it was measured or entered; zero if Missing
}

// Present reports whether the input holds a value the chart can score.
func (in Input) Present(p Param) bool {
	if in.Source == Missing || math.IsNaN(in.Value) || math.IsInf(in.Value, 0) {
		return false
	}
	switch p {
	case AirOrOxygen:
		return in.Value == OnAir || in.Value == OnOxygen
	case Consciousness:
		return in.Value == math.Trunc(in.Value) && Level(in.Value) >= Alert && Level(in.Value) <= Unresponsive
	}
	return true
}

// Inputs are the seven parameters and the SpO2 scale in use.
type Inputs struct {
	// Scale2 selects SpO2 scale 2, for patients with hypercapnic
	// respiratory failure whose target range a clinician has set to 88-92 %.
	Scale2 bool
	Params [NumParams]Input
}

// Band is a clinical risk band of the NEWS2 chart.
type Band int

// The bands, lowest risk first.
const (
	Low       Band = iota // aggregate 0-4 and no parameter scoring 3
	LowMedium             // a single parameter scoring 3, aggregate under 5
	Medium                // aggregate 5-6
	High                  // aggregate 7 or more
)

var bandNames = [...]string{"low", "low-medium", "medium", "high"}

// String is the band's wire name, such as "low-medium".
func (b Band) String() string {
	if b < Low || b > High {
		return "band(" + strconv.Itoa(int(b)) + ")"
	}
	return bandNames[b]
}

// MarshalText writes the band's wire name.
func (b Band) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// Score is a computed NEWS2: the aggregate, its band, and each
// parameter's points and source.
type Score struct {
	Total   int // 0-20
	Band    Band
	Scale   int               // SpO2 scale used: 1 or 2
	Points  [NumParams]int    // each parameter's points; 0 for a missing one
	Sources [NumParams]Source // Missing for an input that could not be scored
}

// Complete reports whether every input is present and fresh, so the
// score is a NEWS2 in the chart's sense. An incomplete score adds up what
// is there: missing inputs count nothing, stale ones their last value.
func (s Score) Complete() bool {
	for _, src := range s.Sources {
		if src == Missing || src == Stale {
			return false
		}
	}
	return true
}

// Missing lists the parameters with no value, in chart order.
func (s Score) Missing() []Param { return s.with(Missing) }

// Stale lists the parameters whose value is older than its window.
func (s Score) Stale() []Param { return s.with(Stale) }

func (s Score) with(src Source) []Param {
	var out []Param
	for p, got := range s.Sources {
		if got == src {
			out = append(out, Param(p))
		}
	}
	return out
}

// RedScore reports whether any parameter scores 3.
func (s Score) RedScore() bool {
	for p, pts := range s.Points {
		if pts == 3 && s.Sources[p] != Missing {
			return true
		}
	}
	return false
}

// Compute scores the inputs on the NEWS2 chart.
func Compute(in Inputs) Score {
	s := Score{Scale: 1}
	if in.Scale2 {
		s.Scale = 2
	}
	oxygen := in.Params[AirOrOxygen].Present(AirOrOxygen) && in.Params[AirOrOxygen].Value == OnOxygen
	for i, input := range in.Params {
		p := Param(i)
		if !input.Present(p) {
			continue
		}
		s.Sources[p] = input.Source
		s.Points[p] = points(p, input.Value, in.Scale2, oxygen)
		s.Total += s.Points[p]
	}
	s.Band = bandOf(s.Total, s.RedScore())
	return s
}

// Points is what one parameter's value scores on the chart. scale2 and
// oxygen matter only to SpO2: on scale 2, saturations of 93 % and above
// score only when the patient is on oxygen.
func Points(p Param, v float64, scale2, oxygen bool) int {
	return points(p, v, scale2, oxygen)
}

func points(p Param, v float64, scale2, oxygen bool) int {
	switch p {
	case RespirationRate:
		return byEdges(whole(v), 8, 3, 11, 1, 20, 0, 24, 2, 3)
	case SpO2:
		n := whole(v)
		if !scale2 {
			return byEdges(n, 91, 3, 93, 2, 95, 1, 0)
		}
		switch {
		case n <= 92 || !oxygen:
			return byEdges(n, 83, 3, 85, 2, 87, 1, 0)
		default: // 93 and above on oxygen
			return byEdges(n, 94, 1, 96, 2, 3)
		}
	case AirOrOxygen:
		if v == OnOxygen {
			return 2
		}
		return 0
	case SystolicBP:
		return byEdges(whole(v), 90, 3, 100, 2, 110, 1, 219, 0, 3)
	case Pulse:
		return byEdges(whole(v), 40, 3, 50, 1, 90, 0, 110, 1, 130, 2, 3)
	case Consciousness:
		if Level(v) == Alert {
			return 0
		}
		return 3
	case Temperature:
		return byEdges(tenths(v), 350, 3, 360, 1, 380, 0, 390, 1, 2)
	}
	return 0
}

// byEdges reads a chart row: pairs of (highest value, points) in rising
// order, then the points above the last edge.
func byEdges(n int, row ...int) int {
	for i := 0; i+1 < len(row); i += 2 {
		if n <= row[i] {
			return row[i+1]
		}
	}
	return row[len(row)-1]
}

func bandOf(total int, red bool) Band {
	switch {
	case total >= 7:
		return High
	case total >= 5:
		return Medium
	case red:
		return LowMedium
	}
	return Low
}

// whole rounds to the chart's whole numbers, half away from zero.
func whole(v float64) int { return scaled(v, 0) }

// tenths rounds to the chart's tenths (of a degree), half away from zero,
// as a whole number of tenths: 35.05 is 351.
func tenths(v float64) int { return scaled(v, 1) }

// limit keeps scaled's decimal arithmetic within int range; the chart is
// saturated far below it.
const limit = 1e6

// scaled rounds v to places decimals, half away from zero, and returns it
// times 10^places. It rounds the shortest decimal that reads back as v (the
// number as a device or a person wrote it), so 35.05, whose nearest float is
// a hair below, still rounds up to 35.1.
func scaled(v float64, places int) int {
	a := math.Min(math.Abs(v), limit)
	if a == math.Trunc(a) { // most readings: no decimals to round
		n := int(a)
		for range places {
			n *= 10
		}
		if v < 0 {
			return -n
		}
		return n
	}
	var buf [32]byte
	digits := strconv.AppendFloat(buf[:0], a, 'f', -1, 64)
	n, frac, up := 0, -1, false
	for _, c := range digits {
		if c == '.' {
			frac = 0
			continue
		}
		if frac >= 0 {
			if frac == places {
				up = c >= '5'
				break
			}
			frac++
		}
		n = n*10 + int(c-'0')
	}
	for frac = max(frac, 0); frac < places; frac++ {
		n *= 10
	}
	if up {
		n++
	}
	if v < 0 {
		return -n
	}
	return n
}
