package vitals

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Code systems an observation's coding may name.
const (
	SystemLOINC = "http://loinc.org"
	SystemUCUM  = "http://unitsofmeasure.org"
	// SystemMDC is ISO/IEEE 11073-10101 (MDC), which names waveforms.
	SystemMDC = "urn:oid:2.16.840.1.113883.6.24"
)

// LOINC codes of the numeric measurements Bedside accepts.
const (
	CodeHeartRate   = "8867-4"
	CodeRespRate    = "9279-1"
	CodeSpO2        = "59408-5"
	CodeSpO2Alt     = "2708-6"
	CodeBPPanel     = "85354-9"
	CodeSystolic    = "8480-6"
	CodeDiastolic   = "8462-4"
	CodeTemperature = "8310-5"
	CodeWeight      = "29463-7"
	CodeGlucoseMass = "2339-0"
	CodeGlucoseMol  = "15074-8"
)

// MDC codes of the waveforms Bedside accepts as SampledData.
const (
	CodeECG       = "131328" // MDC_ECG_ELEC_POTL, lead unspecified
	CodeECGLeadI  = "131329" // MDC_ECG_ELEC_POTL_I
	CodeECGLeadII = "131330" // MDC_ECG_ELEC_POTL_II
	CodePleth     = "150452" // MDC_PULS_OXIM_PLETH
)

// measure describes one numeric measurement: the UCUM unit it is stored in,
// the units it may arrive in with their conversion to the stored unit, its
// possible range in the stored unit (exclusive at both ends unless
// maxIncl), the usual range inside it (a possible value outside the usual
// range is improbable: kept, but flagged), and how long a reading stays
// current.
type measure struct {
	name     string
	unit     string
	units    []unitConv
	min      float64
	max      float64
	maxIncl  bool
	usualMin float64 // values below are improbable
	usualMax float64 // values above are improbable
	fresh    time.Duration
}

// unitConv is an accepted UCUM unit and its conversion to the stored unit.
type unitConv struct {
	ucum string
	to   func(float64) float64 // nil: already the stored unit
}

// fahrenheitToCelsius converts and rounds to 0.01 Cel, finer than any
// clinical thermometer, so 98.6 [degF] is stored as exactly 37.
func fahrenheitToCelsius(f float64) float64 {
	return math.Round((f-32)*5/9*100) / 100
}

var (
	perMin  = []unitConv{{ucum: "/min"}}
	mmHg    = []unitConv{{ucum: "mm[Hg]"}}
	percent = []unitConv{{ucum: "%"}}
)

// catalogue holds every numeric measurement, by LOINC code. The possible
// ranges are the design brief's impossible values; where the brief sets
// none, they are wide bounds beyond any recorded human value. The usual
// ranges mark values that are possible but unlikely enough to be shown as
// doubtful. The freshness windows suit how each is measured: pulse and
// SpO2 about once a second, respiratory rate from a window of breaths, a
// blood-pressure cuff every few minutes, temperature, weight and glucose as
// spot checks.
var catalogue = map[string]*measure{
	CodeHeartRate:   {name: "heart rate", unit: "/min", units: perMin, min: 0, max: 300, usualMin: 30, usualMax: 220, fresh: 30 * time.Second},
	CodeRespRate:    {name: "respiratory rate", unit: "/min", units: perMin, min: 0, max: 70, usualMin: 6, usualMax: 45, fresh: time.Minute},
	CodeSpO2:        {name: "SpO2", unit: "%", units: percent, min: 0, max: 100, maxIncl: true, usualMin: 70, usualMax: 100, fresh: 30 * time.Second},
	CodeSpO2Alt:     {name: "SpO2", unit: "%", units: percent, min: 0, max: 100, maxIncl: true, usualMin: 70, usualMax: 100, fresh: 30 * time.Second},
	CodeSystolic:    {name: "systolic blood pressure", unit: "mm[Hg]", units: mmHg, min: 0, max: 400, usualMin: 60, usualMax: 250, fresh: 15 * time.Minute},
	CodeDiastolic:   {name: "diastolic blood pressure", unit: "mm[Hg]", units: mmHg, min: 0, max: 300, usualMin: 30, usualMax: 150, fresh: 15 * time.Minute},
	CodeTemperature: {name: "body temperature", unit: "Cel", units: []unitConv{{ucum: "Cel"}, {ucum: "[degF]", to: fahrenheitToCelsius}}, min: 10, max: 50, usualMin: 33, usualMax: 42, fresh: 30 * time.Minute},
	CodeWeight:      {name: "body weight", unit: "kg", units: []unitConv{{ucum: "kg"}}, min: 0, max: 700, usualMin: 2, usualMax: 350, fresh: 24 * time.Hour},
	CodeGlucoseMass: {name: "glucose", unit: "mg/dL", units: []unitConv{{ucum: "mg/dL"}}, min: 0, max: 3000, usualMin: 20, usualMax: 600, fresh: 8 * time.Hour},
	CodeGlucoseMol:  {name: "glucose", unit: "mmol/L", units: []unitConv{{ucum: "mmol/L"}}, min: 0, max: 170, usualMin: 1.1, usualMax: 33.3, fresh: 8 * time.Hour},
}

