package calendar

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Decode parses an iCalendar object of exactly the shape Encode writes: the
// same properties in the same order, with the same parameters. It unfolds
// lines (wherever they were folded) and unescapes TEXT values; anything else —
// bare LF line endings, unknown properties, bad escapes — is an error, and so
// is an event Encode would reject.
//
// Decode exists for tests: the server only writes invitations.
func Decode(data []byte) (Event, error) {
	e, err := decode(data)
	if err != nil {
		return Event{}, fmt.Errorf("decode calendar: %w", err)
	}
	return e, nil
}

func decode(data []byte) (Event, error) {
	lines, err := unfold(data)
	if err != nil {
		return Event{}, err
	}
	d := decoder{lines: lines}
	var e Event
	d.exact("BEGIN", "VCALENDAR")
	d.exact("PRODID", prodID)
	d.exact("VERSION", "2.0")
	d.exact("CALSCALE", "GREGORIAN")
	e.Method = Method(d.value("METHOD"))
	d.exact("BEGIN", "VEVENT")
	e.UID = d.text("UID")
	e.Sequence = d.integer("SEQUENCE")
	e.Stamp = d.time("DTSTAMP")
	e.Start = d.time("DTSTART")
	e.End = d.time("DTEND")
	if d.peek("SUMMARY") {
		e.Summary = d.text("SUMMARY")
	}
	if d.peek("DESCRIPTION") {
		e.Description = d.text("DESCRIPTION")
	}
	e.Status = d.value("STATUS")
	e.Organizer = d.person("ORGANIZER")
	e.Attendee = d.person("ATTENDEE", "ROLE=REQ-PARTICIPANT", "PARTSTAT=NEEDS-ACTION", "RSVP=FALSE")
	if d.peek("URL") {
		e.JoinURL = d.value("URL")
		if c := d.value("CONFERENCE", "VALUE=URI", "FEATURE=VIDEO", "LABEL="+conferenceLabel); d.err == nil && c != e.JoinURL {
			d.fail("CONFERENCE %q differs from URL %q", c, e.JoinURL)
		}
	}
	d.exact("END", "VEVENT")
	d.exact("END", "VCALENDAR")
	if d.err == nil && d.pos < len(d.lines) {
		d.fail("unexpected line %d after END:VCALENDAR", d.pos+1)
	}
	if d.err != nil {
		return Event{}, d.err
	}
	if err := validate(e); err != nil {
		return Event{}, err
	}
	return e, nil
}

