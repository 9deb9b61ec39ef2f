package vitals

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// SampledData is a waveform as FHIR R4 SampledData: the physical value of
// each sample in Data is Origin.Value + Factor × sample, Period
// milliseconds apart; a gap is E.
type SampledData struct {
	Origin     Quantity `json:"origin"`
	Period     float64  `json:"period"`
	Factor     float64  `json:"factor"`
	Dimensions int      `json:"dimensions"`
	Data       string   `json:"data"`
}

// Quantity is a FHIR Quantity with a UCUM unit.
type Quantity struct {
	Value  float64 `json:"value"`
	Unit   string  `json:"unit,omitempty"`
	System string  `json:"system,omitempty"`
	Code   string  `json:"code,omitempty"`
}

// SampledData converts the waveform to FHIR SampledData without loss:
// parsing an Observation holding it (see Observation) gives back a
// Waveform equal to w, gaps included.
func (w *Waveform) SampledData() SampledData {
	sd := SampledData{Origin: Quantity{Value: w.Origin}, Period: w.Period, Factor: w.Factor, Dimensions: 1}
	if w.OriginUnit != "" {
		sd.Origin.Unit, sd.Origin.System, sd.Origin.Code = w.OriginUnit, SystemUCUM, w.OriginUnit
	}
	b := make([]byte, 0, len(w.Data)*5)
	for i, v := range w.Data {
		if i > 0 {
			b = append(b, ' ')
		}
		if math.IsNaN(v) {
			b = append(b, 'E')
			continue
		}
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
	}
	sd.Data = string(b)
	return sd
}

// Observation is the waveform as a FHIR R4 Observation (status final,
// its MDC code, effectiveDateTime the first sample's time), as a device
// would send it on /ws/device.
func (w *Waveform) Observation() (json.RawMessage, error) {
	type coding struct {
		System  string `json:"system"`
		Code    string `json:"code"`
		Display string `json:"display,omitempty"`
	}
	sd := w.SampledData()
	return json.Marshal(struct {
		ResourceType string `json:"resourceType"`
		Status       string `json:"status"`
		Code         struct {
			Coding []coding `json:"coding"`
		} `json:"code"`
		EffectiveDateTime string       `json:"effectiveDateTime"`
		ValueSampledData  *SampledData `json:"valueSampledData"`
	}{
		ResourceType: "Observation", Status: "final",
		Code: struct {
			Coding []coding `json:"coding"`
		}{[]coding{{System: SystemMDC, Code: w.Code, Display: waveforms[w.Code]}}},
		EffectiveDateTime: w.Time.UTC().Format(time.RFC3339Nano),
		ValueSampledData:  &sd,
	})
}
