package alert

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/vitals"
)

// Threshold is a physician's alert limits for one measurement of one
// patient: an alert when the value goes below Low or above High (either
// may be nil), raised once the breach persists, and cleared once the
// value is back inside by Margin for as long.
type Threshold struct {
	Code    string   // LOINC, numeric
	Low     *float64 // alert below this, in the code's stored unit
	High    *float64 // alert above this
	Margin  float64  // deadband: how far back inside a value must be to clear; 0 takes the code's default
	Persist Persistence
}

// defaults by code: the deadband, and how long a breach must hold.
// Continuous measurements (about once a second) need five readings over
// five seconds, so a spike does not alert; spot measurements (a cuff, a
// thermometer) are each a deliberate reading and count at once.
var defaults = map[string]struct {
	margin  float64
	persist Persistence
}{
	vitals.CodeHeartRate:   {5, continuous},
	vitals.CodeSpO2:        {2, continuous},
	vitals.CodeRespRate:    {2, continuous},
	vitals.CodeSystolic:    {5, spot},
	vitals.CodeDiastolic:   {5, spot},
	vitals.CodeTemperature: {0.3, spot},
	vitals.CodeWeight:      {0.5, spot},
	vitals.CodeGlucoseMass: {10, spot},
	vitals.CodeGlucoseMol:  {0.5, spot},
}

var (
	continuous = Persistence{Readings: 5, For: 5 * time.Second}
	spot       = Persistence{Readings: 1}
)

// DefaultPersistence is how long a breach of code must hold by default:
// 5 readings over 5 s for heart rate, SpO2 and respiratory rate, one
// reading for the spot measurements.
func DefaultPersistence(code string) Persistence {
	if d, ok := defaults[vitals.Canonical(code)]; ok {
		return d.persist
	}
	return continuous
}

// DefaultMargin is code's default deadband, in its stored unit: 5 /min for
// heart rate, 2 % for SpO2, 2 /min for respiratory rate, 5 mm[Hg] for
// blood pressure, 0.3 Cel for temperature.
func DefaultMargin(code string) float64 { return defaults[vitals.Canonical(code)].margin }

// Normalize checks t and returns it with the code made canonical and
// defaults filled in. Its errors name the field at fault.
func (t Threshold) Normalize() (Threshold, error) {
	t.Code = vitals.Canonical(t.Code)
	unit, ok := vitals.Unit(t.Code)
	if !ok {
		return t, fmt.Errorf("code: %q is not a numeric measurement Bedside keeps", t.Code)
	}
	if t.Low == nil && t.High == nil {
		return t, errors.New("low, high: set at least one")
	}
	for _, l := range []struct {
		field string
		v     *float64
	}{{"low", t.Low}, {"high", t.High}} {
		if l.v != nil && !vitals.Plausible(t.Code, *l.v) {
			return t, fmt.Errorf("%s: %s %s is not a possible %s", l.field, num(*l.v), unit, vitals.Name(t.Code))
		}
	}
	if t.Margin == 0 {
		t.Margin = DefaultMargin(t.Code)
	}
	if t.Margin < 0 || math.IsNaN(t.Margin) || math.IsInf(t.Margin, 0) {
		return t, fmt.Errorf("margin: %s, want a finite number from 0 up", num(t.Margin))
	}
	if t.Low != nil && t.High != nil {
		if *t.Low >= *t.High {
			return t, fmt.Errorf("low: %s is not below high %s", num(*t.Low), num(*t.High))
		}
		if 2*t.Margin >= *t.High-*t.Low {
			return t, fmt.Errorf("margin: %s %s leaves nothing between the low and high limits' deadbands", num(t.Margin), unit)
		}
	}
	if t.Persist == (Persistence{}) {
		t.Persist = DefaultPersistence(t.Code)
	}
	switch {
	case t.Persist.Readings < 0 || t.Persist.Readings > 3600:
		return t, fmt.Errorf("readings: %d, want 1 to 3600 consecutive readings", t.Persist.Readings)
	case t.Persist.For < 0 || t.Persist.For > time.Hour:
		return t, fmt.Errorf("for: %s, want 0 to 1h", t.Persist.For)
	}
	return t, nil
}

// Title says what a direction's limit is, in words: "Heart rate above
// 120 /min".
func (t Threshold) Title(direction string) string {
	limit, word := t.High, "above"
	if direction == "low" {
		limit, word = t.Low, "below"
	}
	if limit == nil {
		return ""
	}
	unit, _ := vitals.Unit(t.Code)
	name := vitals.Name(t.Code)
	if name != "" && name != "SpO2" {
		name = strings.ToUpper(name[:1]) + name[1:]
	}
	return name + " " + word + " " + num(*limit) + " " + displayUnit(unit)
}

func displayUnit(ucum string) string {
	switch ucum {
	case "mm[Hg]":
		return "mmHg"
	case "Cel":
		return "°C"
	}
	return ucum
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// Watch evaluates one normalized threshold against its code's readings.
type Watch struct {
	Threshold
	low, high Hysteresis
}

// NewWatch watches t, which must be normalized.
func NewWatch(t Threshold) *Watch {
	return &Watch{Threshold: t, low: Hysteresis{Persist: t.Persist}, high: Hysteresis{Persist: t.Persist}}
}

// Observe feeds one reading of the threshold's code, taken at at, and says
// what it did to the low and the high condition. The caller leaves out
// doubtful readings.
func (w *Watch) Observe(at time.Time, v float64) (low, high Transition) {
	if w.Low != nil {
		low = w.low.Update(at, v < *w.Low, v >= *w.Low+w.Margin)
	}
	if w.High != nil {
		high = w.high.Update(at, v > *w.High, v <= *w.High-w.Margin)
	}
	return low, high
}

// Active reports whether the direction's ("low" or "high") condition is
// raised.
func (w *Watch) Active(direction string) bool {
	if direction == "low" {
		return w.low.Active()
	}
	return w.high.Active()
}
