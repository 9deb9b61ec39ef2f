package vitals

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/internal/jsonscan"
)

// FieldError is a rejected input, naming the field at fault in JSON path
// form, such as "observation.valueQuantity.unit".
type FieldError struct {
	Field  string
	Reason string
}

// Error returns "field: reason".
func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// fieldErr is not inlined: each call would hold its formatting's room
// in the caller's frame, on the device reader's stack.
//
//go:noinline
func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Reading is one validated numeric measurement, in the catalogue's stored
// unit (a temperature sent in [degF] arrives here in Cel).
type Reading struct {
	Code  string // LOINC
	Value float64
	Unit  string // UCUM
	Time  time.Time
	// Flags are what the device reported about the measurement (motion,
	// a loose cuff, poor contact): the reading is kept, shown as doubtful.
	Flags []string
}

// Waveform is a validated chunk of samples (FHIR SampledData). The physical
// value of sample i is Origin + Factor*Data[i]; a sample sent as one of
// FHIR's codes E (error), L (below the detection limit) or U (above it) is
// NaN in Data.
type Waveform struct {
	Code       string  // MDC
	Origin     float64 // in OriginUnit
	OriginUnit string  // UCUM, "" if not sent
	Period     float64 // milliseconds between samples
	Factor     float64
	Dimensions int // always 1: one channel per observation
	Data       []float64
	Time       time.Time // time of the first sample
}

// Parsed is what one observation yields: numeric readings (two for a
// blood-pressure panel) or one waveform chunk.
type Parsed struct {
	Readings []Reading
	Waveform *Waveform
	Subject  string // subject.reference as sent, "" if absent
	// Event is a relayed device event (an envelope's "device"), which
	// yields no reading.
	Event *RelayedEvent
	// Source names the device a relay paired that measured the readings
	// (a relayed value's "device"); "" when they are the connection's
	// own device's.
	Source string
}

// origin is who the live messages of p name: the device that measured it,
// and the device that relayed it, if any. own is the connection's device.
func (p *Parsed) origin(own string) (device, relay string) {
	if p.Source != "" {
		return p.Source, own
	}
	return own, ""
}

// Envelope is one device message: a sequence number and one of a FHIR
// Observation, a relayed Bluetooth characteristic value, or a relayed
// device event.
type Envelope struct {
	Seq         int64
	Observation json.RawMessage
	GATT        json.RawMessage
	Device      json.RawMessage
}

// DecodeEnvelope reads {"seq": N, "observation": {...}}, N a whole number
// from 1 up. A frame that is not a JSON object yields an error that is not
// a *FieldError. A valid seq with a missing observation yields the Envelope
// with its Seq and a *FieldError, so the message can be rejected by number.
// The Envelope's members may share b's array.
func DecodeEnvelope(b []byte) (Envelope, error) {
	raw, ok := scanEnvelope(b)
	if !ok {
		var err error
		if raw, err = unmarshalEnvelope(b); err != nil {
			return Envelope{}, err
		}
	}
	return raw.envelope()
}

// rawEnvelope is an envelope's members as sent.
type rawEnvelope struct {
	Seq         json.RawMessage `json:"seq"`
	Observation json.RawMessage `json:"observation"`
	GATT        json.RawMessage `json:"gatt"`
	Device      json.RawMessage `json:"device"`
}

// unmarshalEnvelope reads an envelope's members with encoding/json: what
// scanEnvelope does, for every frame.
func unmarshalEnvelope(b []byte) (rawEnvelope, error) {
	var raw rawEnvelope
	if err := json.Unmarshal(b, &raw); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "" {
			return raw, fmt.Errorf("not a JSON envelope: the frame is %s, want an object", jsonValueKind(te.Value))
		}
		return raw, fmt.Errorf("not a JSON envelope: %v", err)
	}
	return raw, nil
}

