// Package jsonscan reads JSON without reflection: a check that a value is
// valid exactly as json.Valid decides, and, once it is, steps over its
// values and compares member names as encoding/json matches them. The
// device ingest reads every message through it, and the load tool every
// delivered one.
package jsonscan

// MaxDepth is encoding/json's limit on nested arrays and objects.
const MaxDepth = 10000

// Valid reports whether b is one valid JSON value, exactly as
// json.Valid does (vitals' FuzzValidJSON), in one loop over it: json.Valid steps
// a state machine with a function call per byte, which was most of the
// cost of reading a numeric device message.
func Valid(b []byte) bool {
	const (
		wantValue = iota
		wantKey   // a member's name, then its value
		afterValue
	)
	var open [64]byte // '{' or '[' per container entered
	stack := open[:0]
	state := wantValue
	i := SkipSpace(b, 0)
	for {
		if i >= len(b) {
			return state == afterValue && len(stack) == 0
		}
		switch state {
		case wantValue:
			switch c := b[i]; {
			case c == '{' || c == '[':
				if len(stack) == MaxDepth {
					return false
				}
				stack = append(stack, c)
				i = SkipSpace(b, i+1)
				switch {
				case i < len(b) && c == '{' && b[i] == '}', i < len(b) && c == '[' && b[i] == ']':
					stack = stack[:len(stack)-1]
					i++
					state = afterValue
				case c == '{':
					state = wantKey
				}
				i = SkipSpace(b, i)
				continue
			case c == '"':
				if i = validString(b, i); i < 0 {
					return false
				}
			case c == '-' || '0' <= c && c <= '9':
				if i = validNumber(b, i); i < 0 {
					return false
				}
			case c == 't':
				if i = validLiteral(b, i, "true"); i < 0 {
					return false
				}
			case c == 'f':
				if i = validLiteral(b, i, "false"); i < 0 {
					return false
				}
			case c == 'n':
				if i = validLiteral(b, i, "null"); i < 0 {
					return false
				}
			default:
				return false
			}
			state = afterValue
		case wantKey:
			if b[i] != '"' {
				return false
			}
			if i = validString(b, i); i < 0 {
				return false
			}
			if i = SkipSpace(b, i); i >= len(b) || b[i] != ':' {
				return false
			}
			state = wantValue
			i++
		case afterValue:
			if len(stack) == 0 {
				return false // something after the value
			}
			top := stack[len(stack)-1]
			switch c := b[i]; {
			case c == ',':
				state = wantValue
				if top == '{' {
					state = wantKey
				}
			case c == '}' && top == '{', c == ']' && top == '[':
				stack = stack[:len(stack)-1]
			default:
				return false
			}
			i++
		}
		i = SkipSpace(b, i)
	}
}

// validString returns the index after the string that starts at b[i], or
// -1 if it is not a valid JSON string. Like encoding/json, it does not
// require UTF-8: Unmarshal replaces what is not.
func validString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

// validNumber returns the index after the number that starts at b[i], or
// -1 if it is not a valid JSON number.
func validNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if j := digits(b, i+1); j > i+1 {
			i = j
		} else {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if j := digits(b, i); j > i {
			i = j
		} else {
			return -1
		}
	}
	return i
}

// digits returns the index after the decimal digits from b[i].
func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// validLiteral returns the index after lit at b[i], or -1.
func validLiteral(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// SkipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func SkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// SkipValue returns the index just after the JSON value that starts at i
// in valid JSON b.
func SkipValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			for i++; b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
			if depth < 0 { // the end of the enclosing object
				return i
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
	}
	return i
}

// Key reads the name of the object member whose opening quote is at i in
// valid JSON b: name as written between the quotes (escapes left as they
// are), plain when it has no escape and is all ASCII, and the index where
// the member's value starts.
func Key(b []byte, i int) (name []byte, plain bool, value int) {
	plain = true
	j := i + 1
	for ; b[j] != '"'; j++ {
		switch {
		case b[j] == '\\':
			plain = false
			j++
		case b[j] >= 0x80:
			plain = false
		}
	}
	return b[i+1 : j], plain, SkipSpace(b, SkipSpace(b, j+1)+1) // past the colon
}

// ASCIIEqualFold reports whether the ASCII name is s (lower case) in any
// case, as encoding/json matches an ASCII member name to a field's.
func ASCIIEqualFold(name []byte, s string) bool {
	if len(name) != len(s) {
		return false
	}
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
