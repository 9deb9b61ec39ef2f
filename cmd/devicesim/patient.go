package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/vitals"
)

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
	ramp    time.Duration // how long a deteriorating patient takes to get worse
	rng     *rand.Rand
	start   time.Time
	drift   float64 // slow heart-rate drift, /min
	lastBP  time.Time
	bpEvery time.Duration
	rounds  int // numeric rounds measured
	faults  int // faulty messages made

	nextSample time.Time     // time of the next ECG sample to emit
	inBeat     time.Duration // time since the current beat began
	beatLen    time.Duration // length of the current beat
}

func newPatient(sc scenario, seed uint64, start time.Time, ramp time.Duration) *patient {
	return &patient{
		sc:      sc,
		ramp:    ramp,
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		start:   start,
		bpEvery: 3 * time.Minute,
	}
}

// phys is the physiology at t.
func (p *patient) phys(t time.Time) physiology { return p.sc.at(t.Sub(p.start), p.ramp) }

// respRate is the breathing rate at t, in /min.
func (p *patient) respRate(t time.Time) float64 {
	s := t.Sub(p.start).Seconds()
	return p.phys(t).rr + 0.6*math.Sin(2*math.Pi*s/170)
}

// heartRate is the instantaneous heart rate at t, in /min: it rises on
// inspiration and falls on expiration (respiratory sinus arrhythmia) and
// drifts slowly.
func (p *patient) heartRate(t time.Time) float64 {
	s := t.Sub(p.start).Seconds()
	rsa := 3 * math.Sin(2*math.Pi*s*p.respRate(t)/60)
	slow := 2 * math.Sin(2*math.Pi*s/600)
	return p.phys(t).hr + p.drift + slow + rsa
}

// message is one thing the device sends: an Observation or a relayed
// Bluetooth value, each numbered; or, from a faulty device, a garbled frame
// that is not an envelope at all and so takes no number.
type message struct {
	Observation json.RawMessage
	GATT        json.RawMessage
	Wave        *vitals.Waveform // sent as a binary waveform frame
	Garbled     []byte
}

// faultEvery is how many rounds a faulty device measures between faults.
const faultEvery = 5

// numerics returns the numeric messages measured at now.
func (p *patient) numerics(now time.Time) []message {
	p.drift = clamp(p.drift+p.rng.NormFloat64()*0.15, -4, 4)
	ph := p.phys(now)
	hr := math.Round(p.heartRate(now) + p.rng.NormFloat64()*0.7)
	if p.sc.afib {
		// The ventricular rate of atrial fibrillation jumps from beat to beat.
		hr = math.Round(clamp(ph.hr+p.drift+p.rng.NormFloat64()*9, ph.hr-25, ph.hr+25))
	}
	spo2 := math.Round(clamp(ph.spo2+p.rng.NormFloat64()*0.6, ph.spo2-1, min(100, ph.spo2+1)))
	rr := math.Round(clamp(p.respRate(now)+p.rng.NormFloat64()*0.3, ph.rr-1, ph.rr+1))
	s := now.Sub(p.start).Seconds()
	temp := math.Round((ph.temp+0.1*math.Sin(2*math.Pi*s/3600)+p.rng.NormFloat64()*0.02)*10) / 10
	out := []message{
		{Observation: quantityObs(vitals.CodeHeartRate, "Heart rate", hr, "/min", now)},
		{Observation: quantityObs(vitals.CodeSpO2, "Oxygen saturation in arterial blood by pulse oximetry", spo2, "%", now)},
		{Observation: quantityObs(vitals.CodeRespRate, "Respiratory rate", rr, "/min", now)},
		{Observation: quantityObs(vitals.CodeTemperature, "Body temperature", temp, "Cel", now)},
	}
	if p.lastBP.IsZero() || now.Sub(p.lastBP) >= p.bpEvery {
		p.lastBP = now
		sys := math.Round(ph.sys + p.rng.NormFloat64()*4)
		dia := math.Round(ph.dia + p.rng.NormFloat64()*3)
		out = append(out, message{Observation: bloodPressureObs(sys, dia, now)})
	}
	p.rounds++
	if p.sc.faulty && p.rounds%faultEvery == 0 {
		out = append(out, p.fault(now))
	}
	return out
}

// faults are what a faulty device sends, in turn: all but the cuff are
// refused by the server (the garbled frame without a number), and the
// cuff's reading is kept, flagged as doubtful.
var faults = []string{"impossible", "wrong unit", "not a number", "no value", "kelvin", "loose cuff", "garbled"}