// scanEnvelope reads the members of an envelope that is a valid JSON
// object whose member names are ASCII without escapes, as
// unmarshalEnvelope would (names matched regardless of case, the last of
// a name kept), in one check of the frame and one pass over its top
// level: json.Unmarshal checks the frame and then scans it again,
// observation included, which the observation's own decoding scans twice
// more. It reports false for any other frame, which unmarshalEnvelope
// reads (FuzzEnvelopeScan).
func scanEnvelope(b []byte) (raw rawEnvelope, ok bool) {
	if !jsonscan.Valid(b) {
		return raw, false
	}
	i := jsonscan.SkipSpace(b, 0)
	if b[i] != '{' {
		return raw, false
	}
	i = jsonscan.SkipSpace(b, i+1)
	if b[i] == '}' {
		return raw, true
	}
	for {
		// b is valid JSON: a member is a string, a colon and a value.
		name, plain, v := jsonscan.Key(b, i)
		if !plain {
			return raw, false
		}
		i = v
		end := jsonscan.SkipValue(b, i)
		var dst *json.RawMessage
		switch {
		case jsonscan.ASCIIEqualFold(name, "seq"):
			dst = &raw.Seq
		case jsonscan.ASCIIEqualFold(name, "observation"):
			dst = &raw.Observation
		case jsonscan.ASCIIEqualFold(name, "gatt"):
			dst = &raw.GATT
		case jsonscan.ASCIIEqualFold(name, "device"):
			dst = &raw.Device
		}
		if dst != nil {
			*dst = b[i:end:end]
		}
		i = jsonscan.SkipSpace(b, end)
		if b[i] == '}' {
			return raw, true
		}
		i = jsonscan.SkipSpace(b, i+1) // the comma
	}
}

// envelope checks the members read.
func (raw rawEnvelope) envelope() (Envelope, error) {
	if len(raw.Seq) == 0 {
		return Envelope{}, fieldErr("seq", "missing")
	}
	seq, err := strconv.ParseInt(string(raw.Seq), 10, 64)
	if err != nil || seq < 1 {
		return Envelope{}, fieldErr("seq", "%s is not a whole number from 1 up", truncate(string(raw.Seq), 40))
	}
	present := func(r json.RawMessage) bool { return len(r) > 0 && string(r) != "null" }
	hasObs, hasGATT, hasDev := present(raw.Observation), present(raw.GATT), present(raw.Device)
	switch {
	case hasObs && hasGATT:
		return Envelope{Seq: seq}, fieldErr("gatt", "an envelope carries an observation or a gatt value, not both")
	case hasDev && (hasObs || hasGATT):
		return Envelope{Seq: seq}, fieldErr("device", "an envelope carries a device event alone, without an observation or a gatt value")
	case hasGATT:
		return Envelope{Seq: seq, GATT: raw.GATT}, nil
	case hasDev:
		return Envelope{Seq: seq, Device: raw.Device}, nil
	case !hasObs:
		return Envelope{Seq: seq}, fieldErr("observation", "missing (or send a gatt value or a device event)")
	}
	return Envelope{Seq: seq, Observation: raw.Observation}, nil
}

type coding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

type codeableConcept struct {
	Coding []coding `json:"coding"`
}

type quantity struct {
	Value      *float64 `json:"value"`
	Comparator string   `json:"comparator"`
	Unit       string   `json:"unit"`
	System     string   `json:"system"`
	Code       string   `json:"code"`
}

type sampledData struct {
	Origin     *quantity `json:"origin"`
	Period     *float64  `json:"period"`
	Factor     *float64  `json:"factor"`
	Dimensions *int      `json:"dimensions"`
	Data       *string   `json:"data"`
}

type fhirReference struct {
	Reference string `json:"reference"`
}

type fhirObservation struct {
	ResourceType      string          `json:"resourceType"`
	Status            string          `json:"status"`
	Code              codeableConcept `json:"code"`
	Subject           *fhirReference  `json:"subject"`
	EffectiveDateTime *string         `json:"effectiveDateTime"`
	ValueQuantity     *quantity       `json:"valueQuantity"`
	ValueSampledData  *sampledData    `json:"valueSampledData"`
	Component         []struct {
		Code          codeableConcept `json:"code"`
		ValueQuantity *quantity       `json:"valueQuantity"`
	} `json:"component"`
	// effective is effectiveDateTime as scanObservation found it, in the
	// observation's bytes, instead of EffectiveDateTime.
	effective []byte
}

// maxSamples bounds one waveform chunk (16 s at 250 Hz).
const maxSamples = 4096

// ParseObservation validates one FHIR R4 Observation and returns its
// readings or waveform. Every error is a *FieldError naming the field.
func ParseObservation(raw json.RawMessage) (Parsed, error) {
	var p Parsed
	if err := parseObservation(raw, false, &p); err != nil {
		return Parsed{}, err
	}
	return p, nil
}

