package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/vitals"
)

// scenario is the resting physiology a simulated patient varies around.
type scenario struct {
	hr, spo2, rr, temp, sys, dia float64
}

// scenarios are the patients devicesim can simulate.
var scenarios = map[string]scenario{
	"normal":  {hr: 72, spo2: 98, rr: 15, temp: 36.8, sys: 118, dia: 76},
	"fever":   {hr: 104, spo2: 96, rr: 21, temp: 38.9, sys: 112, dia: 70},
	"hypoxia": {hr: 108, spo2: 89, rr: 25, temp: 37.0, sys: 126, dia: 82},
}

func scenarioNames() string {
	var names []string
	for n := range scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// ECG sampling: 250 Hz, sent as one chunk every chunkEvery.
const (
	samplePeriod = 4 * time.Millisecond
	chunkEvery   = 100 * time.Millisecond
)

// patient generates a simulated patient's measurements as FHIR
// Observations: heart rate with respiratory sinus arrhythmia and a slow
// drift, SpO2, respiratory rate and temperature each round, a blood-pressure
// panel at once and then every bpEvery, and a continuous synthetic ECG
// (lead II) whose beats follow the same heart rate. It is deterministic for
// a given seed and sequence of times.
type patient struct {
	sc      scenario
	rng     *rand.Rand
	start   time.Time
	drift   float64 // slow heart-rate drift, /min
	lastBP  time.Time
	bpEvery time.Duration

	nextSample time.Time     // time of the next ECG sample to emit
	inBeat     time.Duration // time since the current beat began
	beatLen    time.Duration // length of the current beat
}

func newPatient(sc scenario, seed uint64, start time.Time) *patient {
	return &patient{
		sc:      sc,
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		start:   start,
		bpEvery: 3 * time.Minute,
	}
}

// respRate is the breathing rate at t, in /min.
func (p *patient) respRate(t time.Time) float64 {
	s := t.Sub(p.start).Seconds()
	return p.sc.rr + 0.6*math.Sin(2*math.Pi*s/170)
}

// heartRate is the instantaneous heart rate at t, in /min: it rises on
// inspiration and falls on expiration (respiratory sinus arrhythmia) and
// drifts slowly.
func (p *patient) heartRate(t time.Time) float64 {
	s := t.Sub(p.start).Seconds()
	rsa := 3 * math.Sin(2*math.Pi*s*p.respRate(t)/60)
	slow := 2 * math.Sin(2*math.Pi*s/600)
	return p.sc.hr + p.drift + slow + rsa
}

// numerics returns the numeric observations measured at now.
func (p *patient) numerics(now time.Time) []json.RawMessage {
	p.drift = clamp(p.drift+p.rng.NormFloat64()*0.15, -4, 4)
	hr := math.Round(p.heartRate(now) + p.rng.NormFloat64()*0.7)
	spo2 := math.Round(clamp(p.sc.spo2+p.rng.NormFloat64()*0.6, p.sc.spo2-1, min(100, p.sc.spo2+1)))
	rr := math.Round(clamp(p.respRate(now)+p.rng.NormFloat64()*0.3, p.sc.rr-1, p.sc.rr+1))
	s := now.Sub(p.start).Seconds()
	temp := math.Round((p.sc.temp+0.1*math.Sin(2*math.Pi*s/3600)+p.rng.NormFloat64()*0.02)*10) / 10
	out := []json.RawMessage{
		quantityObs(vitals.CodeHeartRate, "Heart rate", hr, "/min", now),
		quantityObs(vitals.CodeSpO2, "Oxygen saturation in arterial blood by pulse oximetry", spo2, "%", now),
		quantityObs(vitals.CodeRespRate, "Respiratory rate", rr, "/min", now),
		quantityObs(vitals.CodeTemperature, "Body temperature", temp, "Cel", now),
	}
	if p.lastBP.IsZero() || now.Sub(p.lastBP) >= p.bpEvery {
		p.lastBP = now
		sys := math.Round(p.sc.sys + p.rng.NormFloat64()*4)
		dia := math.Round(p.sc.dia + p.rng.NormFloat64()*3)
		out = append(out, bloodPressureObs(sys, dia, now))
	}
	return out
}

// ecgChunk returns the ECG samples from the last chunk up to now as one
// observation, or nil if no sample is due. After a pause of more than a
// second it starts afresh rather than sending a backlog.
func (p *patient) ecgChunk(now time.Time) json.RawMessage {
	if p.nextSample.IsZero() || now.Sub(p.nextSample) > time.Second {
		p.nextSample = now.Add(-chunkEvery)
	}
	first := p.nextSample
	var data []string
	for !p.nextSample.After(now) && len(data) < 4096 {
		data = append(data, strconv.Itoa(int(math.Round(p.ecgMicrovolts(p.nextSample)))))
		p.nextSample = p.nextSample.Add(samplePeriod)
	}
	if len(data) == 0 {
		return nil
	}
	return waveformObs(first, data)
}

// ecgMicrovolts advances the beat clock by one sample and returns the lead
// II voltage at t: P, Q, R, S and T waves as Gaussians placed after the
// beat's start, with a breathing baseline and a little noise.
func (p *patient) ecgMicrovolts(t time.Time) float64 {
	if p.beatLen == 0 || p.inBeat >= p.beatLen {
		p.inBeat -= p.beatLen
		if p.beatLen == 0 {
			p.inBeat = 0
		}
		p.beatLen = time.Duration(60 / p.heartRate(t) * float64(time.Second))
	}
	tb := p.inBeat.Seconds()
	p.inBeat += samplePeriod
	// Wave positions scale a little with the beat so fast rhythms fit.
	k := math.Min(1, p.beatLen.Seconds()/0.83)
	wave := func(at, width, amp float64) float64 {
		d := (tb - at*k) / width
		return amp * math.Exp(-d*d/2)
	}
	v := wave(0.10, 0.022, 120) + // P
		wave(0.185, 0.008, -110) + // Q
		wave(0.21, 0.010, 1150) + // R
		wave(0.235, 0.009, -260) + // S
		wave(0.45, 0.045, 300) // T
	s := t.Sub(p.start).Seconds()
	v += 40 * math.Sin(2*math.Pi*s*p.respRate(t)/60)
	return v + p.rng.NormFloat64()*8
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

// FHIR JSON shapes devicesim sends.
type fhirCoding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

type fhirConcept struct {
	Coding []fhirCoding `json:"coding"`
}

type fhirQuantity struct {
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	System string  `json:"system"`
	Code   string  `json:"code"`
}

type fhirSampledData struct {
	Origin     fhirQuantity `json:"origin"`
	Period     float64      `json:"period"`
	Factor     float64      `json:"factor"`
	Dimensions int          `json:"dimensions"`
	Data       string       `json:"data"`
}

type fhirComponent struct {
	Code          fhirConcept  `json:"code"`
	ValueQuantity fhirQuantity `json:"valueQuantity"`
}

type fhirObservation struct {
	ResourceType      string           `json:"resourceType"`
	Status            string           `json:"status"`
	Category          []fhirConcept    `json:"category"`
	Code              fhirConcept      `json:"code"`
	EffectiveDateTime string           `json:"effectiveDateTime"`
	ValueQuantity     *fhirQuantity    `json:"valueQuantity,omitempty"`
	ValueSampledData  *fhirSampledData `json:"valueSampledData,omitempty"`
	Component         []fhirComponent  `json:"component,omitempty"`
}

var vitalSigns = []fhirConcept{{Coding: []fhirCoding{{
	System: "http://terminology.hl7.org/CodeSystem/observation-category", Code: "vital-signs",
}}}}

func newObservation(system, code, display string, at time.Time) fhirObservation {
	return fhirObservation{
		ResourceType:      "Observation",
		Status:            "final",
		Category:          vitalSigns,
		Code:              fhirConcept{Coding: []fhirCoding{{System: system, Code: code, Display: display}}},
		EffectiveDateTime: at.UTC().Format(time.RFC3339Nano),
	}
}

func ucum(v float64, unit string) fhirQuantity {
	return fhirQuantity{Value: v, Unit: unit, System: vitals.SystemUCUM, Code: unit}
}

func marshal(o fhirObservation) json.RawMessage {
	b, err := json.Marshal(o)
	if err != nil {
		panic(fmt.Sprintf("devicesim: encode observation: %v", err)) // only plain values: cannot happen
	}
	return b
}

func quantityObs(code, display string, v float64, unit string, at time.Time) json.RawMessage {
	o := newObservation(vitals.SystemLOINC, code, display, at)
	q := ucum(v, unit)
	o.ValueQuantity = &q
	return marshal(o)
}

func bloodPressureObs(sys, dia float64, at time.Time) json.RawMessage {
	o := newObservation(vitals.SystemLOINC, vitals.CodeBPPanel, "Blood pressure panel with all children optional", at)
	comp := func(code, display string, v float64) fhirComponent {
		return fhirComponent{
			Code:          fhirConcept{Coding: []fhirCoding{{System: vitals.SystemLOINC, Code: code, Display: display}}},
			ValueQuantity: ucum(v, "mm[Hg]"),
		}
	}
	o.Component = []fhirComponent{
		comp(vitals.CodeSystolic, "Systolic blood pressure", sys),
		comp(vitals.CodeDiastolic, "Diastolic blood pressure", dia),
	}
	return marshal(o)
}

func waveformObs(first time.Time, data []string) json.RawMessage {
	o := newObservation(vitals.SystemMDC, vitals.CodeECGLeadII, "MDC_ECG_ELEC_POTL_II", first)
	o.ValueSampledData = &fhirSampledData{
		Origin:     ucum(0, "mV"),
		Period:     float64(samplePeriod) / float64(time.Millisecond),
		Factor:     0.001, // samples are in µV
		Dimensions: 1,
		Data:       strings.Join(data, " "),
	}
	return marshal(o)
}
