package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// The viewers read a handful of fields out of every message the server or
// the relay delivers. encoding/json's reflection cost about a tenth of the
// load tool's CPU in the server phase (waveform messages carry arrays of
// samples it walked value by value), and the tool shares the machine with
// what it measures, so it walks the JSON here instead: each value is
// skipped as bytes, and only the fields asked for are decoded.

var errSyntax = errors.New("malformed JSON")

// elements calls fn with each value of the JSON array b.
func elements(b []byte, fn func(v []byte) error) error {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '[' {
		return fmt.Errorf("%w: not an array", errSyntax)
	}
	end, err := walkArray(b, i, fn, 0)
	if err != nil {
		return err
	}
	return trailing(b, end)
}

// members calls fn with each member of the JSON object b: its key, as
// written between the quotes, and its value.
func members(b []byte, fn func(key, v []byte) error) error {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return fmt.Errorf("%w: not an object", errSyntax)
	}
	end, err := walkObject(b, i, fn, 0)
	if err != nil {
		return err
	}
	return trailing(b, end)
}

// maxDepth bounds the nesting walked, as encoding/json's does.
const maxDepth = 10000

// walkArray walks the array opening at b[i], calling fn (if not nil) with
// each value, and returns its end.
func walkArray(b []byte, i int, fn func(v []byte) error, depth int) (int, error) {
	if depth >= maxDepth {
		return 0, fmt.Errorf("%w: nested too deep", errSyntax)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		end, err := skipValue(b, i, depth+1)
		if err != nil {
			return 0, err
		}
		if fn != nil {
			if err := fn(b[i:end]); err != nil {
				return 0, err
			}
		}
		i = skipSpace(b, end)
		if i == len(b) {
			return 0, fmt.Errorf("%w: unterminated array", errSyntax)
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return 0, fmt.Errorf("%w: %q in an array", errSyntax, b[i])
		}
	}
}

// walkObject walks the object opening at b[i], calling fn (if not nil)
// with each member, and returns its end.
func walkObject(b []byte, i int, fn func(key, v []byte) error, depth int) (int, error) {
	if depth >= maxDepth {
		return 0, fmt.Errorf("%w: nested too deep", errSyntax)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i == len(b) || b[i] != '"' {
			return 0, fmt.Errorf("%w: object key", errSyntax)
		}
		kend, err := skipString(b, i)
		if err != nil {
			return 0, err
		}
		key := b[i+1 : kend-1]
		i = skipSpace(b, kend)
		if i == len(b) || b[i] != ':' {
			return 0, fmt.Errorf("%w: no colon after a key", errSyntax)
		}
		i = skipSpace(b, i+1)
		end, err := skipValue(b, i, depth+1)
		if err != nil {
			return 0, err
		}
		if fn != nil {
			if err := fn(key, b[i:end]); err != nil {
				return 0, err
			}
		}
		i = skipSpace(b, end)
		if i == len(b) {
			return 0, fmt.Errorf("%w: unterminated object", errSyntax)
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return 0, fmt.Errorf("%w: %q in an object", errSyntax, b[i])
		}
	}
}

// keyIs reports whether a key as written names field: compared without
// case, as encoding/json matches a struct's fields. A key written with
// escapes is decoded first.
func keyIs(key []byte, field string) bool {
	if plainASCII(key) {
		// ASCII folds only to ASCII of the same length.
		return len(key) == len(field) && bytes.EqualFold(key, []byte(field))
	}
	if bytes.IndexByte(key, '\\') < 0 {
		return bytes.EqualFold(key, []byte(field))
	}
	var s string
	if json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &s) != nil {
		return false
	}
	return bytes.EqualFold([]byte(s), []byte(field))
}

// int64Value decodes a JSON integer; null leaves it 0, as encoding/json does.
func int64Value(v []byte) (int64, error) {
	if string(v) == "null" {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %.20q is not an integer", errSyntax, v)
	}
	return n, nil
}

// stringValue decodes a JSON string; null leaves it "".
func stringValue(v []byte) (string, error) {
	if string(v) == "null" {
		return "", nil
	}
	if len(v) < 2 || v[0] != '"' {
		return "", fmt.Errorf("%w: %.20q is not a string", errSyntax, v)
	}
	if plainASCII(v[1 : len(v)-1]) {
		return string(v[1 : len(v)-1]), nil
	}
	var s string
	err := json.Unmarshal(v, &s)
	return s, err
}

