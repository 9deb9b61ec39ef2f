package vitals

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// FieldError is a rejected input, naming the field at fault.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Reading is one validated numeric measurement.
type Reading struct {
	Code  string // LOINC
	Value float64
	Unit  string // UCUM
	Time  time.Time
}

// Waveform is a validated chunk of samples (FHIR SampledData).
type Waveform struct {
	Code   string
	Origin float64
	Period float64 // milliseconds between samples
	Factor float64
	Data   []float64 // raw sample values; physical value = Origin + Factor*sample
	Time   time.Time
}

// Parsed is what one observation yields: numeric readings (two for a
// blood-pressure panel) or a waveform chunk.
type Parsed struct {
	Readings []Reading
	Waveform *Waveform
	Subject  string // subject.reference as sent, "" if absent
}

// Envelope is one device message: a sequence number and an observation.
type Envelope struct {
	Seq         int64
	Observation json.RawMessage
}

// DecodeEnvelope reads {"seq": N, "observation": {...}}.
func DecodeEnvelope(b []byte) (Envelope, error) {
	var raw struct {
		Seq         json.RawMessage `json:"seq"`
		Observation json.RawMessage `json:"observation"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return Envelope{}, fmt.Errorf("not a JSON envelope: %v", jsonReason(err))
	}
	if dec.More() {
		return Envelope{}, fmt.Errorf("not a JSON envelope: data after the object")
	}
	if len(raw.Seq) == 0 {
		return Envelope{}, fieldErr("seq", "missing")
	}
	seq, err := strconv.ParseInt(string(raw.Seq), 10, 64)
	if err != nil || seq < 1 {
		return Envelope{}, fieldErr("seq", "%s is not a whole number from 1 up", raw.Seq)
	}
	if len(raw.Observation) == 0 || string(raw.Observation) == "null" {
		return Envelope{Seq: seq}, fieldErr("observation", "missing")
	}
	return Envelope{Seq: seq, Observation: raw.Observation}, nil
}

func jsonReason(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at byte %d", se.Error(), se.Offset)
	}
	return err.Error()
}

type coding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

type quantity struct {
	Value  *float64 `json:"value"`
	Unit   string   `json:"unit"`
	System string   `json:"system"`
	Code   string   `json:"code"`
}

type sampledData struct {
	Origin     *quantity `json:"origin"`
	Period     float64   `json:"period"`
	Factor     *float64  `json:"factor"`
	Dimensions int       `json:"dimensions"`
	Data       string    `json:"data"`
}

type fhirObservation struct {
	ResourceType string `json:"resourceType"`
	Status       string `json:"status"`
	Code         struct {
		Coding []coding `json:"coding"`
	} `json:"code"`
	Subject *struct {
		Reference string `json:"reference"`
	} `json:"subject"`
	EffectiveDateTime string       `json:"effectiveDateTime"`
	ValueQuantity     *quantity    `json:"valueQuantity"`
	ValueSampledData  *sampledData `json:"valueSampledData"`
	Component         []struct {
		Code struct {
			Coding []coding `json:"coding"`
		} `json:"code"`
		ValueQuantity *quantity `json:"valueQuantity"`
	} `json:"component"`
}

const loincSystem = "http://loinc.org"

// loincCode returns the first LOINC code of a coding list.
func loincCode(cs []coding) string {
	for _, c := range cs {
		if c.System == loincSystem || c.System == "" {
			return c.Code
		}
	}
	return ""
}

// maxSamples bounds one waveform chunk.
const maxSamples = 4096

// ParseObservation validates one FHIR Observation and returns its readings.
func ParseObservation(raw json.RawMessage) (Parsed, error) {
	var o fhirObservation
	if err := json.Unmarshal(raw, &o); err != nil {
		return Parsed{}, fieldErr("observation", "not a FHIR Observation: %v", jsonReason(err))
	}
	if o.ResourceType != "Observation" {
		return Parsed{}, fieldErr("observation.resourceType", "%q, want \"Observation\"", o.ResourceType)
	}
	switch o.Status {
	case "final", "preliminary", "amended":
	default:
		return Parsed{}, fieldErr("observation.status", "%q, want final, preliminary or amended", o.Status)
	}
	var p Parsed
	if o.Subject != nil {
		p.Subject = o.Subject.Reference
	}
	if o.EffectiveDateTime == "" {
		return p, fieldErr("observation.effectiveDateTime", "missing")
	}
	when, err := time.Parse(time.RFC3339Nano, o.EffectiveDateTime)
	if err != nil {
		return p, fieldErr("observation.effectiveDateTime", "%q is not an RFC 3339 date-time with a zone", o.EffectiveDateTime)
	}
	when = when.UTC()
	code := loincCode(o.Code.Coding)
	if code == "" {
		return p, fieldErr("observation.code.coding", "no LOINC code (system %q)", loincSystem)
	}
	if o.ValueSampledData != nil {
		w, err := parseWaveform(code, o.ValueSampledData, when)
		if err != nil {
			return p, err
		}
		p.Waveform = w
		return p, nil
	}
	if code == CodeBPPanel {
		if len(o.Component) == 0 {
			return p, fieldErr("observation.component", "a blood-pressure panel needs systolic (8480-6) and diastolic (8462-4) components")
		}
		seen := map[string]bool{}
		for i, c := range o.Component {
			field := fmt.Sprintf("observation.component[%d]", i)
			cc := loincCode(c.Code.Coding)
			if cc != CodeSystolic && cc != CodeDiastolic {
				return p, fieldErr(field+".code", "%q is not 8480-6 or 8462-4", cc)
			}
			if seen[cc] {
				return p, fieldErr(field+".code", "%s appears twice", cc)
			}
			seen[cc] = true
			r, err := quantityReading(field+".valueQuantity", cc, c.ValueQuantity, when)
			if err != nil {
				return p, err
			}
			p.Readings = append(p.Readings, r)
		}
		if !seen[CodeSystolic] || !seen[CodeDiastolic] {
			return p, fieldErr("observation.component", "a blood-pressure panel needs both systolic (8480-6) and diastolic (8462-4)")
		}
		return p, nil
	}
	if o.ValueQuantity == nil {
		return p, fieldErr("observation.valueQuantity", "missing")
	}
	r, err := quantityReading("observation.valueQuantity", code, o.ValueQuantity, when)
	if err != nil {
		return p, err
	}
	p.Readings = []Reading{r}
	return p, nil
}

func quantityReading(field, code string, q *quantity, when time.Time) (Reading, error) {
	m, ok := catalogue[code]
	if !ok {
		return Reading{}, fieldErr("observation.code.coding", "LOINC %q is not a measurement Bedside accepts", code)
	}
	if q == nil {
		return Reading{}, fieldErr(field, "missing")
	}
	if q.Value == nil {
		return Reading{}, fieldErr(field+".value", "missing")
	}
	v := *q.Value
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Reading{}, fieldErr(field+".value", "not a finite number")
	}
	unit := q.Code
	unitField := field + ".code"
	if unit == "" {
		unit, unitField = q.Unit, field+".unit"
	}
	conv, ok := m.units[unit]
	if !ok {
		return Reading{}, fieldErr(unitField, "%q is not the UCUM unit for %s (want %s)", unit, code, m.unitList())
	}
	v = conv(v)
	if !(v > m.min && v < m.max) && !(m.maxInclusive && v == m.max && v > m.min) {
		return Reading{}, fieldErr(field+".value", "%v %s is impossible for %s (%s)", *q.Value, unit, code, m.rangeText())
	}
	return Reading{Code: code, Value: v, Unit: m.unit, Time: when}, nil
}

func parseWaveform(code string, sd *sampledData, when time.Time) (*Waveform, error) {
	const f = "observation.valueSampledData"
	w := &Waveform{Code: code, Time: when, Factor: 1}
	if sd.Origin == nil || sd.Origin.Value == nil {
		return nil, fieldErr(f+".origin", "missing")
	}
	w.Origin = *sd.Origin.Value
	if !(sd.Period > 0) || math.IsInf(sd.Period, 0) {
		return nil, fieldErr(f+".period", "%v, want milliseconds above 0", sd.Period)
	}
	w.Period = sd.Period
	if sd.Factor != nil {
		if *sd.Factor == 0 || math.IsNaN(*sd.Factor) || math.IsInf(*sd.Factor, 0) {
			return nil, fieldErr(f+".factor", "must be a finite non-zero number")
		}
		w.Factor = *sd.Factor
	}
	if sd.Dimensions != 1 {
		return nil, fieldErr(f+".dimensions", "%d, want 1", sd.Dimensions)
	}
	fields := strings.Fields(sd.Data)
	if len(fields) == 0 {
		return nil, fieldErr(f+".data", "no samples")
	}
	if len(fields) > maxSamples {
		return nil, fieldErr(f+".data", "%d samples, at most %d per chunk", len(fields), maxSamples)
	}
	w.Data = make([]float64, len(fields))
	for i, s := range fields {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fieldErr(f+".data", "sample %d (%q) is not a finite number", i, s)
		}
		w.Data[i] = v
	}
	return w, nil
}
