package gatt

import (
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSFloat(t *testing.T) {
	for _, c := range []struct {
		raw  uint16
		want float64
		s    Special
	}{
		{0x0078, 120, Number},
		{0xF3DB, 98.7, Number},    // 987e-1
		{0x0FFF, -1, Number},      // the mantissa is signed
		{0x2FFF, -100, Number},    // -1e2
		{0xB05F, 0.00095, Number}, // 95e-5
		{0x7001, 1e7, Number},     // the largest exponent
		{0x8001, 1e-8, Number},    // the smallest
		{0x0000, 0, Number},
		{0x07FF, math.NaN(), NaN},
		{0x0800, math.NaN(), NRes},
		{0x07FE, math.Inf(1), PosInf},
		{0x0802, math.Inf(-1), NegInf},
		{0x0801, math.NaN(), Reserved},
	} {
		got, s := SFloat(c.raw)
		if s != c.s || !same(got, c.want) {
			t.Errorf("SFloat(0x%04X) = %v, %v; want %v, %v", c.raw, got, s, c.want, c.s)
		}
	}
}

func TestFloat(t *testing.T) {
	for _, c := range []struct {
		raw  uint32
		want float64
		s    Special
	}{
		{0xFF00016E, 36.6, Number}, // 366e-1
		{0x00FFFFFB, -5, Number},
		{0xFE000E4F, 36.63, Number}, // 3663e-2
		{0x007FFFFF, math.NaN(), NaN},
		{0x00800000, math.NaN(), NRes},
		{0x007FFFFE, math.Inf(1), PosInf},
		{0x00800002, math.Inf(-1), NegInf},
		{0x00800001, math.NaN(), Reserved},
	} {
		got, s := Float(c.raw)
		if s != c.s || !same(got, c.want) {
			t.Errorf("Float(0x%08X) = %v, %v; want %v, %v", c.raw, got, s, c.want, c.s)
		}
	}
}

func same(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

func stamp(y, mo, d, h, mi, s int) *Stamp { return &Stamp{y, mo, d, h, mi, s} }

// parseCases are byte vectors of each characteristic, laid out as the
// Bluetooth service specifications give them (little-endian).
var parseCases = []struct {
	name string
	ch   uint16
	hex  string
	want Measurement
}{
	{"heart rate, uint8", HeartRateMeasurement, "00 48",
		Measurement{Values: []Value{{CodeHeartRate, 72, "/min"}}, Energy: -1}},
	{"heart rate, uint16, contact, energy, RR", HeartRateMeasurement, "1F A0 00 23 01 00 04 00 02",
		Measurement{Values: []Value{{CodeHeartRate, 160, "/min"}}, Contact: ContactGood, Energy: 291,
			RR: []time.Duration{time.Second, 500 * time.Millisecond}}},
	{"heart rate, sensor not in contact", HeartRateMeasurement, "04 50",
		Measurement{Values: []Value{{CodeHeartRate, 80, "/min"}}, Contact: ContactPoor, Energy: -1, Problems: []string{"poor skin contact"}}},
	{"PLX spot-check", PLXSpotCheck, "00 61 00 48 00",
		Measurement{Values: []Value{{CodeSpO2, 97, "%"}, {CodeHeartRate, 72, "/min"}}}},
	{"PLX spot-check, every field", PLXSpotCheck, "1F 61 00 48 00 EA 07 0C 04 0A 1E 00 00 40 20 20 00 50 00",
		Measurement{Values: []Value{{CodeSpO2, 97, "%"}, {CodeHeartRate, 72, "/min"}}, Stamp: stamp(2026, 12, 4, 10, 30, 0),
			Problems: []string{"questionable measurement", "low perfusion", "sensor displaced", "device clock not set"}}},
	{"PLX spot-check, no SpO2 yet", PLXSpotCheck, "00 FF 07 48 00",
		Measurement{Values: []Value{{CodeHeartRate, 72, "/min"}}}},
	{"PLX continuous, fast, slow, status", PLXContinuous, "07 62 00 4B 00 60 00 4A 00 61 00 4B 00 20 00",
		Measurement{Values: []Value{{CodeSpO2, 98, "%"}, {CodeHeartRate, 75, "/min"}}, Problems: []string{"measurement ongoing"}}},
	{"PLX continuous, sensor off the finger", PLXContinuous, "08 62 00 4B 00 00 88 00",
		Measurement{Values: []Value{{CodeSpO2, 98, "%"}, {CodeHeartRate, 75, "/min"}}, Problems: []string{"sensor not on the patient", "sensor disconnected"}}},
	{"blood pressure, mmHg, every field", BloodPressureMeasurement, "1E 79 00 51 00 5F 00 EA 07 0C 04 09 00 00 48 00 01 03 00",
		Measurement{Values: []Value{{CodeSystolic, 121, "mm[Hg]"}, {CodeDiastolic, 81, "mm[Hg]"}, {CodeHeartRate, 72, "/min"}},
			Stamp: stamp(2026, 12, 4, 9, 0, 0), Problems: []string{"body movement during measurement", "cuff too loose"}}},
	{"blood pressure, kPa", BloodPressureMeasurement, "01 A0 F0 6B F0 00 00",
		Measurement{Values: []Value{{CodeSystolic, 120, "mm[Hg]"}, {CodeDiastolic, 80.3, "mm[Hg]"}}}},
	{"blood pressure, pulse above range", BloodPressureMeasurement, "10 79 00 51 00 5F 00 08 00",
		Measurement{Values: []Value{{CodeSystolic, 121, "mm[Hg]"}, {CodeDiastolic, 81, "mm[Hg]"}},
			Problems: []string{"pulse rate above the device's upper limit"}}},
	{"temperature, Celsius, stamp, mouth", TemperatureMeasurement, "06 6E 01 00 FF EA 07 0C 04 0A 00 00 06",
		Measurement{Values: []Value{{CodeTemperature, 36.6, "Cel"}}, Stamp: stamp(2026, 12, 4, 10, 0, 0), Site: "mouth"}},
	{"temperature, Fahrenheit", TemperatureMeasurement, "01 DB 03 00 FF",
		Measurement{Values: []Value{{CodeTemperature, 98.7, "[degF]"}}}},
	{"weight, kg", WeightMeasurement, "00 B0 36",
		Measurement{Values: []Value{{CodeWeight, 70, "kg"}}}},
	{"weight, lb", WeightMeasurement, "01 48 3C",
		Measurement{Values: []Value{{CodeWeight, 69.998, "kg"}}}},
	{"weight, stamp, user, BMI and height", WeightMeasurement, "0E B0 36 EA 07 0C 04 07 00 00 01 F2 00 9E 06",
		Measurement{Values: []Value{{CodeWeight, 70, "kg"}}, Stamp: stamp(2026, 12, 4, 7, 0, 0)}},
	{"glucose, kg/L, offset", GlucoseMeasurement, "03 01 00 EA 07 0C 04 08 00 00 0F 00 5F B0 11",
		Measurement{Values: []Value{{CodeGlucoseMass, 95, "mg/dL"}}, Stamp: stamp(2026, 12, 4, 8, 15, 0), Site: "capillary whole blood, finger"}},
	{"glucose, mol/L", GlucoseMeasurement, "06 01 00 EA 07 0C 04 08 00 00 35 C0 11",
		Measurement{Values: []Value{{CodeGlucoseMol, 5.3, "mmol/L"}}, Stamp: stamp(2026, 12, 4, 8, 0, 0), Site: "capillary whole blood, finger"}},
	{"glucose, status", GlucoseMeasurement, "0A 02 00 EA 07 0C 04 08 00 00 5F B0 11 20 00",
		Measurement{Values: []Value{{CodeGlucoseMass, 95, "mg/dL"}}, Stamp: stamp(2026, 12, 4, 8, 0, 0), Site: "capillary whole blood, finger",
			Problems: []string{"result higher than the device can process"}}},
	{"glucose, offset across midnight", GlucoseMeasurement, "03 01 00 EA 07 0C 04 17 32 00 14 00 5F B0 11",
		Measurement{Values: []Value{{CodeGlucoseMass, 95, "mg/dL"}}, Stamp: stamp(2026, 12, 5, 0, 10, 0), Site: "capillary whole blood, finger"}},
}

// TestParse reads the byte vectors of parseCases.
func TestParse(t *testing.T) {
	for _, c := range parseCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse(c.ch, bytesOf(t, c.hex))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("Parse(%s, %s)\n got %+v\nwant %+v", Name(c.ch), c.hex, got, c.want)
			}
		})
	}
}

