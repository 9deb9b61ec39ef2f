package calendar

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	// prodID names the product that wrote the calendar (RFC 5545 §3.7.3).
	prodID = "-//Bedside//Bedside//EN"
	// timeLayout is the UTC DATE-TIME form (RFC 5545 §3.3.5, FORM #2).
	timeLayout = "20060102T150405Z"
	// conferenceLabel is the LABEL of the CONFERENCE property (RFC 7986 §5.11).
	conferenceLabel = "Join the video visit"
	// maxLine is the longest content line RFC 5545 §3.1 allows, in octets,
	// not counting the CRLF.
	maxLine = 75
)

// Encode writes e as an iCalendar object holding one VEVENT, ready to attach
// to an email as text/calendar with the same method.
//
// Times are written in UTC to the second. Summary and Description are
// escaped, long lines are folded, and lines end in CRLF. A double quote in a
// person's name is written as an apostrophe, since a parameter value cannot
// hold one; apart from that, Decode(Encode(e)) gives back e's fields.
//
// Encode returns an error wrapping ErrInvalidEvent when the UID is empty, End
// is not after Start, Stamp is zero, an email is missing or malformed, the
// status does not match the method (CONFIRMED for REQUEST, CANCELLED for
// CANCEL), or a text holds what iCalendar cannot carry (invalid UTF-8,
// control characters).
func Encode(e Event) ([]byte, error) {
	e = normalize(e)
	if err := validate(e); err != nil {
		return nil, fmt.Errorf("encode calendar: %w", err)
	}
	var b bytes.Buffer
	w := func(line string) { writeFolded(&b, line) }
	w("BEGIN:VCALENDAR")
	w("PRODID:" + prodID)
	w("VERSION:2.0")
	w("CALSCALE:GREGORIAN")
	w("METHOD:" + string(e.Method))
	w("BEGIN:VEVENT")
	w("UID:" + escapeText(e.UID))
	w("SEQUENCE:" + strconv.Itoa(e.Sequence))
	w("DTSTAMP:" + formatTime(e.Stamp))
	w("DTSTART:" + formatTime(e.Start))
	w("DTEND:" + formatTime(e.End))
	if e.Summary != "" {
		w("SUMMARY:" + escapeText(e.Summary))
	}
	if e.Description != "" {
		w("DESCRIPTION:" + escapeText(e.Description))
	}
	w("STATUS:" + e.Status)
	w("ORGANIZER" + cn(e.Organizer.Name) + ":" + mailto(e.Organizer.Email))
	w("ATTENDEE" + cn(e.Attendee.Name) + ";ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=FALSE:" + mailto(e.Attendee.Email))
	if e.JoinURL != "" {
		w("URL:" + e.JoinURL)
		w("CONFERENCE;VALUE=URI;FEATURE=VIDEO;LABEL=" + conferenceLabel + ":" + e.JoinURL)
	}
	w("END:VEVENT")
	w("END:VCALENDAR")
	return b.Bytes(), nil
}

func formatTime(t time.Time) string {
	return t.UTC().Format(timeLayout)
}

// textEscaper escapes a TEXT value (RFC 5545 §3.3.11).
var textEscaper = strings.NewReplacer(`\`, `\\`, ";", `\;`, ",", `\,`, "\n", `\n`)

func escapeText(s string) string {
	return textEscaper.Replace(s)
}

// cn returns the CN parameter for name, or nothing when name is empty.
func cn(name string) string {
	if name == "" {
		return ""
	}
	return ";CN=" + paramValue(name)
}

// paramValue writes a parameter value (RFC 5545 §3.2): quoted when it holds
// a colon, semicolon or comma. A double quote cannot appear at all, quoted or
// not, so it becomes an apostrophe.
func paramValue(s string) string {
	s = strings.ReplaceAll(s, `"`, "'")
	if strings.ContainsAny(s, ":;,") {
		return `"` + s + `"`
	}
	return s
}

// mailto writes an email address as a mailto URI (RFC 6068), percent-encoding
// the characters a mailto addr-spec may not hold as they are.
func mailto(email string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.WriteString("mailto:")
	for i := 0; i < len(email); i++ {
		c := email[i]
		if isAlnum(c) || strings.IndexByte("-._~!$'()*+,;:@", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// writeFolded writes one content line, folded so that no physical line is
// longer than 75 octets (RFC 5545 §3.1): each continuation line starts with a
// single space, and no UTF-8 sequence is split.
func writeFolded(b *bytes.Buffer, line string) {
	limit := maxLine
	for len(line) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		if cut == 0 { // not UTF-8; cannot happen after validate
			cut = limit
		}
		b.WriteString(line[:cut])
		b.WriteString("\r\n ")
		line = line[cut:]
		limit = maxLine - 1 // the leading space counts
	}
	b.WriteString(line)
	b.WriteString("\r\n")
}