// timeValue decodes an RFC 3339 time as encoding/json does; null leaves it zero.
func timeValue(v []byte) (time.Time, error) {
	var t time.Time
	if string(v) == "null" {
		return t, nil
	}
	err := t.UnmarshalJSON(v)
	return t, err
}

// plainASCII reports whether a string's content needs no decoding.
func plainASCII(s []byte) bool {
	for _, c := range s {
		if c == '\\' || c < 0x20 || c >= 0x80 {
			return false
		}
	}
	return true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// trailing checks that only white space follows a value ending at i.
func trailing(b []byte, i int) error {
	if skipSpace(b, i) != len(b) {
		return fmt.Errorf("%w: data after the value", errSyntax)
	}
	return nil
}

// skipValue returns the end of the JSON value that starts at b[i].
func skipValue(b []byte, i int, depth int) (int, error) {
	if i >= len(b) {
		return 0, fmt.Errorf("%w: value expected", errSyntax)
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{':
		return walkObject(b, i, nil, depth)
	case c == '[':
		return walkArray(b, i, nil, depth)
	case c == '-' || c >= '0' && c <= '9':
		return skipNumber(b, i)
	}
	for _, lit := range []string{"true", "false", "null"} {
		if bytes.HasPrefix(b[i:], []byte(lit)) {
			return i + len(lit), nil
		}
	}
	return 0, fmt.Errorf("%w: %q starts no value", errSyntax, b[i])
}

// skipString returns the end of the string whose opening quote is b[i].
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, nil
		case c == '\\':
			j++
		case c < 0x20:
			return 0, fmt.Errorf("%w: control character in a string", errSyntax)
		}
	}
	return 0, fmt.Errorf("%w: unterminated string", errSyntax)
}

// skipNumber returns the end of the JSON number starting at b[i].
func skipNumber(b []byte, i int) (int, error) {
	j := i
	if b[j] == '-' {
		j++
	}
	digits := func() int {
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		return j - k
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case digits() == 0:
		return 0, fmt.Errorf("%w: number", errSyntax)
	}
	if j < len(b) && b[j] == '.' {
		j++
		if digits() == 0 {
			return 0, fmt.Errorf("%w: number", errSyntax)
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if digits() == 0 {
			return 0, fmt.Errorf("%w: number", errSyntax)
		}
	}
	return j, nil
}

// appendMessages appends the messages of a server frame (a JSON array of
// stream messages) to msgs, as encoding/json would decode them into
// []streamMsg (null leaves a field as it was).
func appendMessages(msgs []streamMsg, b []byte) ([]streamMsg, error) {
	if string(bytes.TrimSpace(b)) == "null" {
		return msgs, nil
	}
	err := elements(b, func(v []byte) error {
		var m streamMsg
		if string(v) != "null" {
			if err := members(v, m.field); err != nil {
				return err
			}
		}
		msgs = append(msgs, m)
		return nil
	})
	return msgs, err
}

// msgFields are the members of a stream message the viewers read.
var msgFields = []string{"type", "patient", "offset", "time", "error"}

// field decodes one member of a stream message.
func (m *streamMsg) field(key, v []byte) (err error) {
	if string(v) == "null" {
		return nil
	}
	switch fieldOf(key, msgFields) {
	case "type":
		m.Type, err = stringValue(v)
	case "patient":
		m.Patient, err = int64Value(v)
	case "offset":
		m.Offset, err = int64Value(v)
	case "time":
		m.Time, err = timeValue(v)
	case "error":
		m.Error, err = stringValue(v)
	}
	return err
}

// fieldOf returns the one of fields a key names, or "": the key as written
// is compared first, then without case.
func fieldOf(key []byte, fields []string) string {
	for _, f := range fields {
		if string(key) == f {
			return f
		}
	}
	for _, f := range fields {
		if keyIs(key, f) {
			return f
		}
	}
	return ""
}

var envelopeFields = []string{"seq", "observation"}

// envelopeAt reads the seq and the observation's effectiveDateTime of a
// device's JSON envelope.
func envelopeAt(b []byte) (seq int64, at time.Time, err error) {
	err = members(b, func(key, v []byte) (err error) {
		if string(v) == "null" {
			return nil
		}
		switch fieldOf(key, envelopeFields) {
		case "seq":
			seq, err = int64Value(v)
		case "observation":
			err = members(v, func(key, v []byte) (err error) {
				if string(v) != "null" && keyIs(key, "effectiveDateTime") {
					at, err = timeValue(v)
				}
				return err
			})
		}
		return err
	})
	return seq, at, err
}
