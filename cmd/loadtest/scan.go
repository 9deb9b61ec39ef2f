package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/internal/jsonscan"
)

// The viewers read a handful of fields out of every message the server or
// the relay delivers. encoding/json's reflection cost about a tenth of the
// load tool's CPU in the server phase (waveform messages carry arrays of
// samples it walked value by value), and the tool shares the machine with
// what it measures, so it reads them as the device ingest does: a frame is
// checked once with jsonscan.Valid, then its values are stepped over as
// bytes and only the fields asked for are decoded.

var errSyntax = errors.New("malformed JSON")

// appendMessages appends the messages of a server frame (a JSON array of
// stream messages) to msgs, as encoding/json would decode them into
// []streamMsg (null leaves a field as it was).
func appendMessages(msgs []streamMsg, b []byte) ([]streamMsg, error) {
	if !jsonscan.Valid(b) {
		return msgs, errSyntax
	}
	i := jsonscan.SkipSpace(b, 0)
	switch b[i] {
	case 'n':
		return msgs, nil
	case '[':
	default:
		return msgs, fmt.Errorf("%w: not an array", errSyntax)
	}
	for i = jsonscan.SkipSpace(b, i+1); b[i] != ']'; {
		end := jsonscan.SkipValue(b, i)
		var m streamMsg
		switch b[i] {
		case 'n':
		case '{':
			if err := members(b[i:end], m.field); err != nil {
				return msgs, err
			}
		default:
			return msgs, fmt.Errorf("%w: a message is not an object", errSyntax)
		}
		msgs = append(msgs, m)
		if i = jsonscan.SkipSpace(b, end); b[i] == ',' {
			i = jsonscan.SkipSpace(b, i+1)
		}
	}
	return msgs, nil
}

// members calls fn with each member of the object o, valid JSON: its key,
// as written between the quotes, and its value.
func members(o []byte, fn func(key, v []byte) error) error {
	for i := jsonscan.SkipSpace(o, 1); o[i] != '}'; {
		key, _, v := jsonscan.Key(o, i)
		i = v
		end := jsonscan.SkipValue(o, i)
		if err := fn(key, o[i:end]); err != nil {
			return err
		}
		if i = jsonscan.SkipSpace(o, end); o[i] == ',' {
			i = jsonscan.SkipSpace(o, i+1)
		}
	}
	return nil
}

// fields are the members a viewer reads, each with its name in lower case.
type fields []struct{ name, lower string }

func fieldsOf(names ...string) fields {
	fs := make(fields, len(names))
	for i, n := range names {
		fs[i].name, fs[i].lower = n, strings.ToLower(n)
	}
	return fs
}

var (
	msgFields      = fieldsOf("type", "patient", "offset", "time", "error")
	envelopeFields = fieldsOf("seq", "observation")
	obsFields      = fieldsOf("effectiveDateTime")
)

// of returns the field a key as written names, or "": compared as written
// first, then without case, as encoding/json matches a struct's fields.
func (fs fields) of(key []byte) string {
	for _, f := range fs {
		if string(key) == f.name {
			return f.name
		}
	}
	plain := plainASCII(key)
	var decoded []byte
	if !plain {
		// Escapes or letters beyond ASCII: decode the name, and fold it as
		// encoding/json does, beyond ASCII too.
		var s string
		if json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &s) != nil {
			return ""
		}
		decoded = []byte(s)
	}
	for _, f := range fs {
		if plain && jsonscan.ASCIIEqualFold(key, f.lower) || !plain && bytes.EqualFold(decoded, []byte(f.name)) {
			return f.name
		}
	}
	return ""
}

// field decodes one member of a stream message.
func (m *streamMsg) field(key, v []byte) (err error) {
	if string(v) == "null" {
		return nil
	}
	switch msgFields.of(key) {
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

// envelopeAt reads the seq and the observation's effectiveDateTime of a
// device's JSON envelope.
func envelopeAt(b []byte) (seq int64, at time.Time, err error) {
	i := jsonscan.SkipSpace(b, 0)
	if !jsonscan.Valid(b) || b[i] != '{' {
		return 0, at, fmt.Errorf("%w: not an object", errSyntax)
	}
	err = members(b[i:], func(key, v []byte) (err error) {
		if string(v) == "null" {
			return nil
		}
		switch envelopeFields.of(key) {
		case "seq":
			seq, err = int64Value(v)
		case "observation":
			if v[0] != '{' {
				return fmt.Errorf("%w: the observation is not an object", errSyntax)
			}
			err = members(v, func(key, v []byte) (err error) {
				if string(v) != "null" && obsFields.of(key) != "" {
					at, err = timeValue(v)
				}
				return err
			})
		}
		return err
	})
	return seq, at, err
}

// int64Value decodes a JSON integer.
func int64Value(v []byte) (int64, error) {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %.20q is not an integer", errSyntax, v)
	}
	return n, nil
}

// stringValue decodes a JSON string.
func stringValue(v []byte) (string, error) {
	if v[0] != '"' {
		return "", fmt.Errorf("%w: %.20q is not a string", errSyntax, v)
	}
	if plainASCII(v[1 : len(v)-1]) {
		return string(v[1 : len(v)-1]), nil
	}
	var s string
	err := json.Unmarshal(v, &s)
	return s, err
}

// timeValue decodes an RFC 3339 time as encoding/json does.
func timeValue(v []byte) (time.Time, error) {
	var t time.Time
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
