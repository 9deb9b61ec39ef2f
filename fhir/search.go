package fhir

import (
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/fhir/fhirtime"
)

// searchParam is one search parameter a resource type supports. The
// parsers and the CapabilityStatement both read these lists, so what is
// advertised is what is implemented.
type searchParam struct {
	Name   string
	Type   string // FHIR search parameter type
	Doc    string
	Repeat bool // may be given more than once (the conditions all apply)
}

// Paging parameters, accepted by every search.
const (
	defaultCount = 20
	maxCount     = 100
)

var pagingParams = []searchParam{
	{Name: "_count", Type: "number", Doc: "Entries per page: 0 to 100, default 20 (larger values give 100); 0 gives only the total."},
	{Name: "_offset", Type: "number", Doc: "How many matches to skip; the next and previous links carry it."},
}

var userParams = []searchParam{
	{Name: "name", Type: "string", Doc: "Words that must each appear in the name (or the email), without regard to case.", Repeat: true},
	{Name: "email", Type: "token", Doc: "The email address, exactly, without regard to case."},
	{Name: "identifier", Type: "token", Doc: "urn:bedside:email|{email}, or the email alone."},
}

var patientParams = append(slices.Clip(userParams),
	searchParam{Name: "birthdate", Type: "date", Doc: "The birth date, YYYY-MM-DD (no prefix, or eq)."})

var practitionerParams = userParams

var scheduleParams = []searchParam{
	{Name: "actor", Type: "reference", Doc: "Practitioner/{id}: that physician's schedule."},
}

var slotParams = []searchParam{
	{Name: "schedule", Type: "reference", Doc: "Schedule/{id}: the slots of that schedule."},
	{Name: "practitioner", Type: "reference", Doc: "Bedside extension: Practitioner/{id}, the slots of that physician's schedule."},
	{Name: "start", Type: "date", Doc: "Required twice or as one day or instant: a lower bound (ge, gt, or eq) and an upper bound (lt, le, or eq), spanning at most 31 days; a date without a time is a UTC day.", Repeat: true},
	{Name: "status", Type: "token", Doc: "free, busy, or both separated by a comma."},
	{Name: "service-type", Type: "token", Doc: "A visit type code (urn:bedside:visit-type|{code} or {code}); without it, standard visits."},
}

var appointmentParams = []searchParam{
	{Name: "patient", Type: "reference", Doc: "Patient/{id}."},
	{Name: "practitioner", Type: "reference", Doc: "Practitioner/{id}."},
	{Name: "actor", Type: "reference", Doc: "Patient/{id} or Practitioner/{id}."},
	{Name: "date", Type: "date", Doc: "The start: a day or an instant, with prefix eq (default), ge, gt, le or lt; repeat to give a range; a date without a time is a UTC day.", Repeat: true},
	{Name: "status", Type: "token", Doc: "Statuses separated by commas: booked, arrived, fulfilled, cancelled, noshow, entered-in-error."},
}

// query is a checked search request.
type query struct {
	kind   string
	values url.Values // the search parameters, paging left out
	count  int
	offset int
}

// first is the parameter's only value, or "".
func (q query) first(name string) string { return q.values.Get(name) }

// parseQuery checks a search's parameters strictly: an unknown parameter,
// a modifier, an empty value or a repeat of a parameter that may be given
// once is refused with a 400.
func parseQuery(kind string, v url.Values, params []searchParam) (query, error) {
	q := query{kind: kind, values: url.Values{}, count: defaultCount}
	names := make([]string, 0, len(v))
	for name := range v {
		names = append(names, name)
	}
	slices.Sort(names) // report the same problem first every time
	for _, name := range names {
		values := v[name]
		switch name {
		case "_count", "_offset":
			if len(values) != 1 {
				return q, badRequest(codeValue, "%s: give it once", name)
			}
			n, err := strconv.Atoi(values[0])
			if err != nil || n < 0 {
				return q, badRequest(codeValue, "%s: %q is not a whole number of 0 or more", name, values[0])
			}
			if name == "_count" {
				q.count = min(n, maxCount)
			} else {
				q.offset = n
			}
			continue
		}
		i := slices.IndexFunc(params, func(p searchParam) bool { return p.Name == name })
		if i < 0 {
			return q, badRequest(codeNotSupported, "unknown search parameter %q: %s searches support %s", name, kind, paramNames(params))
		}
		if len(values) > 1 && !params[i].Repeat {
			return q, badRequest(codeValue, "%s: give it once (separate several values with commas where the parameter allows)", name)
		}
		for _, value := range values {
			if strings.TrimSpace(value) == "" {
				return q, badRequest(codeValue, "%s: the value is empty", name)
			}
		}
		q.values[name] = values
	}
	return q, nil
}

