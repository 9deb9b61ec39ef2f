package vitals

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/bedside-health/bedside/internal/jsonscan"
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
	s := scanner{b: raw, i: jsonscan.SkipSpace(raw, 0)}
	o := &sc.o
	var seen uint8
	if !s.enter() {
		return false
	}
	for {
		name, more, ok := s.next()
		if !ok || !more {
			return ok
		}
		var bit uint8
		switch {
		case jsonscan.ASCIIEqualFold(name, "resourcetype"):
			bit = 1 << 0
			o.ResourceType, ok = s.str()
		case jsonscan.ASCIIEqualFold(name, "status"):
			bit = 1 << 1
			o.Status, ok = s.str()
		case jsonscan.ASCIIEqualFold(name, "code"):
			bit = 1 << 2
			ok = s.codeableConcept(&o.Code, sc.codings[:0])
		case jsonscan.ASCIIEqualFold(name, "subject"):
			bit = 1 << 3
			o.Subject = &sc.subject
			ok = s.reference(o.Subject)
		case jsonscan.ASCIIEqualFold(name, "effectivedatetime"):
			bit = 1 << 4
			o.effective, ok = s.plainString()
		case jsonscan.ASCIIEqualFold(name, "valuequantity"):
			bit = 1 << 5
			o.ValueQuantity = &sc.vq
			ok = s.quantity(o.ValueQuantity, &sc.value)
		case jsonscan.ASCIIEqualFold(name, "valuesampleddata"), jsonscan.ASCIIEqualFold(name, "component"):
			return false
		default:
			s.skip()
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
	}
}

// scanner reads valid JSON b from i. Its methods are loops, not
// callbacks, to keep the stack they use small.
type scanner struct {
	b []byte
	i int
}

// enter reads the opening of an object; false if the value is not one.
func (s *scanner) enter() bool {
	if s.b[s.i] != '{' {
		return false
	}
	s.i++
	return true
}

// next reads up to the next member's value of the object being read, and
// returns the member's name; more is false at the object's end, which it
// reads. It reports false for a name that is not ASCII without escapes.
func (s *scanner) next() (name []byte, more, ok bool) {
	s.i = jsonscan.SkipSpace(s.b, s.i)
	if s.b[s.i] == ',' {
		s.i = jsonscan.SkipSpace(s.b, s.i+1)
	}
	if s.b[s.i] == '}' {
		s.i++
		return nil, false, true
	}
	if name, ok = s.plainString(); !ok {
		return nil, false, false
	}
	s.i = jsonscan.SkipSpace(s.b, jsonscan.SkipSpace(s.b, s.i)+1) // the colon
	return name, true, true
}

// skip reads past a value.
func (s *scanner) skip() { s.i = jsonscan.SkipValue(s.b, s.i) }

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

// number reads a number that fits a float64, as strconv.ParseFloat does.
func (s *scanner) number() (float64, bool) {
	start := s.i
	c := s.b[start]
	if c != '-' && (c < '0' || c > '9') {
		return 0, false
	}
	s.i = jsonscan.SkipValue(s.b, start)
	if v, ok := exactDecimal(s.b[start:s.i]); ok {
		return v, true
	}
	return parseFloat(s.b[start:s.i])
}

// exactDecimal reads a JSON number without an exponent and with at most
// 15 digits, such as 72 or 36.8, the way strconv.ParseFloat's exact path
// does: the digits as a whole number, exact in a float64, divided by an
// exact power of ten, which IEEE division rounds correctly. ParseFloat
// holds a large buffer on the stack for the numbers it cannot read so.
func exactDecimal(b []byte) (float64, bool) {
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	var m uint64
	digits, frac := 0, -1
	for i, c := range b {
		switch {
		case '0' <= c && c <= '9':
			m = m*10 + uint64(c-'0')
			digits++
		case c == '.' && frac < 0:
			frac = i
		default:
			return 0, false // an exponent
		}
	}
	if digits > 15 {
		return 0, false
	}
	v := float64(m)
	if frac >= 0 {
		v /= pow10[len(b)-frac-1]
	}
	if neg {
		v = -v
	}
	return v, true
}