// fault returns the next faulty message.
func (p *patient) fault(now time.Time) message {
	kind := faults[p.faults%len(faults)]
	p.faults++
	switch kind {
	case "impossible": // a heart rate no heart beats at
		return message{Observation: quantityObs(vitals.CodeHeartRate, "Heart rate", 400, "/min", now)}
	case "wrong unit": // a heart rate labelled as a pressure
		return message{Observation: quantityObs(vitals.CodeHeartRate, "Heart rate", 72, "mm[Hg]", now)}
	case "not a number": // JSON has no NaN: a firmware that prints it as text
		o := newObservation(vitals.SystemLOINC, vitals.CodeSpO2, "Oxygen saturation", now)
		b := marshal(o)
		return message{Observation: append(b[:len(b)-1], `,"valueQuantity":{"value":"NaN","unit":"%","system":"http://unitsofmeasure.org","code":"%"}}`...)}
	case "no value": // a PLX spot-check whose SpO2 and pulse are both NaN (SFLOAT 0x07FF)
		return message{GATT: gattValue("2a5e", []byte{0x00, 0xFF, 0x07, 0xFF, 0x07}, now)}
	case "kelvin": // a thermometer in a unit Bedside does not take for body temperature
		return message{Observation: quantityObs(vitals.CodeTemperature, "Body temperature", 310.1, "K", now)}
	case "loose cuff": // 128/84 mmHg, the cuff reporting itself too loose
		return message{GATT: gattValue("2a35", []byte{0x10, 0x80, 0x00, 0x54, 0x00, 0x63, 0x00, 0x02, 0x00}, now)}
	}
	return message{Garbled: []byte(`{"seq": 1, "observation": {"resourceType": "Observ`)}
}

// ecgChunk returns the ECG samples from the last chunk up to now as one
// observation, or nil if no sample is due. After a pause of more than a
// second it starts afresh rather than sending a backlog.
func (p *patient) ecgChunk(now time.Time) json.RawMessage {
	w := p.ecgWave(now)
	if w == nil {
		return nil
	}
	data := make([]string, len(w.Data))
	for i, v := range w.Data {
		data[i] = strconv.Itoa(int(v))
	}
	return waveformObs(w.Time, data)
}

// ecgWave returns the ECG samples from the last chunk up to now, in
// microvolts, or nil if no sample is due; ecgChunk sends the same as FHIR.
func (p *patient) ecgWave(now time.Time) *vitals.Waveform {
	if p.nextSample.IsZero() || now.Sub(p.nextSample) > time.Second {
		p.nextSample = now.Add(-chunkEvery)
	}
	w := &vitals.Waveform{
		Code: vitals.CodeECGLeadII, OriginUnit: "mV", Factor: 0.001, Dimensions: 1, Time: p.nextSample,
		Period: float64(samplePeriod) / float64(time.Millisecond),
	}
	for !p.nextSample.After(now) && len(w.Data) < 4096 {
		w.Data = append(w.Data, math.Round(p.ecgMicrovolts(p.nextSample)))
		p.nextSample = p.nextSample.Add(samplePeriod)
	}
	if len(w.Data) == 0 {
		return nil
	}
	return w
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
		if p.sc.afib {
			// Irregularly irregular: each beat 55% to 145% of the mean.
			p.beatLen = time.Duration(60 / (p.phys(t).hr + p.drift) * (0.55 + 0.9*p.rng.Float64()) * float64(time.Second))
		}
	}
	tb := p.inBeat.Seconds()
	p.inBeat += samplePeriod
	// Wave positions scale a little with the beat so fast rhythms fit.
	k := math.Min(1, p.beatLen.Seconds()/0.83)
	wave := func(at, width, amp float64) float64 {
		d := (tb - at*k) / width
		return amp * math.Exp(-d*d/2)
	}
	v := wave(0.185, 0.008, -110) + // Q
		wave(0.21, 0.010, 1150) + // R
		wave(0.235, 0.009, -260) + // S
		wave(0.45, 0.045, 300) // T
	s := t.Sub(p.start).Seconds()
	if p.sc.afib {
		// No P wave: the atria fibrillate, a fine wavy baseline at about 6 Hz.
		v += 35*math.Sin(2*math.Pi*6.1*s) + 15*math.Sin(2*math.Pi*7.9*s+1)
	} else {
		v += wave(0.10, 0.022, 120) // P
	}
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

// gattValue is a relayed Bluetooth characteristic value as the browser or a
// hub sends it (docs/protocol.md, "Relayed Bluetooth values").
func gattValue(characteristic string, value []byte, at time.Time) json.RawMessage {
	b, err := json.Marshal(struct {
		Characteristic string `json:"characteristic"`
		Value          []byte `json:"value"` // base64, standard and padded
		Time           string `json:"time"`
	}{characteristic, value, at.UTC().Format(time.RFC3339Nano)})
	if err != nil {
		panic(fmt.Sprintf("devicesim: encode gatt value: %v", err))
	}
	return b
}