// paramNames lists the parameters a search accepts, for a diagnostic.
func paramNames(params []searchParam) string {
	var names []string
	for _, p := range append(slices.Clip(params), pagingParams...) {
		names = append(names, p.Name)
	}
	return strings.Join(names, ", ")
}

// parseRef reads a reference search value, "Kind/ID", a bare ID or an
// absolute URL ending in Kind/ID, for one of kinds; it returns the kind
// and the ID.
func parseRef(param, value string, kinds ...string) (string, int64, error) {
	for _, k := range kinds {
		i := strings.LastIndex(value, k+"/")
		if i < 0 || i > 0 && value[i-1] != '/' {
			continue
		}
		if id, ok := parseID(value[i+len(k)+1:]); ok {
			return k, id, nil
		}
	}
	if len(kinds) == 1 {
		if id, ok := parseID(value); ok {
			return kinds[0], id, nil
		}
	}
	want := make([]string, len(kinds))
	for i, k := range kinds {
		want[i] = k + "/{id}"
	}
	return "", 0, badRequest(codeValue, "%s: want %s, got %q", param, strings.Join(want, " or "), value)
}

// parseDeviceRef reads a device search value, Device/{id} or {id}, as
// parseRef does, where the id may be a relayed device's
// ({relay}-{relayed}); relayed is 0 for a device token's.
func parseDeviceRef(value string) (relay, relayed int64, err error) {
	id := value
	if i := strings.LastIndex(value, kindDevice+"/"); i >= 0 && (i == 0 || value[i-1] == '/') {
		id = value[i+len(kindDevice)+1:]
	}
	if relay, relayed, ok := parseDeviceID(id); ok {
		return relay, relayed, nil
	}
	_, relay, err = parseRef("device", value, kindDevice)
	return relay, 0, err
}

// parseID reads a resource ID: a positive decimal number written without
// sign or leading zeros.
func parseID(s string) (int64, bool) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != s {
		return 0, false
	}
	return id, true
}

// bounds is a half-open range of instants; a zero end is unbounded.
type bounds struct {
	from, to time.Time
}

// and narrows b by the condition of one date search value such as
// ge2026-11-25 or lt2026-11-25T14:00:00Z.
func (b *bounds) and(param, raw string) error {
	prefix, value := "eq", raw
	if len(raw) >= 2 && raw[0] >= 'a' && raw[0] <= 'z' && raw[1] >= 'a' && raw[1] <= 'z' {
		prefix, value = raw[:2], raw[2:]
	}
	lo, hi, err := parseDateRange(value)
	if err != nil {
		return badRequest(codeValue, "%s: %q: %v", param, raw, err)
	}
	var from, to time.Time
	switch prefix {
	case "eq":
		from, to = lo, hi
	case "ge":
		from = lo
	case "gt":
		from = hi
	case "lt":
		to = lo
	case "le":
		to = hi
	default:
		return badRequest(codeNotSupported, "%s: prefix %q is not supported; use eq, ge, gt, le or lt", param, prefix)
	}
	if !from.IsZero() && (b.from.IsZero() || from.After(b.from)) {
		b.from = from
	}
	if !to.IsZero() && (b.to.IsZero() || to.Before(b.to)) {
		b.to = to
	}
	return nil
}

// empty reports whether no instant is in b.
func (b bounds) empty() bool {
	return !b.from.IsZero() && !b.to.IsZero() && !b.from.Before(b.to)
}