// TestParseRefuses: every value that cannot be read is an error that says
// what is wrong, and yields no measurement.
func TestParseRefuses(t *testing.T) {
	for _, c := range []struct {
		name, hex, want string
		ch              uint16
	}{
		{"empty", "", "flags needs 1 bytes, 0 left", HeartRateMeasurement},
		{"uint16 rate cut short", "01 48", "heart rate (uint16) needs 2 bytes, 1 left", HeartRateMeasurement},
		{"odd RR bytes", "10 48 00", "RR interval", HeartRateMeasurement},
		{"RR flagged, none sent", "10 48", "RR interval", HeartRateMeasurement},
		{"PLX without pulse rate", "00 61 00", "pulse rate needs 2 bytes", PLXSpotCheck},
		{"PLX with nothing measured", "00 FF 07 FF 07", "SpO2 is NaN (no value) and pulse rate is NaN (no value)", PLXSpotCheck},
		{"PLX timestamp cut short", "01 61 00 48 00 EA 07 0C", "timestamp needs 7 bytes", PLXSpotCheck},
		{"PLX continuous status cut short", "08 62 00 4B 00 00 88", "device and sensor status needs 3 bytes", PLXContinuous},
		{"systolic not a number", "00 FF 07 51 00 5F 00", "systolic is NaN (no value)", BloodPressureMeasurement},
		{"diastolic above range", "00 79 00 FE 07 5F 00", "diastolic is +INF (above range)", BloodPressureMeasurement},
		{"month 13", "02 79 00 51 00 5F 00 EA 07 0D 04 09 00 00", "is not a date and time", BloodPressureMeasurement},
		{"30 February", "02 79 00 51 00 5F 00 EA 07 02 1E 09 00 00", "is not a date", BloodPressureMeasurement},
		{"temperature NRes", "00 00 00 80 00", "temperature is NRes", TemperatureMeasurement},
		{"temperature type 0", "04 6E 01 00 FF 00", "temperature type 0", TemperatureMeasurement},
		{"weight unsuccessful", "00 FF FF", "did not succeed", WeightMeasurement},
		{"weight cut short", "08 B0 36 F2 00", "height needs 2 bytes", WeightMeasurement},
		{"glucose without concentration", "00 01 00 EA 07 0C 04 08 00 00", "concentration is not present", GlucoseMeasurement},
		{"glucose concentration NaN", "02 01 00 EA 07 0C 04 08 00 00 FF 07 11", "glucose concentration is NaN", GlucoseMeasurement},
		{"glucose without base time", "02 01 00 EA 07", "base time needs 7 bytes", GlucoseMeasurement},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := Parse(c.ch, bytesOf(t, c.hex))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse(%s, %s) = %+v, %v; want an error saying %q", Name(c.ch), c.hex, m, err, c.want)
			}
			if !strings.HasPrefix(err.Error(), Name(c.ch)+": ") {
				t.Errorf("error %q does not name the characteristic", err)
			}
			if len(m.Values) != 0 {
				t.Errorf("a refused value still gave %+v", m.Values)
			}
		})
	}
	if _, err := Parse(0x2A19, []byte{100}); !errors.Is(err, ErrUnknown) {
		t.Errorf("battery level: %v, want ErrUnknown", err)
	}
}

func TestStampIn(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	got, ok := stamp(2026, 3, 8, 13, 0, 0).In(ny)
	if !ok || !got.Equal(time.Date(2026, 3, 8, 17, 0, 0, 0, time.UTC)) {
		t.Errorf("13:00 in New York on the day clocks go forward = %v, %v; want 17:00 UTC", got, ok)
	}
	if _, ok := stamp(0, 12, 4, 10, 0, 0).In(time.UTC); ok {
		t.Error("a stamp with an unknown year gave an instant")
	}
}

func bytesOf(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
