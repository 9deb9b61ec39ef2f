package vitals

import (
	"errors"
	"strings"
	"time"
)

// dateTimeForm says, in errors, which date-times are read.
const dateTimeForm = "a FHIR dateTime with seconds and a time zone, such as 2026-12-06T02:00:00.25+01:00 " +
	"(year 0001 to 9999; a fraction, if any, of 1 to 9 digits after a '.'; Z or a zone of at most ±14:00)"

// parseDateTime reads s, a date-time with seconds and a time zone as both
// FHIR's dateTime and RFC 3339 write it, in UTC; the error names field and
// says what form is read. time.Parse alone is laxer than either: it takes a
// ',' as the decimal mark, cuts a fraction of more than nine digits and
// takes any zone below 24 hours.
//
// It stays out of header's frame, which a device reader's stack holds.
//
//go:noinline
func parseDateTime(field, s string) (time.Time, error) {
	if !fhirDateTime(s) {
		return time.Time{}, fieldErr(field, "%q is not %s", truncate(s, 40), dateTimeForm)
	}
	when, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		// The form is right but the day or time does not exist: 30
		// February, or a leap second, which FHIR writes and Go does not.
		reason := "no such date or time"
		var pe *time.ParseError
		if errors.As(err, &pe) && pe.Message != "" {
			reason = strings.TrimPrefix(pe.Message, ": ")
		}
		return time.Time{}, fieldErr(field, "%q: %s", truncate(s, 40), reason)
	}
	when = when.UTC()
	return when, checkYears(field, when)
}

// fhirDateTime reports whether s has the form of a FHIR dateTime with
// seconds and a time zone (FHIR's regular expression, without the partial
// dates and times, which Bedside does not read):
// YYYY-MM-DDThh:mm:ss[.f…](Z|±hh:mm), year 0001 to 9999, month 01 to 12,
// day 01 to 31, hour 00 to 23, minute 00 to 59, second 00 to 60, 1 to 9
// fraction digits, a zone of at most 14:00. Whether the day exists is
// time.Parse's to check.
func fhirDateTime(s string) bool {
	if len(s) < 20 || !twoDigits(s[0:2], 0, 99) || !twoDigits(s[2:4], 0, 99) || s[0:4] == "0000" ||
		s[4] != '-' || !twoDigits(s[5:7], 1, 12) || s[7] != '-' || !twoDigits(s[8:10], 1, 31) ||
		s[10] != 'T' || !twoDigits(s[11:13], 0, 23) || s[13] != ':' || !twoDigits(s[14:16], 0, 59) ||
		s[16] != ':' || !twoDigits(s[17:19], 0, 60) {
		return false
	}
	zone := s[19:]
	if zone[0] == '.' {
		n := 1
		for n < len(zone) && zone[n] >= '0' && zone[n] <= '9' {
			n++
		}
		if n < 2 || n > 10 {
			return false
		}
		zone = zone[n:]
	}
	switch {
	case zone == "Z":
		return true
	case len(zone) != 6 || zone[0] != '+' && zone[0] != '-' || zone[3] != ':':
		return false
	}
	return twoDigits(zone[1:3], 0, 13) && twoDigits(zone[4:6], 0, 59) || zone[1:] == "14:00"
}

// twoDigits reports whether s is two decimal digits from lo to hi.
func twoDigits(s string, lo, hi int) bool {
	if len(s) != 2 || s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return false
	}
	n := int(s[0]-'0')*10 + int(s[1]-'0')
	return n >= lo && n <= hi
}
