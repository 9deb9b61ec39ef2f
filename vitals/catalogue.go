package vitals

import (
	"math"
	"strconv"
	"strings"
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
// the units it may arrive in with their conversion to the stored unit, and
// its possible range in the stored unit, exclusive at both ends unless
// maxIncl.
type measure struct {
	name    string
	unit    string
	units   []unitConv
	min     float64
	max     float64
	maxIncl bool
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
	perMin = []unitConv{{ucum: "/min"}}
	mmHg   = []unitConv{{ucum: "mm[Hg]"}}
)

// catalogue holds every numeric measurement, by LOINC code. The ranges are
// the design brief's impossible values; where the brief sets none, they are
// wide bounds beyond any recorded human value.
var catalogue = map[string]measure{
	CodeHeartRate:   {name: "heart rate", unit: "/min", units: perMin, min: 0, max: 300},
	CodeRespRate:    {name: "respiratory rate", unit: "/min", units: perMin, min: 0, max: 70},
	CodeSpO2:        {name: "SpO2", unit: "%", units: []unitConv{{ucum: "%"}}, min: 0, max: 100, maxIncl: true},
	CodeSpO2Alt:     {name: "SpO2", unit: "%", units: []unitConv{{ucum: "%"}}, min: 0, max: 100, maxIncl: true},
	CodeSystolic:    {name: "systolic blood pressure", unit: "mm[Hg]", units: mmHg, min: 0, max: 400},
	CodeDiastolic:   {name: "diastolic blood pressure", unit: "mm[Hg]", units: mmHg, min: 0, max: 300},
	CodeTemperature: {name: "body temperature", unit: "Cel", units: []unitConv{{ucum: "Cel"}, {ucum: "[degF]", to: fahrenheitToCelsius}}, min: 10, max: 50},
	CodeWeight:      {name: "body weight", unit: "kg", units: []unitConv{{ucum: "kg"}}, min: 0, max: 700},
	CodeGlucoseMass: {name: "glucose", unit: "mg/dL", units: []unitConv{{ucum: "mg/dL"}}, min: 0, max: 3000},
	CodeGlucoseMol:  {name: "glucose", unit: "mmol/L", units: []unitConv{{ucum: "mmol/L"}}, min: 0, max: 170},
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
	m, ok := catalogue[code]
	return m.unit, ok
}

// Plausible reports whether v, in the stored unit of code, is a possible
// value of that measurement.
func Plausible(code string, v float64) bool {
	m, ok := catalogue[code]
	return ok && m.possible(v)
}

func (m measure) possible(v float64) bool {
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
func (m measure) convert(ucum string, v float64) (float64, bool) {
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
func (m measure) unitList() string {
	qs := make([]string, len(m.units))
	for i, u := range m.units {
		qs[i] = strconv.Quote(u.ucum)
	}
	return strings.Join(qs, " or ")
}

// rangeText states the possible range: "must be > 0 and < 300 /min".
func (m measure) rangeText() string {
	hi := "<"
	if m.maxIncl {
		hi = "<="
	}
	return "must be > " + fmtNum(m.min) + " and " + hi + " " + fmtNum(m.max) + " " + m.unit
}

func fmtNum(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
