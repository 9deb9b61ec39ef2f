package gatt

import (
	"fmt"
	"time"
)

// heartRate reads Heart Rate Measurement (0x2A37, Heart Rate Service 1.0,
// 3.1): flags, the rate as uint8 or uint16, then energy expended and RR
// intervals (1/1024 s) when flagged.
func heartRate(r *reader) (Measurement, error) {
	flags := r.u8("flags")
	m := Measurement{Energy: -1}
	var rate int
	if flags&0x01 != 0 {
		rate = int(r.u16("heart rate (uint16)"))
	} else {
		rate = int(r.u8("heart rate (uint8)"))
	}
	switch flags >> 1 & 0x03 {
	case 2:
		m.Contact = ContactPoor
		m.Problems = append(m.Problems, "poor skin contact")
	case 3:
		m.Contact = ContactGood
	}
	if flags&0x08 != 0 {
		m.Energy = int(r.u16("energy expended"))
	}
	if flags&0x10 != 0 {
		if len(r.b) == 0 || len(r.b)%2 != 0 {
			r.take(2, "RR interval")
		}
		for r.err == nil && len(r.b) >= 2 {
			m.RR = append(m.RR, time.Duration(r.u16("RR interval"))*time.Second/1024)
		}
	}
	if r.err != nil {
		return m, r.err
	}
	m.Values = []Value{{CodeHeartRate, float64(rate), "/min"}}
	return m, nil
}

// Words for the PLX Measurement Status and Device and Sensor Status bits
// (Pulse Oximeter Service 1.0, 3.1.1.3 and 3.1.1.4) that say a reading
// may be wrong.
var (
	plxMeasurementStatus = map[uint]string{
		5: "measurement ongoing", 6: "early estimate", 9: "from the device's memory",
		10: "demonstration data", 11: "test data", 12: "calibration ongoing", 13: "measurement unavailable",
		14: "questionable measurement", 15: "invalid measurement",
	}
	plxSensorStatus = map[uint]string{
		1: "equipment malfunction", 2: "signal processing irregularity", 3: "inadequate signal",
		4: "poor signal", 5: "low perfusion", 6: "erratic signal", 7: "nonpulsatile signal",
		8: "questionable pulse", 10: "sensor interference", 11: "sensor not on the patient",
		12: "unknown sensor", 13: "sensor displaced", 14: "sensor malfunction", 15: "sensor disconnected",
	}
)

// plxSpotCheck reads PLX Spot-check Measurement (0x2A5E): flags, SpO2 and
// pulse rate (SFLOAT), then timestamp, measurement status, device and
// sensor status and pulse amplitude index when flagged.
func plxSpotCheck(r *reader) (Measurement, error) {
	flags := r.u8("flags")
	var m Measurement
	spo2, pr := r.sfloat("SpO2"), r.sfloat("pulse rate")
	if flags&0x01 != 0 {
		m.Stamp = r.stamp("timestamp")
	}
	plxStatus(r, &m, flags&0x02 != 0, flags&0x04 != 0)
	if flags&0x08 != 0 {
		r.u16("pulse amplitude index")
	}
	if flags&0x10 != 0 {
		m.Problems = append(m.Problems, "device clock not set")
	}
	return m, plxValues(r, &m, spo2, pr)
}

// plxContinuous reads PLX Continuous Measurement (0x2A5F): flags, SpO2
// and pulse rate (normal), the fast and slow pairs, measurement status,
// device and sensor status and pulse amplitude index when flagged. The
// normal pair is the reading; the others are other averagings of it.
func plxContinuous(r *reader) (Measurement, error) {
	flags := r.u8("flags")
	var m Measurement
	spo2, pr := r.sfloat("SpO2"), r.sfloat("pulse rate")
	if flags&0x01 != 0 {
		r.u16("SpO2 (fast)")
		r.u16("pulse rate (fast)")
	}
	if flags&0x02 != 0 {
		r.u16("SpO2 (slow)")
		r.u16("pulse rate (slow)")
	}
	plxStatus(r, &m, flags&0x04 != 0, flags&0x08 != 0)
	if flags&0x10 != 0 {
		r.u16("pulse amplitude index")
	}
	return m, plxValues(r, &m, spo2, pr)
}

