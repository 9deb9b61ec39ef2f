package gatt

import (
	"fmt"
	"math"
)

// Special names the reserved values of IEEE 11073-20601 SFLOAT and FLOAT.
// A device sends one when it has no number to give.
type Special int

const (
	Number   Special = iota // an ordinary value
	NaN                     // not a number: no measurement
	NRes                    // not at this resolution: the value does not fit
	PosInf                  // above the device's range
	NegInf                  // below the device's range
	Reserved                // reserved for future use
)

func (s Special) String() string {
	switch s {
	case NaN:
		return "NaN (no value)"
	case NRes:
		return "NRes (not at this resolution)"
	case PosInf:
		return "+INF (above range)"
	case NegInf:
		return "-INF (below range)"
	case Reserved:
		return "a reserved value"
	}
	return "a number"
}

// SFloat decodes a 16-bit IEEE 11073-20601 SFLOAT: a 4-bit signed
// exponent over a 12-bit signed mantissa, value = mantissa * 10^exponent.
// A special value gives NaN (or an infinity) and says which it is.
func SFloat(raw uint16) (float64, Special) {
	switch raw {
	case 0x07FF:
		return math.NaN(), NaN
	case 0x0800:
		return math.NaN(), NRes
	case 0x07FE:
		return math.Inf(1), PosInf
	case 0x0802:
		return math.Inf(-1), NegInf
	case 0x0801:
		return math.NaN(), Reserved
	}
	mantissa := int32(raw&0x0FFF) << 20 >> 20 // sign-extend 12 bits
	exponent := int(int8(raw>>8) >> 4)        // sign-extend the top 4 bits
	return scale(mantissa, exponent), Number
}

// Float decodes a 32-bit IEEE 11073-20601 FLOAT: an 8-bit signed exponent
// over a 24-bit signed mantissa.
func Float(raw uint32) (float64, Special) {
	switch raw {
	case 0x007FFFFF:
		return math.NaN(), NaN
	case 0x00800000:
		return math.NaN(), NRes
	case 0x007FFFFE:
		return math.Inf(1), PosInf
	case 0x00800002:
		return math.Inf(-1), NegInf
	case 0x00800001:
		return math.NaN(), Reserved
	}
	mantissa := int32(raw<<8) >> 8 // sign-extend 24 bits
	exponent := int(int8(raw >> 24))
	return scale(mantissa, exponent), Number
}

// scale is m * 10^e, dividing for negative exponents so that decimal
// values such as 98.7 (987e-1) come out as the nearest float64.
func scale(m int32, e int) float64 {
	if e < 0 {
		return float64(m) / math.Pow10(-e)
	}
	return float64(m) * math.Pow10(e)
}

// specialError is the error for a field that holds a special value.
func specialError(field string, s Special) error {
	return fmt.Errorf("%s is %s", field, s)
}