// pow10 holds the powers of ten up to 10^15, each exact in a float64.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// parseFloat reads any other number.
//
//go:noinline
func parseFloat(b []byte) (float64, bool) {
	v, err := strconv.ParseFloat(string(b), 64)
	return v, err == nil
}

// codeableConcept reads {"coding": [{"system": ..., "code": ...}, ...]},
// the codings appended to into.
func (s *scanner) codeableConcept(cc *codeableConcept, into []coding) bool {
	if !s.enter() {
		return false
	}
	seen := false
	for {
		name, more, ok := s.next()
		if !ok || !more {
			return ok
		}
		if !jsonscan.ASCIIEqualFold(name, "coding") {
			s.skip()
			continue
		}
		if seen || s.b[s.i] != '[' {
			return false
		}
		seen = true
		cc.Coding = into
		s.i = jsonscan.SkipSpace(s.b, s.i+1)
		for s.b[s.i] != ']' {
			var c coding
			if !s.coding(&c) {
				return false
			}
			cc.Coding = append(cc.Coding, c)
			if s.i = jsonscan.SkipSpace(s.b, s.i); s.b[s.i] == ',' {
				s.i = jsonscan.SkipSpace(s.b, s.i+1)
			}
		}
		s.i++
	}
}

func (s *scanner) coding(c *coding) bool {
	if !s.enter() {
		return false
	}
	var seen uint8
	for {
		name, more, ok := s.next()
		if !ok || !more {
			return ok
		}
		var bit uint8
		switch {
		case jsonscan.ASCIIEqualFold(name, "system"):
			bit = 1
			c.System, ok = s.str()
		case jsonscan.ASCIIEqualFold(name, "code"):
			bit = 2
			c.Code, ok = s.str()
		default:
			s.skip()
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
	}
}

func (s *scanner) reference(r *fhirReference) bool {
	if !s.enter() {
		return false
	}
	seen := false
	for {
		name, more, ok := s.next()
		if !ok || !more {
			return ok
		}
		if !jsonscan.ASCIIEqualFold(name, "reference") {
			s.skip()
			continue
		}
		if seen {
			return false
		}
		seen = true
		if r.Reference, ok = s.str(); !ok {
			return false
		}
	}
}

// quantity reads a Quantity, its value into *value.
func (s *scanner) quantity(q *quantity, value *float64) bool {
	if !s.enter() {
		return false
	}
	var seen uint8
	for {
		name, more, ok := s.next()
		if !ok || !more {
			return ok
		}
		var bit uint8
		switch {
		case jsonscan.ASCIIEqualFold(name, "value"):
			bit = 1 << 0
			*value, ok = s.number()
			q.Value = value
		case jsonscan.ASCIIEqualFold(name, "comparator"):
			bit = 1 << 1
			q.Comparator, ok = s.str()
		case jsonscan.ASCIIEqualFold(name, "unit"):
			bit = 1 << 2
			q.Unit, ok = s.str()
		case jsonscan.ASCIIEqualFold(name, "system"):
			bit = 1 << 3
			q.System, ok = s.str()
		case jsonscan.ASCIIEqualFold(name, "code"):
			bit = 1 << 4
			q.Code, ok = s.str()
		default:
			s.skip()
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
	}
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

// parseUTCDateTime reads a date-time of the form devices send,
// 2026-12-06T02:00:00.123Z (fraction optional, 1 to 9 digits), as
// parseDateTime would, without allocating and in a fraction of the stack;
// false for any other form, or a date or time out of range (year 0000
// too), which parseDateTime must read (and refuse, if it does).
func parseUTCDateTime(b []byte) (time.Time, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return time.Time{}, false
	}
	year, ok1 := decimal(b[0:4])
	month, ok2 := decimal(b[5:7])
	day, ok3 := decimal(b[8:10])
	hour, ok4 := decimal(b[11:13])
	minute, ok5 := decimal(b[14:16])
	sec, ok6 := decimal(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	ns := 0
	if frac := b[19 : len(b)-1]; len(frac) > 0 {
		n, ok := decimal(frac[1:])
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 || !ok {
			return time.Time{}, false
		}
		for range 10 - len(frac) {
			n *= 10
		}
		ns = n
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, ns, time.UTC), true
}

// decimal reads b, decimal digits only.
func decimal(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// daysIn is the number of days in month of year.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
