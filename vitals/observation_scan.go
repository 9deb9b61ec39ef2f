package vitals

import (
	"encoding/json"
	"strconv"
	"sync"
)

// A device sends the same few shapes of Observation many times a second.
// json.Unmarshal reads them by reflection, which made it most of the cost
// of handling a numeric message and grew the device reader's stack past
// its starting size on every frame. scanObservation reads the common
// shape in one pass instead, and leaves anything else to encoding/json,
// so ParseObservation answers the same either way (FuzzObservationScan).

// obsScratch is where scanObservation puts what an Observation's pointer
// fields point to, so one scan allocates only the strings it cannot
// share with the catalogue.
type obsScratch struct {
	o       fhirObservation
	subject fhirReference
	when    string
	vq      quantity
	value   float64
	codings [2]coding
}

var obsScratchPool = sync.Pool{New: func() any { return new(obsScratch) }}

// scanObservation reads raw, valid JSON, into sc.o as json.Unmarshal
// would, if it is an object of the common shape: member names ASCII
// without escapes, each known member at most once and of the type
// fhirObservation gives it (no null), strings ASCII without escapes, no
// component or valueSampledData, numbers that fit a float64. It reports
// false for anything else, which json.Unmarshal must read; sc.o is then
// partly filled.
func scanObservation(raw []byte, sc *obsScratch) bool {
	*sc = obsScratch{}
	s := scanner{b: raw, i: skipSpace(raw, 0)}
	o := &sc.o
	var seen uint8
	return s.object(func(name []byte) bool {
		var bit uint8
		var ok bool
		switch {
		case asciiEqualFold(name, "resourcetype"):
			bit = 1 << 0
			o.ResourceType, ok = s.str()
		case asciiEqualFold(name, "status"):
			bit = 1 << 1
			o.Status, ok = s.str()
		case asciiEqualFold(name, "code"):
			bit = 1 << 2
			ok = s.codeableConcept(&o.Code, sc.codings[:0])
		case asciiEqualFold(name, "subject"):
			bit = 1 << 3
			o.Subject = &sc.subject
			ok = s.reference(o.Subject)
		case asciiEqualFold(name, "effectivedatetime"):
			bit = 1 << 4
			sc.when, ok = s.str()
			o.EffectiveDateTime = &sc.when
		case asciiEqualFold(name, "valuequantity"):
			bit = 1 << 5
			o.ValueQuantity = &sc.vq
			ok = s.quantity(o.ValueQuantity, &sc.value)
		case asciiEqualFold(name, "valuesampleddata"), asciiEqualFold(name, "component"):
			return false
		default:
			s.i = skipValue(s.b, s.i)
			return true
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return ok
	})
}

// scanner reads valid JSON b from i.
type scanner struct {
	b []byte
	i int
}

// object reads an object, calling member with s.i at each member's value,
// which member must read; it reports false if the value is not an object
// or a name is not ASCII without escapes, or when member does.
func (s *scanner) object(member func(name []byte) bool) bool {
	if s.b[s.i] != '{' {
		return false
	}
	s.i = skipSpace(s.b, s.i+1)
	if s.b[s.i] == '}' {
		s.i++
		return true
	}
	for {
		name, ok := s.plainString()
		if !ok {
			return false
		}
		s.i = skipSpace(s.b, skipSpace(s.b, s.i)+1) // the colon
		if !member(name) {
			return false
		}
		s.i = skipSpace(s.b, s.i)
		if s.b[s.i] == '}' {
			s.i++
			return true
		}
		s.i = skipSpace(s.b, s.i+1) // the comma
	}
}

// plainString reads a string of ASCII without escapes, and returns its
// bytes between the quotes.
func (s *scanner) plainString() ([]byte, bool) {
	if s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i + 1
	for j := start; ; j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			return s.b[start:j], true
		case c == '\\' || c >= 0x80:
			return nil, false
		}
	}
}

