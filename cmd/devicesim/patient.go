package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// patient simulates a healthy adult at rest: heart rate with respiratory
// sinus variability and slow drift, SpO2 97-99, respiration 14-16, a steady
// temperature, and a blood pressure every few minutes.
type patient struct {
	rng     *rand.Rand
	start   time.Time
	lastBP  time.Time
	bpEvery time.Duration
	drift   float64
}

func newPatient(seed uint64, start time.Time) *patient {
	return &patient{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), start: start, bpEvery: 3 * time.Minute}
}

// observations returns the FHIR Observations measured at now.
func (p *patient) observations(now time.Time) []string {
	t := now.Sub(p.start).Seconds()
	p.drift += p.rng.NormFloat64() * 0.15
	p.drift = math.Max(-4, math.Min(4, p.drift))
	resp := 15 + math.Sin(t/47)*0.8 + p.rng.NormFloat64()*0.3
	// Respiratory sinus arrhythmia: heart rate rises on inspiration.
	hr := 72 + p.drift + 3*math.Sin(2*math.Pi*t*resp/60) + p.rng.NormFloat64()*0.8
	spo2 := math.Round(math.Max(96, math.Min(99, 98+p.rng.NormFloat64()*0.5)))
	temp := 36.8 + math.Sin(t/900)*0.1 + p.rng.NormFloat64()*0.02
	out := []string{
		quantity("8867-4", "Heart rate", math.Round(hr), "/min", "/min", now),
		quantity("59408-5", "Oxygen saturation", spo2, "%", "%", now),
		quantity("9279-1", "Respiratory rate", math.Round(resp), "/min", "/min", now),
		quantity("8310-5", "Body temperature", math.Round(temp*10)/10, "Cel", "Cel", now),
	}
	if p.lastBP.IsZero() || now.Sub(p.lastBP) >= p.bpEvery {
		p.lastBP = now
		sys := math.Round(118 + p.rng.NormFloat64()*4)
		dia := math.Round(76 + p.rng.NormFloat64()*3)
		out = append(out, bloodPressure(sys, dia, now))
	}
	return out
}

func header(code, display string, now time.Time) string {
	return fmt.Sprintf(`{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":%q,"display":%q}]},"effectiveDateTime":%q`,
		code, display, now.UTC().Format(time.RFC3339Nano))
}

func quantity(code, display string, v float64, unit, ucum string, now time.Time) string {
	return header(code, display, now) + fmt.Sprintf(`,"valueQuantity":{"value":%v,"unit":%q,"system":"http://unitsofmeasure.org","code":%q}}`, v, unit, ucum)
}

func bloodPressure(sys, dia float64, now time.Time) string {
	comp := func(code, display string, v float64) string {
		return fmt.Sprintf(`{"code":{"coding":[{"system":"http://loinc.org","code":%q,"display":%q}]},"valueQuantity":{"value":%v,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}`, code, display, v)
	}
	return header("85354-9", "Blood pressure panel", now) + `,"component":[` + comp("8480-6", "Systolic blood pressure", sys) + "," + comp("8462-4", "Diastolic blood pressure", dia) + "]}"
}