// parseObservation is ParseObservation into p, which must be empty but for
// an array lent for its Readings (Readings[:0] of it); valid
// says raw is known to be valid JSON (an envelope's observation, the
// envelope checked). After an error p means nothing.
func parseObservation(raw []byte, valid bool, p *Parsed) error {
	sc := obsScratchPool.Get().(*obsScratch)
	defer obsScratchPool.Put(sc)
	o := &sc.o
	if !(valid || jsonscan.Valid(raw)) || !scanObservation(raw, sc) {
		var err error
		if o, err = unmarshalObservationError(raw); err != nil {
			return err
		}
	}
	return o.parsed(p)
}

// unmarshalObservationError is unmarshalObservation, its error phrased.
//
//go:noinline
func unmarshalObservationError(raw []byte) (*fhirObservation, error) {
	o, err := unmarshalObservation(raw)
	if err != nil {
		return nil, decodeError("observation", err)
	}
	return &o, nil
}

// parsed validates a decoded Observation. The checks of a single
// measurement, what devices send most, run here; panels and waveforms, and
// the phrasing of errors, in functions of their own, so that a device
// reader's stack stays small (TestAcceptStack).
func (o *fhirObservation) parsed(p *Parsed) error {
	code, when, err := o.header()
	if err != nil {
		return err
	}
	if o.Subject != nil {
		p.Subject = o.Subject.Reference
	}
	switch {
	case IsWaveform(code):
		return o.waveform(p, code, when)
	case code == CodeBPPanel:
		return o.panel(p, when)
	case o.ValueQuantity == nil:
		return fieldErr("observation.valueQuantity", "missing: %s is a numeric measurement", code)
	}
	p.Readings = append(p.Readings[:0], Reading{})
	return quantityReading("observation.valueQuantity", code, o.ValueQuantity, &when, &p.Readings[0])
}

// header checks what every observation carries, and returns its code and
// time.
//
//go:noinline
func (o *fhirObservation) header() (code string, when time.Time, err error) {
	if o.ResourceType != "Observation" {
		return "", when, fieldErr("observation.resourceType", "%q, want \"Observation\"", truncate(o.ResourceType, 40))
	}
	switch o.Status {
	case "final", "amended", "corrected", "preliminary":
	case "":
		return "", when, fieldErr("observation.status", "missing")
	default:
		return "", when, fieldErr("observation.status", "%q, want final, amended, corrected or preliminary", truncate(o.Status, 40))
	}
	if code, err = observationCode("observation.code.coding", o.Code.Coding); err != nil {
		return "", when, err
	}
	if o.effective != nil {
		if when, ok := parseUTCDateTime(o.effective); ok {
			return code, when, checkYears("observation.effectiveDateTime", when)
		}
		s := string(o.effective)
		o.EffectiveDateTime = &s
	}
	if o.EffectiveDateTime == nil {
		return "", when, fieldErr("observation.effectiveDateTime", "missing")
	}
	if when, err = parseDateTime("observation.effectiveDateTime", *o.EffectiveDateTime); err != nil {
		return "", time.Time{}, err
	}
	return code, when, nil
}

// Times a reading may carry: those a FHIR dateTime, and so a live message
// and an exported Observation, can write in UTC (years 0001 to 9999). A
// time zone can carry a written 9999-12-31T23:30:00-01:00 past them.
var (
	firstWritable = time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC)
	pastWritable  = time.Date(10000, time.January, 1, 0, 0, 0, 0, time.UTC)
)

// checkYears refuses a time outside the years a FHIR dateTime writes in
// UTC, naming field.
func checkYears(field string, when time.Time) error {
	if when.Before(firstWritable) || !when.Before(pastWritable) {
		return fieldErr(field, "%s is outside the years 0001 to 9999 in UTC", when.Format(time.RFC3339))
	}
	return nil
}

// waveform is p with the observation's waveform chunk.
//
//go:noinline
func (o *fhirObservation) waveform(p *Parsed, code string, when time.Time) error {
	if o.ValueSampledData == nil {
		return fieldErr("observation.valueSampledData", "missing: %s is a waveform", code)
	}
	w, err := parseWaveform("observation.valueSampledData", code, o.ValueSampledData, when)
	if err != nil {
		return err
	}
	p.Waveform = w
	return nil
}

