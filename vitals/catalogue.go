package vitals

import (
	"fmt"
	"sort"
	"strings"
)

// LOINC codes Bedside accepts.
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

// measure describes one accepted measurement: the UCUM units it may arrive
// in (with the conversion to its canonical unit) and its possible range,
// exclusive at both ends unless maxInclusive.
type measure struct {
	unit         string // canonical UCUM unit stored and shown
	units        map[string]func(float64) float64
	min, max     float64 // in the canonical unit
	maxInclusive bool
}

func same(v float64) float64 { return v }

var catalogue = map[string]measure{
	CodeHeartRate:   {unit: "/min", units: map[string]func(float64) float64{"/min": same}, min: 0, max: 300},
	CodeRespRate:    {unit: "/min", units: map[string]func(float64) float64{"/min": same}, min: 0, max: 70},
	CodeSpO2:        {unit: "%", units: map[string]func(float64) float64{"%": same}, min: 0, max: 100, maxInclusive: true},
	CodeSpO2Alt:     {unit: "%", units: map[string]func(float64) float64{"%": same}, min: 0, max: 100, maxInclusive: true},
	CodeSystolic:    {unit: "mm[Hg]", units: map[string]func(float64) float64{"mm[Hg]": same}, min: 0, max: 400},
	CodeDiastolic:   {unit: "mm[Hg]", units: map[string]func(float64) float64{"mm[Hg]": same}, min: 0, max: 300},
	CodeTemperature: {unit: "Cel", units: map[string]func(float64) float64{"Cel": same, "[degF]": func(f float64) float64 { return (f - 32) * 5 / 9 }}, min: 10, max: 50},
	CodeWeight:      {unit: "kg", units: map[string]func(float64) float64{"kg": same}, min: 0, max: 500},
	CodeGlucoseMass: {unit: "mg/dL", units: map[string]func(float64) float64{"mg/dL": same}, min: 0, max: 1000},
	CodeGlucoseMol:  {unit: "mmol/L", units: map[string]func(float64) float64{"mmol/L": same}, min: 0, max: 55},
}

func (m measure) unitList() string {
	var us []string
	for u := range m.units {
		us = append(us, fmt.Sprintf("%q", u))
	}
	sort.Strings(us)
	return strings.Join(us, " or ")
}

func (m measure) rangeText() string {
	hi := "<"
	if m.maxInclusive {
		hi = "<="
	}
	return fmt.Sprintf("must be > %v and %s %v %s", m.min, hi, m.max, m.unit)
}
