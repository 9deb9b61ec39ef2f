package vitals

import (
	"time"

	"github.com/bedside-health/bedside/fhir/fhirtime"
)

// parseDateTime reads s, a date-time with seconds and a time zone as both
// FHIR's dateTime and RFC 3339 write it, in UTC, as the FHIR API does
// (fhirtime.Parse); the error names field and says what form is read.
//
// It stays out of header's frame, which a device reader's stack holds.
//
//go:noinline
func parseDateTime(field, s string) (time.Time, error) {
	when, err := fhirtime.Parse(s)
	if err != nil {
		return time.Time{}, fieldErr(field, "%v", err)
	}
	return when, nil
}
