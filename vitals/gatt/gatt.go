// Package gatt parses the values of the Bluetooth GATT health
// characteristics (Heart Rate, Pulse Oximeter, Blood Pressure, Health
// Thermometer, Weight Scale and Glucose profiles) into measurements with
// LOINC codes and UCUM units. It knows nothing of transport: browsers
// (Web Bluetooth) and device hubs relay the raw bytes and the server
// parses them here, so one tested and fuzzed implementation serves all.
//
// What a device reports about a measurement (motion, poor contact, a
// loose cuff, a clock not set) is kept as Problems beside the values,
// never as a reason to drop them.
package gatt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Characteristic UUIDs (16-bit, Bluetooth assigned numbers) Parse reads.
const (
	HeartRateMeasurement     uint16 = 0x2A37
	PLXSpotCheck             uint16 = 0x2A5E
	PLXContinuous            uint16 = 0x2A5F
	BloodPressureMeasurement uint16 = 0x2A35
	TemperatureMeasurement   uint16 = 0x2A1C
	WeightMeasurement        uint16 = 0x2A9D
	GlucoseMeasurement       uint16 = 0x2A18
)

// LOINC codes and UCUM units of the values Parse yields.
const (
	CodeHeartRate   = "8867-4"  // /min
	CodeSpO2        = "59408-5" // %
	CodeSystolic    = "8480-6"  // mm[Hg]
	CodeDiastolic   = "8462-4"  // mm[Hg]
	CodeTemperature = "8310-5"  // Cel or [degF]
	CodeWeight      = "29463-7" // kg
	CodeGlucoseMass = "2339-0"  // mg/dL
	CodeGlucoseMol  = "15074-8" // mmol/L
)

// Value is one measured number.
type Value struct {
	Code string // LOINC
	V    float64
	Unit string // UCUM
}

// Contact is a heart-rate sensor's skin contact, when it can tell.
type Contact int

const (
	ContactUnknown Contact = iota // the sensor does not report contact
	ContactPoor                   // supported, and not in contact
	ContactGood                   // supported, and in contact
)

// Measurement is what one characteristic value holds.
type Measurement struct {
	Values []Value
	// Stamp is the device's own clock reading, in its local time with no
	// zone; nil when the value carries none.
	Stamp *Stamp
	// Problems are what the device reported about this measurement, in
	// words a clinician reads ("body movement during measurement").
	Problems []string
	// Heart rate only: skin contact, RR intervals and energy expended
	// (kJ since the device was reset; -1 when not sent).
	Contact Contact
	RR      []time.Duration
	Energy  int
	// Context (a thermometer's body site, a glucose sample's type and
	// location), "" when not sent.
	Site string
}

// Stamp is a GATT Date Time: a wall-clock reading with no zone. Zero
// fields are ones the device does not know.
type Stamp struct {
	Year                       int
	Month, Day, Hour, Min, Sec int
}

// In is the stamp as an instant in loc; false when the device does not
// know the date.
func (s Stamp) In(loc *time.Location) (time.Time, bool) {
	if s.Year == 0 || s.Month == 0 || s.Day == 0 {
		return time.Time{}, false
	}
	return time.Date(s.Year, time.Month(s.Month), s.Day, s.Hour, s.Min, s.Sec, 0, loc), true
}

// ErrUnknown is returned for a characteristic Parse does not read.
var ErrUnknown = errors.New("not a characteristic Bedside reads")