// dateForms says, in errors, which search dates are read.
const dateForms = "want a year (2026), a month (2026-11), a day (2026-11-25), or a time with minutes " +
	"with its zone (2026-11-25T14:00Z, 2026-11-25T14:00:00.5+01:00): years 0001 to 9999, " +
	"a fraction of 1 to 9 digits after a '.', a zone Z or of at most ±14:00"

// parseDateRange reads a FHIR search date: a year, month or day (in
// UTC), or a dateTime with minutes, or seconds and a fraction, and its
// zone (as FHIR's dateTime, strictly: fhirtime); it returns the span of
// time it stands for, at the precision it is written with.
func parseDateRange(s string) (time.Time, time.Time, error) {
	s = strings.ReplaceAll(s, " ", "+") // a "+" in a query string arrives as a space
	full, precision := s, time.Second
	var next func(time.Time) time.Time
	switch {
	case fhirtime.IsYear(s):
		full, next = s+"-01-01T00:00:00Z", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }
	case fhirtime.IsYearMonth(s):
		full, next = s+"-01T00:00:00Z", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }
	case fhirtime.IsDate(s):
		full, next = s+"T00:00:00Z", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }
	case len(s) > 16 && s[16] != ':' && fhirtime.IsZone(s[16:]):
		// Minutes, as FHIR's search allows: read with :00 seconds.
		full, precision = s[:16]+":00"+s[16:], time.Minute
	case len(s) > 20 && s[19] == '.':
		for _, c := range s[20:] {
			if c < '0' || c > '9' {
				break
			}
			precision /= 10
		}
	}
	t, err := fhirtime.Parse(full)
	if err != nil {
		if fhirtime.IsDateTime(full) {
			// No such day, or beyond the years: the reason, without the
			// quote, which the caller makes of what was sent.
			return time.Time{}, time.Time{}, errors.New(strings.TrimPrefix(err.Error(), strconv.Quote(full)+": "))
		}
		return time.Time{}, time.Time{}, errors.New(dateForms)
	}
	if next != nil {
		return t, next(t), nil
	}
	return t, t.Add(precision), nil
}

// tokens splits a comma-separated token value.
func tokens(value string) []string {
	parts := strings.Split(value, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// errScope reports that a narrowed search let through a record the
// caller may not see; the record was dropped.
var errScope = errors.New("a narrowed search selected a record the caller may not see")

// scanBatch is how many records a filtered search reads at a time.
const scanBatch = 500

// pageOf returns the page of a search that q asks for and how many
// matches there are in all. fetch is the store's paged search; keep is the
// caller's visibility of one record. When exact, the store's query already
// selects only what keep allows, and one page is fetched (keep still
// checks each record, dropping any it refuses and reporting errScope with
// the page); otherwise every match is scanned and filtered.
func pageOf[T any](q query, exact bool, fetch func(limit, offset int) ([]T, int, error), keep func(T) (bool, error)) ([]T, int, error) {
	if exact {
		limit := q.count
		if limit == 0 {
			limit = 1 // the store reads 0 as its default; only the total is wanted
		}
		page, total, err := fetch(limit, q.offset)
		if err != nil {
			return nil, 0, err
		}
		if q.count == 0 {
			page = nil
		}
		var leak error
		out := page[:0:0]
		for _, x := range page {
			ok, err := keep(x)
			if err != nil {
				return nil, 0, err
			}
			if !ok {
				leak = errScope
				total--
				continue
			}
			out = append(out, x)
		}
		return out, total, leak
	}
	var out []T
	kept := 0
	for offset := 0; ; {
		batch, total, err := fetch(scanBatch, offset)
		if err != nil {
			return nil, 0, err
		}
		for _, x := range batch {
			ok, err := keep(x)
			if err != nil {
				return nil, 0, err
			}
			if !ok {
				continue
			}
			if kept >= q.offset && kept < q.offset+q.count {
				out = append(out, x)
			}
			kept++
		}
		offset += len(batch)
		if len(batch) == 0 || offset >= total {
			return out, kept, nil
		}
	}
}

// window is the part of all that q's paging selects.
func window[T any](all []T, q query) []T {
	lo := min(q.offset, len(all))
	hi := min(lo+q.count, len(all))
	return all[lo:hi]
}