// waveforms names the SampledData codes Bedside accepts.
var waveforms = map[string]string{
	CodeECG:       "ECG",
	CodeECGLeadI:  "ECG lead I",
	CodeECGLeadII: "ECG lead II",
	CodePleth:     "plethysmogram",
}

// IsWaveform reports whether code is a waveform Bedside accepts.
func IsWaveform(code string) bool {
	_, ok := waveforms[code]
	return ok
}

// Unit returns the UCUM unit a numeric code is stored and shown in, and
// whether the code is a numeric measurement Bedside accepts.
func Unit(code string) (string, bool) {
	if m, ok := catalogue[code]; ok {
		return m.unit, true
	}
	return "", false
}

// Name is a numeric code's measurement in words, such as "heart rate";
// "" for a code Bedside does not keep.
func Name(code string) string {
	if m, ok := catalogue[code]; ok {
		return m.name
	}
	return ""
}

// Canonical is the code Bedside files a measurement under: readings of
// SpO2 sent as 2708-6 are the same measurement as 59408-5.
func Canonical(code string) string {
	if code == CodeSpO2Alt {
		return CodeSpO2
	}
	return code
}

// Plausible reports whether v, in the stored unit of code, is a possible
// value of that measurement.
func Plausible(code string, v float64) bool {
	m, ok := catalogue[code]
	return ok && m.possible(v)
}

// Improbable reports whether v, in the stored unit of code, is a possible
// value outside the measurement's usual range: such a reading is kept and
// shown, flagged FlagImprobable.
func Improbable(code string, v float64) bool {
	m, ok := catalogue[code]
	return ok && m.possible(v) && m.improbable(v)
}

func (m *measure) improbable(v float64) bool { return v < m.usualMin || v > m.usualMax }

func (m *measure) possible(v float64) bool {
	if math.IsNaN(v) || v <= m.min {
		return false
	}
	if m.maxIncl {
		return v <= m.max
	}
	return v < m.max
}

// convert returns v in the stored unit, or false if ucum is not accepted.
// UCUM annotations such as {beats}/min mean the same as /min.
func (m *measure) convert(ucum string, v float64) (float64, bool) {
	ucum = stripAnnotations(ucum)
	for _, u := range m.units {
		if u.ucum == ucum {
			if u.to != nil {
				v = u.to(v)
			}
			return v, true
		}
	}
	return 0, false
}

// stripAnnotations removes UCUM curly-brace annotations: "{beats}/min" is
// "/min". A unit that is only an annotation is left alone.
func stripAnnotations(u string) string {
	if !strings.Contains(u, "{") {
		return u
	}
	var b strings.Builder
	depth := 0
	for _, r := range u {
		switch {
		case r == '{':
			depth++
		case r == '}' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 || depth != 0 {
		return u
	}
	return b.String()
}

// unitList quotes the accepted units: `"Cel" or "[degF]"`.
func (m *measure) unitList() string {
	qs := make([]string, len(m.units))
	for i, u := range m.units {
		qs[i] = strconv.Quote(u.ucum)
	}
	return strings.Join(qs, " or ")
}

// rangeText states the possible range: "must be > 0 and < 300 /min".
func (m *measure) rangeText() string {
	hi := "<"
	if m.maxIncl {
		hi = "<="
	}
	return "must be > " + fmtNum(m.min) + " and " + hi + " " + fmtNum(m.max) + " " + m.unit
}

func fmtNum(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// FlagImprobable marks a reading whose value is possible but outside its
// measurement's usual range (docs/protocol.md): stored and shown, as
// doubtful.
const FlagImprobable = "improbable value"

// informational are flags that say something about the device rather than
// the value: a reading carrying only these is not doubtful. The device's
// own clock is never used for a reading's time.
var informational = []string{"device clock not set", "device battery low"}

// Doubtful reports whether the reading carries a flag that casts doubt on
// its value: an improbable value, or a problem the device reported with
// the measurement (motion, poor contact, a loose cuff). Doubtful readings
// are stored and shown, greyed; clinical rules (NEWS2, alerts) do not act
// on them.
func (r Reading) Doubtful() bool {
	for _, f := range r.Flags {
		if !slices.Contains(informational, f) {
			return true
		}
	}
	return false
}

// Freshness holds how long a reading of each code stays current before it
// is stale, overriding the defaults (DefaultFreshness) for the codes it
// names.
type Freshness map[string]time.Duration

// DefaultFreshness returns the default staleness windows, by LOINC code:
// 30 s for heart rate and SpO2 (measured about once a second), 1 min for
// respiratory rate, 15 min for blood pressure (a cuff every few minutes),
// 30 min for temperature, 8 h for glucose and 24 h for weight.
func DefaultFreshness() Freshness {
	f := make(Freshness, len(catalogue))
	for code, m := range catalogue {
		f[code] = m.fresh
	}
	return f
}

// DefaultStaleAfter is how long a reading of a code stays current unless
// configured otherwise; 0 for a code Bedside does not keep.
func DefaultStaleAfter(code string) time.Duration {
	if m, ok := catalogue[code]; ok {
		return m.fresh
	}
	return 0
}

// StaleAfter is how long a reading of code stays current: f's window if it
// names a positive one, else the default.
func (f Freshness) StaleAfter(code string) time.Duration {
	if d := f[code]; d > 0 {
		return d
	}
	return DefaultStaleAfter(code)
}
