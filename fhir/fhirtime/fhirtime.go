// Package fhirtime reads FHIR's dateTime strictly. time.Parse alone is
// laxer than FHIR and RFC 3339: it takes a ',' as the decimal mark, cuts a
// fraction of more than nine digits, takes a one-digit hour and any zone
// below 24 hours. The vitals decoder and the FHIR API both read
// date-times here, so a time one of them refuses the other refuses too.
package fhirtime

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Form says, in errors, which date-times Parse reads.
const Form = "a FHIR dateTime with seconds and a time zone, such as 2026-12-06T02:00:00.25+01:00 " +
	"(year 0001 to 9999; a fraction, if any, of 1 to 9 digits after a '.'; Z or a zone of at most ±14:00)"

// Times a FHIR dateTime can write in UTC (years 0001 to 9999). A zone can
// carry a written 9999-12-31T23:30:00-01:00 past them.
var (
	firstWritable = time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC)
	pastWritable  = time.Date(10000, time.January, 1, 0, 0, 0, 0, time.UTC)
)

// Parse reads s, a date-time with seconds and a time zone as both FHIR's
// dateTime and RFC 3339 write it, in UTC. Its error quotes s (cut to 40
// bytes) and says what form is read, or why the time does not exist.
func Parse(s string) (time.Time, error) {
	if !IsDateTime(s) {
		return time.Time{}, fmt.Errorf("%q is not %s", truncate(s, 40), Form)
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
		return time.Time{}, fmt.Errorf("%q: %s", truncate(s, 40), reason)
	}
	when = when.UTC()
	return when, CheckYears(when)
}

// CheckYears refuses a time outside the years a FHIR dateTime writes in
// UTC.
func CheckYears(when time.Time) error {
	if when.Before(firstWritable) || !when.Before(pastWritable) {
		return fmt.Errorf("%s is outside the years 0001 to 9999 in UTC", when.Format(time.RFC3339))
	}
	return nil
}

// IsDateTime reports whether s has the form of a FHIR dateTime with
// seconds and a time zone (FHIR's regular expression, without the partial
// dates and times): YYYY-MM-DDThh:mm:ss[.f…](Z|±hh:mm), year 0001 to
// 9999, month 01 to 12, day 01 to 31, hour 00 to 23, minute 00 to 59,
// second 00 to 60, 1 to 9 fraction digits, a zone of at most 14:00.
// Whether the day exists is Parse's to check.
func IsDateTime(s string) bool {
	if len(s) < 20 || !IsDate(s[:10]) || s[10] != 'T' || !twoDigits(s[11:13], 0, 23) || s[13] != ':' ||
		!twoDigits(s[14:16], 0, 59) || s[16] != ':' || !twoDigits(s[17:19], 0, 60) {
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
	return IsZone(zone)
}

// IsZone reports whether s is a FHIR time zone: Z, or ±hh:mm of at most
// 14:00.
func IsZone(s string) bool {
	switch {
	case s == "Z":
		return true
	case len(s) != 6 || s[0] != '+' && s[0] != '-' || s[3] != ':':
		return false
	}
	return twoDigits(s[1:3], 0, 13) && twoDigits(s[4:6], 0, 59) || s[1:] == "14:00"
}

// IsDate reports whether s has the form of a FHIR date, YYYY-MM-DD, year
// 0001 to 9999, month 01 to 12, day 01 to 31 (whether the day exists is
// not checked).
func IsDate(s string) bool {
	return len(s) == 10 && IsYearMonth(s[:7]) && s[7] == '-' && twoDigits(s[8:10], 1, 31)
}

// IsYearMonth reports whether s has the form YYYY-MM, year 0001 to 9999.
func IsYearMonth(s string) bool {
	return len(s) == 7 && IsYear(s[:4]) && s[4] == '-' && twoDigits(s[5:7], 1, 12)
}

// IsYear reports whether s is a year of four digits, 0001 to 9999.
func IsYear(s string) bool {
	return len(s) == 4 && twoDigits(s[0:2], 0, 99) && twoDigits(s[2:4], 0, 99) && s != "0000"
}

// twoDigits reports whether s is two decimal digits from lo to hi.
func twoDigits(s string, lo, hi int) bool {
	if len(s) != 2 || s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return false
	}
	n := int(s[0]-'0')*10 + int(s[1]-'0')
	return n >= lo && n <= hi
}

// truncate cuts s to at most n bytes, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
