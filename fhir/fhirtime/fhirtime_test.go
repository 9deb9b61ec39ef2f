package fhirtime_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/fhir/fhirtime"
)

// TestParse: the forms time.Parse takes and FHIR does not are refused,
// saying the form read; FHIR's own forms are read in UTC.
func TestParse(t *testing.T) {
	for _, s := range []string{
		"2026-12-06T02:00:00,5Z",                          // a comma decimal mark
		"2026-12-06T02:00:00.1234567891Z",                 // ten fraction digits
		"2026-12-06T02:00:00+14:30",                       // beyond +14:00
		"2026-12-06T02:00:00-15:00",                       // beyond -14:00
		"2026-12-06T2:00:00Z",                             // a one-digit hour
		"2026-12-06T02:00:00",                             // no zone
		"2026-12-06t02:00:00z",                            // lower case
		"0000-12-31T23:30:00Z",                            // year 0000
		"2026-12-06T02:00:00.Z",                           // an empty fraction
		"2026-12-06T02:00:00+0100",                        // a zone without its colon
		" 2026-12-06T02:00:00Z",                           // a space
		"2026-12-06T02:00:00Z" + strings.Repeat("0", 100), // and a long quote is cut
	} {
		if _, err := fhirtime.Parse(s); err == nil || !strings.Contains(err.Error(), "FHIR dateTime") || len(err.Error()) > len(fhirtime.Form)+60 {
			t.Errorf("Parse(%q) = %v, want it refused, naming the form", s, err)
		}
	}
	for _, c := range []struct{ s, why string }{
		{"2026-02-30T00:00:00Z", "out of range"},
		{"0001-01-01T00:30:00+01:00", "outside the years"},
		{"9999-12-31T23:30:00-01:00", "outside the years"},
	} {
		if _, err := fhirtime.Parse(c.s); err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("Parse(%q) = %v, want %q", c.s, err, c.why)
		}
	}
	for s, want := range map[string]time.Time{
		"2026-12-06T02:00:00Z":                time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC),
		"2026-12-06T02:00:00.123456789+14:00": time.Date(2026, 12, 5, 12, 0, 0, 123456789, time.UTC),
		"2026-12-06T02:00:00.5-14:00":         time.Date(2026, 12, 6, 16, 0, 0, 500000000, time.UTC),
	} {
		if got, err := fhirtime.Parse(s); err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("Parse(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
}

// TestPartial: the partial forms' checks.
func TestPartial(t *testing.T) {
	for s, want := range map[string]bool{"2026": true, "0001": true, "0000": false, "202": false, "20261": false, "2o26": false} {
		if fhirtime.IsYear(s) != want {
			t.Errorf("IsYear(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{"2026-12": true, "2026-13": false, "2026-00": false, "2026-1": false, "0000-01": false} {
		if fhirtime.IsYearMonth(s) != want {
			t.Errorf("IsYearMonth(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{"2026-12-06": true, "2026-12-32": false, "2026-12-6": false, "2026-12-06Z": false} {
		if fhirtime.IsDate(s) != want {
			t.Errorf("IsDate(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{"Z": true, "+14:00": true, "-13:59": true, "+14:01": false, "+01": false, "z": false, "+1:00": false} {
		if fhirtime.IsZone(s) != want {
			t.Errorf("IsZone(%q) = %v", s, !want)
		}
	}
}

// FuzzDateTimeForm: the form Parse reads is FHIR's dateTime with
// seconds and a zone, as FHIR's grammar writes it.
func FuzzDateTimeForm(f *testing.F) {
	for _, s := range []string{"2026-12-06T02:00:00Z", "2026-12-06T02:00:00.123456789+14:00", "2026-12-06T02:00:00.1234567891Z",
		"2026-12-06T02:00:00,5Z", "2026-12-06T02:00:00+14:30", "2026-12-06T02:00:00-13:59", "0000-12-31T23:30:00-01:00",
		"1000-01-01T00:00:60Z", "2026-12-06T24:00:00Z", "2026-12-06t02:00:00z", "2026-12-06T2:00:00Z", "2026-12-06T02:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := fhirtime.IsDateTime(s), fhirDateTimeRE.MatchString(s); got != want {
			t.Fatalf("%q: the form check says %v, FHIR's grammar %v", s, got, want)
		}
	})
}

// fhirDateTimeRE is FHIR's dateTime grammar for a date-time with seconds
// and a time zone (the partial forms left out): years 0001 to 9999, a
// fraction of 1 to 9 digits, zones from -14:00 to +14:00.
var fhirDateTimeRE = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])` +
	`T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$`)