// str reads a string as plainString, as a Go string; one the catalogue
// holds (a code, a unit, a code system) is not allocated again.
func (s *scanner) str() (string, bool) {
	b, ok := s.plainString()
	if !ok {
		return "", false
	}
	if k, ok := knownStrings[string(b)]; ok {
		return k, true
	}
	return string(b), true
}

// number reads a number that fits a float64.
func (s *scanner) number() (float64, bool) {
	start := s.i
	c := s.b[start]
	if c != '-' && (c < '0' || c > '9') {
		return 0, false
	}
	s.i = skipValue(s.b, start)
	v, err := strconv.ParseFloat(string(s.b[start:s.i]), 64)
	return v, err == nil
}

// codeableConcept reads {"coding": [{"system": ..., "code": ...}, ...]},
// the codings appended to into.
func (s *scanner) codeableConcept(cc *codeableConcept, into []coding) bool {
	var seen bool
	return s.object(func(name []byte) bool {
		if !asciiEqualFold(name, "coding") {
			s.i = skipValue(s.b, s.i)
			return true
		}
		if seen || s.b[s.i] != '[' {
			return false
		}
		seen = true
		cs := into
		s.i = skipSpace(s.b, s.i+1)
		if s.b[s.i] == ']' {
			s.i++
			cc.Coding = cs
			return true
		}
		for {
			var c coding
			if !s.coding(&c) {
				return false
			}
			cs = append(cs, c)
			s.i = skipSpace(s.b, s.i)
			if s.b[s.i] == ']' {
				s.i++
				cc.Coding = cs
				return true
			}
			s.i = skipSpace(s.b, s.i+1) // the comma
		}
	})
}

func (s *scanner) coding(c *coding) bool {
	var seen uint8
	return s.object(func(name []byte) bool {
		var bit uint8
		var ok bool
		switch {
		case asciiEqualFold(name, "system"):
			bit = 1
			c.System, ok = s.str()
		case asciiEqualFold(name, "code"):
			bit = 2
			c.Code, ok = s.str()
		default:
			s.i = skipValue(s.b, s.i)
			return true
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return ok
	})
}

func (s *scanner) reference(r *fhirReference) bool {
	var seen bool
	return s.object(func(name []byte) bool {
		if !asciiEqualFold(name, "reference") {
			s.i = skipValue(s.b, s.i)
			return true
		}
		if seen {
			return false
		}
		seen = true
		var ok bool
		r.Reference, ok = s.str()
		return ok
	})
}

// quantity reads a Quantity, its value into *value.
func (s *scanner) quantity(q *quantity, value *float64) bool {
	var seen uint8
	return s.object(func(name []byte) bool {
		var bit uint8
		var ok bool
		switch {
		case asciiEqualFold(name, "value"):
			bit = 1 << 0
			*value, ok = s.number()
			q.Value = value
		case asciiEqualFold(name, "comparator"):
			bit = 1 << 1
			q.Comparator, ok = s.str()
		case asciiEqualFold(name, "unit"):
			bit = 1 << 2
			q.Unit, ok = s.str()
		case asciiEqualFold(name, "system"):
			bit = 1 << 3
			q.System, ok = s.str()
		case asciiEqualFold(name, "code"):
			bit = 1 << 4
			q.Code, ok = s.str()
		default:
			s.i = skipValue(s.b, s.i)
			return true
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return ok
	})
}

// knownStrings holds the strings a device's observations repeat: the
// resource type, statuses, code systems, the catalogue's codes and units.
var knownStrings = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{"Observation", "final", "amended", "corrected", "preliminary",
		SystemLOINC, SystemUCUM, SystemMDC, CodeBPPanel} {
		m[s] = s
	}
	for code, ms := range catalogue {
		m[code] = code
		m[ms.unit] = ms.unit
		for _, u := range ms.units {
			m[u.ucum] = u.ucum
		}
	}
	for code := range waveforms {
		m[code] = code
	}
	return m
}()

// unmarshalObservation is what scanObservation does, for any JSON.
func unmarshalObservation(raw []byte) (fhirObservation, error) {
	var o fhirObservation
	err := json.Unmarshal(raw, &o)
	return o, err
}