func plxStatus(r *reader, m *Measurement, measurement, sensor bool) {
	if measurement {
		m.Problems = append(m.Problems, bits(uint32(r.u16("measurement status")), plxMeasurementStatus)...)
	}
	if sensor {
		m.Problems = append(m.Problems, bits(r.u24("device and sensor status"), plxSensorStatus)...)
	}
}

// plxValues keeps the SpO2 and pulse rate that are numbers; a special
// value means the oximeter has none (it is still finding a pulse).
func plxValues(r *reader, m *Measurement, spo2, pr sfloat) error {
	if r.err != nil {
		return r.err
	}
	if spo2.s == Number {
		m.Values = append(m.Values, Value{CodeSpO2, spo2.v, "%"})
	}
	if pr.s == Number {
		m.Values = append(m.Values, Value{CodeHeartRate, pr.v, "/min"})
	}
	if len(m.Values) == 0 {
		return fmt.Errorf("no value measured: SpO2 is %s and pulse rate is %s", spo2.s, pr.s)
	}
	return nil
}

// bloodPressure reads Blood Pressure Measurement (0x2A35, Blood Pressure
// Service 1.0, 3.1): flags, systolic, diastolic and mean arterial pressure
// (SFLOAT, mmHg or kPa), then timestamp, pulse rate, user ID and
// measurement status when flagged. Values are kept in mm[Hg]; the mean is
// derivable and not kept.
func bloodPressure(r *reader) (Measurement, error) {
	flags := r.u8("flags")
	var m Measurement
	sys, dia := r.sfloat("systolic"), r.sfloat("diastolic")
	r.u16("mean arterial pressure")
	if flags&0x02 != 0 {
		m.Stamp = r.stamp("timestamp")
	}
	pulse := sfloat{s: NaN}
	if flags&0x04 != 0 {
		pulse = r.sfloat("pulse rate")
	}
	if flags&0x08 != 0 {
		r.u8("user ID")
	}
	if flags&0x10 != 0 {
		status := r.u16("measurement status")
		m.Problems = append(m.Problems, bits(uint32(status), map[uint]string{
			0: "body movement during measurement", 1: "cuff too loose", 2: "irregular pulse",
			5: "improper measurement position"})...)
		switch status >> 3 & 0x03 {
		case 1:
			m.Problems = append(m.Problems, "pulse rate above the device's upper limit")
		case 2:
			m.Problems = append(m.Problems, "pulse rate below the device's lower limit")
		}
	}
	if r.err != nil {
		return m, r.err
	}
	for _, f := range []struct {
		name string
		f    sfloat
	}{{"systolic", sys}, {"diastolic", dia}} {
		if f.f.s != Number {
			return m, specialError(f.name, f.f.s)
		}
	}
	mmHg := func(v float64) float64 { return v }
	if flags&0x01 != 0 {
		mmHg = func(kPa float64) float64 { return round(kPa*760/101.325, 1) }
	}
	m.Values = []Value{{CodeSystolic, mmHg(sys.v), "mm[Hg]"}, {CodeDiastolic, mmHg(dia.v), "mm[Hg]"}}
	if pulse.s == Number {
		m.Values = append(m.Values, Value{CodeHeartRate, pulse.v, "/min"})
	}
	return m, nil
}

// temperatureSites are the Temperature Type values (Health Thermometer
// Service 1.0, 3.2).
var temperatureSites = map[uint8]string{1: "armpit", 2: "body", 3: "ear", 4: "finger", 5: "gastrointestinal tract",
	6: "mouth", 7: "rectum", 8: "toe", 9: "tympanum"}

// temperature reads Temperature Measurement (0x2A1C, Health Thermometer
// Service 1.0, 3.1): flags, the temperature (FLOAT, Celsius or
// Fahrenheit), then timestamp and temperature type when flagged.
func temperature(r *reader) (Measurement, error) {
	flags := r.u8("flags")
	var m Measurement
	v, s := Float(r.u32("temperature"))
	if flags&0x02 != 0 {
		m.Stamp = r.stamp("timestamp")
	}
	if flags&0x04 != 0 {
		t := r.u8("temperature type")
		if site, ok := temperatureSites[t]; ok {
			m.Site = site
		} else if r.err == nil {
			return m, fmt.Errorf("temperature type %d is not one the specification defines (1 to 9)", t)
		}
	}
	if r.err != nil {
		return m, r.err
	}
	if s != Number {
		return m, specialError("temperature", s)
	}
	unit := "Cel"
	if flags&0x01 != 0 {
		unit = "[degF]"
	}
	m.Values = []Value{{CodeTemperature, v, unit}}
	return m, nil
}

