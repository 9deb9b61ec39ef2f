package gatt

import (
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// characteristics are those Parse reads, and one it does not.
var characteristics = []uint16{HeartRateMeasurement, PLXSpotCheck, PLXContinuous, BloodPressureMeasurement,
	TemperatureMeasurement, WeightMeasurement, GlucoseMeasurement, 0x2A19}

// FuzzParse sends arbitrary bytes as every characteristic. Parse must
// never panic; a value it accepts holds finite numbers in a known unit and
// parses the same again, and a refusal names the characteristic.
func FuzzParse(f *testing.F) {
	for _, c := range parseCases {
		f.Add(c.ch, bytesOf(f, c.hex))
	}
	f.Add(uint16(0x2A19), []byte{100})
	units := map[string]bool{"/min": true, "%": true, "mm[Hg]": true, "Cel": true, "[degF]": true, "kg": true, "mg/dL": true, "mmol/L": true}
	f.Fuzz(func(t *testing.T, ch uint16, b []byte) {
		// Most random numbers are no characteristic: fold them onto ours.
		if !slices.Contains(characteristics, ch) {
			ch = characteristics[int(ch)%len(characteristics)]
		}
		m, err := Parse(ch, b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), Name(ch)+": ") && !strings.Contains(err.Error(), "not a characteristic") {
				t.Fatalf("error %q does not name %s", err, Name(ch))
			}
			if len(m.Values) != 0 {
				t.Fatalf("refused, yet gave values %+v", m.Values)
			}
			return
		}
		if len(m.Values) == 0 {
			t.Fatal("accepted with no value")
		}
		for _, v := range m.Values {
			if math.IsNaN(v.V) || math.IsInf(v.V, 0) || !units[v.Unit] || v.Code == "" {
				t.Fatalf("accepted an unusable value %+v", v)
			}
		}
		again, err := Parse(ch, b)
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("parsed differently the second time: %+v, %v", again, err)
		}
	})
}