// panel is p with a blood-pressure panel's systolic and diastolic readings.
//
//go:noinline
func (o *fhirObservation) panel(p *Parsed, when time.Time) error {
	if len(o.Component) == 0 {
		return fieldErr("observation.component", "missing: a blood-pressure panel needs systolic (8480-6) and diastolic (8462-4) components")
	}
	var sys, dia *Reading
	var diaField string
	for i, c := range o.Component {
		field := fmt.Sprintf("observation.component[%d]", i)
		cc := componentCode(c.Code.Coding)
		if cc != CodeSystolic && cc != CodeDiastolic {
			continue // other components, such as mean pressure, are not kept
		}
		if (cc == CodeSystolic && sys != nil) || (cc == CodeDiastolic && dia != nil) {
			return fieldErr(field+".code", "%s appears twice", cc)
		}
		var r Reading
		if err := quantityReading(field+".valueQuantity", cc, c.ValueQuantity, &when, &r); err != nil {
			return err
		}
		if cc == CodeSystolic {
			sys = &r
		} else {
			dia, diaField = &r, field+".valueQuantity.value"
		}
	}
	if sys == nil || dia == nil {
		return fieldErr("observation.component", "a blood-pressure panel needs both systolic (8480-6) and diastolic (8462-4)")
	}
	p.Readings = append(p.Readings[:0], *sys, *dia)
	return checkPanel(p.Readings, diaField)
}

// observationCode returns the first accepted code among the codings: a
// LOINC numeric or panel code, or an MDC waveform code. A coding without a
// system is read as either.
func observationCode(field string, cs []coding) (string, error) {
	for _, c := range cs {
		_, numeric := catalogue[c.Code]
		numeric = numeric || c.Code == CodeBPPanel
		switch {
		case numeric && (c.System == SystemLOINC || c.System == ""):
			return c.Code, nil
		case IsWaveform(c.Code) && (c.System == SystemMDC || c.System == ""):
			return c.Code, nil
		}
	}
	for i, c := range cs {
		if c.Code != "" {
			return "", fieldErr(fmt.Sprintf("%s[%d].code", field, i), "%q (system %q) is not a measurement Bedside accepts", truncate(c.Code, 40), truncate(c.System, 60))
		}
	}
	return "", fieldErr(field, "missing: want a LOINC code (system %q) or an MDC waveform code (system %q)", SystemLOINC, SystemMDC)
}

// componentCode returns a blood-pressure component's LOINC code, or "".
func componentCode(cs []coding) string {
	for _, c := range cs {
		if (c.Code == CodeSystolic || c.Code == CodeDiastolic) && (c.System == SystemLOINC || c.System == "") {
			return c.Code
		}
	}
	return ""
}

func quantityReading(field, code string, q *quantity, when *time.Time, r *Reading) error {
	m := catalogue[code]
	switch {
	case q == nil:
		return fieldErr(field, "missing")
	case q.Value == nil:
		return fieldErr(field+".value", "missing")
	case math.IsNaN(*q.Value) || math.IsInf(*q.Value, 0):
		return fieldErr(field+".value", "not a finite number")
	case q.Comparator != "":
		return fieldErr(field+".comparator", "%q: only exact values are accepted", truncate(q.Comparator, 10))
	case q.System != "" && q.System != SystemUCUM:
		return fieldErr(field+".system", "%q, want %q", truncate(q.System, 60), SystemUCUM)
	}
	// code holds the computable UCUM unit; unit is display text, read only
	// when code is absent.
	unit, unitField := q.Code, ".code"
	if unit == "" {
		unit, unitField = q.Unit, ".unit"
	}
	if unit == "" {
		return unitError(field+".code", unit, code, m)
	}
	if m == nil {
		return unitError(field+unitField, unit, code, m)
	}
	if _, ok := m.convert(unit, *q.Value); !ok {
		return unitError(field+unitField, unit, code, m)
	}
	return checkedReading(field, ".value", code, *q.Value, unit, when, r)
}

// unitError refuses unit, "" if none was sent, for code; m is code's
// measure, nil if Bedside keeps none.
//
//go:noinline
func unitError(field, unit, code string, m *measure) error {
	if m == nil {
		m = &measure{}
	}
	if unit == "" {
		return fieldErr(field, "missing: want the UCUM unit %s", m.unitList())
	}
	return fieldErr(field, "%q is not the UCUM unit for %s (want %s)", truncate(unit, 40), code, m.unitList())
}