// weight reads Weight Measurement (0x2A9D, Weight Scale Service 1.0,
// 3.2): flags, the weight (uint16: 0.005 kg, or 0.01 lb), then timestamp,
// user ID and BMI with height when flagged. Weight is kept in kg; 0xFFFF
// means the measurement did not succeed.
func weight(r *reader) (Measurement, error) {
	flags := r.u8("flags")
	var m Measurement
	raw := r.u16("weight")
	if flags&0x02 != 0 {
		m.Stamp = r.stamp("timestamp")
	}
	if flags&0x04 != 0 {
		r.u8("user ID")
	}
	if flags&0x08 != 0 {
		r.u16("BMI")
		r.u16("height")
	}
	if r.err != nil {
		return m, r.err
	}
	if raw == 0xFFFF {
		return m, fmt.Errorf("the scale reports the measurement did not succeed")
	}
	kg := float64(raw) * 0.005
	if flags&0x01 != 0 {
		kg = float64(raw) * 0.01 * 0.45359237
	}
	m.Values = []Value{{CodeWeight, round(kg, 3), "kg"}}
	return m, nil
}

// Glucose sample types and locations (Glucose Service 1.0, 3.106).
var (
	glucoseTypes = map[uint8]string{1: "capillary whole blood", 2: "capillary plasma", 3: "venous whole blood",
		4: "venous plasma", 5: "arterial whole blood", 6: "arterial plasma", 7: "undetermined whole blood",
		8: "undetermined plasma", 9: "interstitial fluid", 10: "control solution"}
	glucoseLocations = map[uint8]string{1: "finger", 2: "alternate site test", 3: "earlobe", 4: "control solution",
		15: "location not available"}
	glucoseStatus = map[uint]string{0: "device battery low", 1: "sensor malfunction", 2: "sample size insufficient",
		3: "strip insertion error", 4: "strip type incorrect", 5: "result higher than the device can process",
		6: "result lower than the device can process", 7: "sensor temperature too high", 8: "sensor temperature too low",
		9: "sensor read interrupted", 10: "general device fault", 11: "time fault"}
)

// glucose reads Glucose Measurement (0x2A18, Glucose Service 1.0, 3.106):
// flags, sequence number, base time, then time offset (minutes), the
// concentration (SFLOAT, kg/L or mol/L) with type and sample location, and
// sensor status annunciation when flagged. Kept as mg/dL or mmol/L.
func glucose(r *reader) (Measurement, error) {
	flags := r.u8("flags")
	var m Measurement
	r.u16("sequence number")
	m.Stamp = r.stamp("base time")
	if flags&0x01 != 0 {
		offset := int16(r.u16("time offset"))
		if m.Stamp != nil {
			if t, ok := m.Stamp.In(time.UTC); ok {
				t = t.Add(time.Duration(offset) * time.Minute)
				m.Stamp = &Stamp{t.Year(), int(t.Month()), t.Day(), t.Hour(), t.Minute(), t.Second()}
			}
		}
	}
	conc := sfloat{s: NaN}
	if flags&0x02 != 0 {
		conc = r.sfloat("glucose concentration")
		tl := r.u8("type and sample location")
		m.Site = glucoseTypes[tl&0x0F]
		if loc := glucoseLocations[tl>>4]; loc != "" && m.Site != "" {
			m.Site += ", " + loc
		}
	}
	if flags&0x08 != 0 {
		m.Problems = append(m.Problems, bits(uint32(r.u16("sensor status annunciation")), glucoseStatus)...)
	}
	if r.err != nil {
		return m, r.err
	}
	if flags&0x02 == 0 {
		return m, fmt.Errorf("no value measured: the concentration is not present (flags 0x%02X)", flags)
	}
	if conc.s != Number {
		return m, specialError("glucose concentration", conc.s)
	}
	if flags&0x04 != 0 {
		m.Values = []Value{{CodeGlucoseMol, round(conc.v*1000, 2), "mmol/L"}} // mol/L to mmol/L
	} else {
		m.Values = []Value{{CodeGlucoseMass, round(conc.v*100000, 1), "mg/dL"}} // kg/L to mg/dL
	}
	return m, nil
}