// unfold splits data into content lines: each physical line must end in
// CRLF, and a line starting with a space or tab continues the previous one
// (RFC 5545 §3.1).
func unfold(data []byte) ([]string, error) {
	s := string(data)
	if !strings.HasSuffix(s, "\r\n") {
		return nil, errors.New("data does not end in CRLF")
	}
	var (
		lines []string
		cur   strings.Builder
		open  bool
	)
	flush := func() error {
		if !open {
			return nil
		}
		l := cur.String()
		if !utf8.ValidString(l) {
			return fmt.Errorf("line %d is not valid UTF-8", len(lines)+1)
		}
		lines = append(lines, l)
		cur.Reset()
		return nil
	}
	for n, l := range strings.Split(s[:len(s)-2], "\r\n") {
		if strings.ContainsAny(l, "\r\n") {
			return nil, fmt.Errorf("physical line %d has a bare CR or LF", n+1)
		}
		if l == "" {
			return nil, fmt.Errorf("physical line %d is empty", n+1)
		}
		if l[0] == ' ' || l[0] == '\t' {
			if !open {
				return nil, errors.New("data starts with a continuation line")
			}
			cur.WriteString(l[1:])
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		cur.WriteString(l)
		open = true
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return lines, nil
}

// contentLine is one unfolded line: name, parameters and value (RFC 5545 §3.1).
type contentLine struct {
	name   string
	params []string // "NAME=value", value unquoted
	value  string
}

func parseLine(s string) (contentLine, error) {
	var l contentLine
	i := strings.IndexAny(s, ";:")
	if i < 0 {
		return l, errors.New("no colon")
	}
	l.name, s = s[:i], s[i:]
	if !isName(l.name) {
		return l, fmt.Errorf("bad property name %q", l.name)
	}
	for s != "" && s[0] == ';' {
		s = s[1:]
		eq := strings.IndexByte(s, '=')
		if eq < 0 || !isName(s[:eq]) {
			return l, fmt.Errorf("%s: bad parameter", l.name)
		}
		pname := s[:eq]
		s = s[eq+1:]
		var pval string
		if strings.HasPrefix(s, `"`) {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return l, fmt.Errorf("%s: unterminated quoted parameter %s", l.name, pname)
			}
			pval, s = s[1:1+end], s[2+end:]
		} else {
			end := strings.IndexAny(s, `;:,"`)
			if end < 0 {
				return l, fmt.Errorf("%s: no colon after parameter %s", l.name, pname)
			}
			pval, s = s[:end], s[end:]
		}
		for _, r := range pval {
			if r != '\t' && (r < 0x20 || r == 0x7f) {
				return l, fmt.Errorf("%s: control character in parameter %s", l.name, pname)
			}
		}
		l.params = append(l.params, pname+"="+pval)
	}
	if s == "" || s[0] != ':' {
		return l, fmt.Errorf("%s: bad parameter list", l.name)
	}
	l.value = s[1:]
	return l, nil
}

// isName reports whether s is an upper-case iana-token, the only form Encode
// writes.
func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// decoder walks the content lines in the order Encode writes them. After the
// first error every method is a no-op, so decode reads as a list of steps.
type decoder struct {
	lines []string
	pos   int
	err   error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

// peek reports whether the next line is the property name.
func (d *decoder) peek(name string) bool {
	if d.err != nil || d.pos >= len(d.lines) {
		return false
	}
	l, err := parseLine(d.lines[d.pos])
	return err == nil && l.name == name
}

// line consumes the next line, which must be property name with exactly the
// given parameters.
func (d *decoder) line(name string, params ...string) contentLine {
	if d.err != nil {
		return contentLine{}
	}
	if d.pos >= len(d.lines) {
		d.fail("missing %s", name)
		return contentLine{}
	}
	l, err := parseLine(d.lines[d.pos])
	if err != nil {
		d.fail("line %d: %v", d.pos+1, err)
		return contentLine{}
	}
	if l.name != name {
		d.fail("line %d: got %s, want %s", d.pos+1, l.name, name)
		return contentLine{}
	}
	if !slices.Equal(l.params, params) {
		d.fail("line %d: %s has parameters %q, want %q", d.pos+1, name, l.params, params)
		return contentLine{}
	}
	d.pos++
	return l
}

func (d *decoder) value(name string, params ...string) string {
	return d.line(name, params...).value
}

func (d *decoder) exact(name, want string) {
	if v := d.value(name); d.err == nil && v != want {
		d.fail("%s is %q, want %q", name, v, want)
	}
}

func (d *decoder) text(name string) string {
	v := d.value(name)
	if d.err != nil {
		return ""
	}
	s, err := unescapeText(v)
	if err != nil {
		d.fail("%s: %v", name, err)
	}
	return s
}

func (d *decoder) integer(name string) int {
	v := d.value(name)
	if d.err != nil {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		d.fail("%s: %q is not an integer", name, v)
	}
	return n
}

func (d *decoder) time(name string) time.Time {
	v := d.value(name)
	if d.err != nil {
		return time.Time{}
	}
	ok := len(v) == len(timeLayout)
	for i := 0; ok && i < len(v); i++ {
		switch i {
		case 8:
			ok = v[i] == 'T'
		case 15:
			ok = v[i] == 'Z'
		default:
			ok = '0' <= v[i] && v[i] <= '9'
		}
	}
	if !ok {
		d.fail("%s: %q is not a UTC date-time like 20261125T140000Z", name, v)
		return time.Time{}
	}
	t, err := time.Parse(timeLayout, v)
	if err != nil {
		d.fail("%s: %v", name, err)
	}
	return t
}

// person reads an ORGANIZER or ATTENDEE: an optional CN followed by the
// given fixed parameters, and a mailto value.
func (d *decoder) person(name string, params ...string) Person {
	if d.err != nil || d.pos >= len(d.lines) {
		d.line(name, params...) // records the error
		return Person{}
	}
	var p Person
	if l, err := parseLine(d.lines[d.pos]); err == nil && len(l.params) > 0 && strings.HasPrefix(l.params[0], "CN=") {
		p.Name = strings.TrimPrefix(l.params[0], "CN=")
		params = append([]string{l.params[0]}, params...)
	}
	v := d.value(name, params...)
	if d.err != nil {
		return Person{}
	}
	addr, ok := strings.CutPrefix(v, "mailto:")
	if !ok {
		d.fail("%s: %q is not a mailto URI", name, v)
		return Person{}
	}
	email, err := url.PathUnescape(addr)
	if err != nil {
		d.fail("%s: %v", name, err)
		return Person{}
	}
	p.Email = email
	return p
}

// unescapeText reverses escapeText, accepting \N for \n as RFC 5545 does.
func unescapeText(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 == len(s) {
				return "", errors.New("trailing backslash")
			}
			i++
			switch s[i] {
			case '\\', ';', ',':
				b.WriteByte(s[i])
			case 'n', 'N':
				b.WriteByte('\n')
			default:
				return "", fmt.Errorf("bad escape %q", s[i-1:i+1])
			}
		case ';', ',':
			return "", fmt.Errorf("unescaped %q", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