// checkedReading is sent (in unit) as a reading of code in its stored
// unit, refused if the catalogue does not keep code, does not take unit,
// or holds the value impossible, and flagged FlagImprobable if the value is
// outside the usual range.
//
// The field at fault is field+sub, put together only for an error.
func checkedReading(field, sub, code string, sent float64, unit string, when *time.Time, r *Reading) error {
	m := catalogue[code]
	if m == nil {
		return fieldErr(field+sub, "%s is not a measurement Bedside keeps", code)
	}
	v, ok := m.convert(unit, sent)
	if !ok {
		return unitError(field+sub, unit, code, m)
	}
	if !m.possible(v) {
		return impossibleError(field+sub, sent, unit, m)
	}
	*r = Reading{Code: code, Value: v, Unit: m.unit, Time: *when}
	if m.improbable(v) {
		r.Flags = []string{FlagImprobable}
	}
	return nil
}

//go:noinline
func impossibleError(field string, sent float64, unit string, m *measure) error {
	return fieldErr(field, "%s %s is impossible for %s (%s)", fmtNum(sent), unit, m.name, m.rangeText())
}

func parseWaveform(f, code string, sd *sampledData, when time.Time) (*Waveform, error) {
	w := &Waveform{Code: code, Time: when, Factor: 1, Dimensions: 1}
	if sd.Origin == nil || sd.Origin.Value == nil {
		return nil, fieldErr(f+".origin.value", "missing")
	}
	w.Origin = *sd.Origin.Value
	w.OriginUnit = sd.Origin.Code
	if w.OriginUnit == "" {
		w.OriginUnit = sd.Origin.Unit
	}
	if sd.Period == nil {
		return nil, fieldErr(f+".period", "missing: want the milliseconds between samples")
	}
	if p := *sd.Period; !(p > 0) || math.IsInf(p, 0) {
		return nil, fieldErr(f+".period", "%s, want milliseconds above 0", fmtNum(p))
	}
	w.Period = *sd.Period
	if sd.Factor != nil {
		if fa := *sd.Factor; fa == 0 || math.IsInf(fa, 0) {
			return nil, fieldErr(f+".factor", "%s, want a finite number other than 0", fmtNum(fa))
		}
		w.Factor = *sd.Factor
	}
	if sd.Dimensions == nil {
		return nil, fieldErr(f+".dimensions", "missing: want 1")
	}
	if *sd.Dimensions != 1 {
		return nil, fieldErr(f+".dimensions", "%d: only one channel per observation (1) is accepted", *sd.Dimensions)
	}
	if sd.Data == nil {
		return nil, fieldErr(f+".data", "missing")
	}
	w.Data = make([]float64, 0, min(strings.Count(*sd.Data, " ")+1, maxSamples))
	for i, s := range strings.Fields(*sd.Data) {
		if i == maxSamples {
			return nil, fieldErr(f+".data", "more than %d samples; send at most %d per chunk", maxSamples, maxSamples)
		}
		var v float64
		switch s {
		case "E", "L", "U":
			v = math.NaN()
		default:
			var err error
			v, err = strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || math.IsInf(w.Origin+w.Factor*v, 0) {
				return nil, fieldErr(f+".data", "sample %d (%q) is not a finite decimal or E, L or U", i, truncate(s, 30))
			}
		}
		w.Data = append(w.Data, v)
	}
	if len(w.Data) == 0 {
		return nil, fieldErr(f+".data", "no samples")
	}
	return w, nil
}

// decodeError names the field a JSON type mismatch is in, under root
// ("observation", "gatt").
func decodeError(root string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := root
		if te.Field != "" {
			field += "." + te.Field
		}
		if strings.HasPrefix(te.Value, "number") && te.Type.Kind() == reflect.Float64 {
			return fieldErr(field, "%s is not a finite number", truncate(te.Value, 40))
		}
		return fieldErr(field, "%s, want %s", jsonValueKind(te.Value), goTypeKind(te.Type))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fieldErr(root, "not valid JSON at byte %d: %v", se.Offset, err)
	}
	if root == "observation" {
		return fieldErr(root, "not a FHIR Observation: %v", err)
	}
	return fieldErr(root, "%v", err)
}

// jsonValueKind phrases an UnmarshalTypeError's Value: "a string".
func jsonValueKind(v string) string {
	switch {
	case strings.HasPrefix(v, "number"):
		return "a number"
	case v == "array", v == "object":
		return "an " + v
	case v == "string":
		return "a string"
	case v == "bool":
		return "true or false"
	}
	return v
}

// goTypeKind names the JSON kind a Go type is decoded from.
func goTypeKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "an array"
	case reflect.Struct:
		return "an object"
	}
	return t.Kind().String()
}

// truncate shortens untrusted text quoted in an error.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