// Parse reads one value of characteristic. An error names what is wrong
// (too short, a field with a special value where a number is needed, a
// date that cannot be); a value with nothing measured in it is an error.
func Parse(characteristic uint16, b []byte) (Measurement, error) {
	r := &reader{b: b}
	var m Measurement
	var err error
	switch characteristic {
	case HeartRateMeasurement:
		m, err = heartRate(r)
	case PLXSpotCheck:
		m, err = plxSpotCheck(r)
	case PLXContinuous:
		m, err = plxContinuous(r)
	case BloodPressureMeasurement:
		m, err = bloodPressure(r)
	case TemperatureMeasurement:
		m, err = temperature(r)
	case WeightMeasurement:
		m, err = weight(r)
	case GlucoseMeasurement:
		m, err = glucose(r)
	default:
		return m, fmt.Errorf("characteristic 0x%04X: %w", characteristic, ErrUnknown)
	}
	if err == nil && r.err != nil {
		err = r.err
	}
	if err != nil {
		return Measurement{}, fmt.Errorf("%s: %w", Name(characteristic), err)
	}
	if len(m.Values) == 0 {
		return Measurement{}, fmt.Errorf("%s: no value measured", Name(characteristic))
	}
	return m, nil
}

// Name is a characteristic's name as the Bluetooth specifications give it.
func Name(characteristic uint16) string {
	switch characteristic {
	case HeartRateMeasurement:
		return "Heart Rate Measurement"
	case PLXSpotCheck:
		return "PLX Spot-check Measurement"
	case PLXContinuous:
		return "PLX Continuous Measurement"
	case BloodPressureMeasurement:
		return "Blood Pressure Measurement"
	case TemperatureMeasurement:
		return "Temperature Measurement"
	case WeightMeasurement:
		return "Weight Measurement"
	case GlucoseMeasurement:
		return "Glucose Measurement"
	}
	return fmt.Sprintf("characteristic 0x%04X", characteristic)
}

// reader takes little-endian fields off a value; the first short read
// sets err, naming the field, and every later read gives zero.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int, field string) []byte {
	if r.err != nil {
		return make([]byte, n)
	}
	if len(r.b) < n {
		r.err = fmt.Errorf("too short: %s needs %d bytes, %d left", field, n, len(r.b))
		return make([]byte, n)
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8(field string) uint8   { return r.take(1, field)[0] }
func (r *reader) u16(field string) uint16 { return binary.LittleEndian.Uint16(r.take(2, field)) }
func (r *reader) u24(field string) uint32 {
	b := r.take(3, field)
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
}
func (r *reader) u32(field string) uint32 { return binary.LittleEndian.Uint32(r.take(4, field)) }

// sfloat is a decoded SFLOAT field: its value, or which special value.
type sfloat struct {
	v float64
	s Special
}

func (r *reader) sfloat(field string) sfloat {
	v, s := SFloat(r.u16(field))
	return sfloat{v, s}
}

// stamp reads a 7-byte Date Time (year, month, day, hours, minutes,
// seconds), refusing one that no calendar has.
func (r *reader) stamp(field string) *Stamp {
	b := r.take(7, field)
	if r.err != nil {
		return nil
	}
	s := &Stamp{Year: int(binary.LittleEndian.Uint16(b)), Month: int(b[2]), Day: int(b[3]), Hour: int(b[4]), Min: int(b[5]), Sec: int(b[6])}
	switch {
	case s.Year != 0 && (s.Year < 1582 || s.Year > 9999), s.Month > 12, s.Day > 31, s.Hour > 23, s.Min > 59, s.Sec > 59:
		r.err = fmt.Errorf("%s %04d-%02d-%02d %02d:%02d:%02d is not a date and time", field, s.Year, s.Month, s.Day, s.Hour, s.Min, s.Sec)
		return nil
	}
	if s.Year != 0 && s.Month != 0 && s.Day != 0 {
		if t, _ := s.In(time.UTC); t.Day() != s.Day {
			r.err = fmt.Errorf("%s %04d-%02d-%02d is not a date", field, s.Year, s.Month, s.Day)
			return nil
		}
	}
	return s
}

// bits lists the words of each set bit of v, in bit order.
func bits(v uint32, words map[uint]string) []string {
	var out []string
	for i := uint(0); i < 32; i++ {
		if v&(1<<i) != 0 {
			if w, ok := words[i]; ok {
				out = append(out, w)
			}
		}
	}
	return out
}

// round keeps a converted value to the digits the device measured.
func round(v float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}
