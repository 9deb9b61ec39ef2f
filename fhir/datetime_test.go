package fhir

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// TestStrictDates: every date-time the API reads is a FHIR dateTime as
// FHIR writes it, not whatever time.Parse takes: a comma decimal mark,
// ten fraction digits, a zone beyond ±14:00, a one-digit hour or year
// 0000 are refused with an OperationOutcome naming the parameter or
// element, in searches, bookings and status changes, and nothing is
// stored. The partial forms and prefixes a search supports still work.
func TestStrictDates(t *testing.T) {
	f := newFixture(t)
	search := func(path string) string {
		kind, q, _ := strings.Cut(path, "?")
		name, value, _ := strings.Cut(q, "=")
		return kind + "?" + name + "=" + url.QueryEscape(value)
	}
	for _, c := range []struct{ path, param string }{
		{"Appointment?date=ge2026-11-23T10:00:00,5Z", "date"},
		{"Appointment?date=ge2026-11-23T10:00:00.1234567891Z", "date"},
		{"Appointment?date=lt2026-11-23T10:00:00+14:30", "date"},
		{"Appointment?date=lt2026-11-23T10:00:00-23:00", "date"},
		{"Appointment?date=lt2026-11-23T10:00+15:00", "date"},
		{"Appointment?date=ge2026-11-23T9:00:00Z", "date"},
		{"Appointment?date=ge2026-11-23T9:00Z", "date"},
		{"Appointment?date=ge0000", "date"},
		{"AuditEvent?date=ge0000-11", "date"},
		{"Observation?date=ge0000-11-23", "date"},
		{"Slot?start=ge2026-11-23T09:00:00,0Z", "start"},
		{"Patient?birthdate=0000-01-01", "birthdate"},
	} {
		t.Run(c.path, func(t *testing.T) {
			r := f.do(t, "GET", search(c.path), "admin", "").want(t, http.StatusBadRequest)
			if is := outcome(t, r); is.Code != codeValue || !strings.HasPrefix(is.Diagnostics, c.param+": ") {
				t.Errorf("issue %s %q, want %s naming %s", is.Code, is.Diagnostics, codeValue, c.param)
			}
		})
	}
	for _, path := range []string{
		"Appointment?date=ge2026-11-23T09:00Z", "Appointment?date=2026", "Appointment?date=eq2026-11",
		"Appointment?date=le2026-11-23", "Appointment?date=gt2026-11-23T09:00:00.123456789%2B14:00",
		"Slot?schedule=Schedule/3&start=ge2026-11-23T09:00Z&start=lt2026-11-24",
	} {
		t.Run(path, func(t *testing.T) { f.do(t, "GET", path, "admin", "").want(t, http.StatusOK) })
	}
	r := f.do(t, "GET", "Appointment?date=sa2026-11-23", "admin", "").want(t, http.StatusBadRequest)
	if is := outcome(t, r); is.Code != codeNotSupported || !strings.Contains(is.Diagnostics, `date: prefix "sa"`) {
		t.Errorf("an unsupported prefix: issue %s %q", is.Code, is.Diagnostics)
	}

	// The start of a free slot, 2026-11-24T09:00:00Z, and of appt1,
	// 2026-11-23T10:00:00Z, each written loosely.
	free := graceSlot(f, 1, 9, 0)
	for _, start := range []string{"2026-11-24T09:00:00,0Z", "2026-11-24T09:00:00.0000000000Z", "2026-11-24T9:00:00Z", "2026-11-24T23:30:00+14:30"} {
		t.Run("book "+start, func(t *testing.T) {
			body := strings.Replace(bookBody(free, f.ada.ID, f.grace.ID), `"status"`, fmt.Sprintf(`"start":%q,"status"`, start), 1)
			r := f.do(t, "POST", "Appointment", "scheduler", body).want(t, http.StatusUnprocessableEntity)
			if is := outcome(t, r); is.Code != codeValue || !strings.HasPrefix(is.Diagnostics, "start: ") || !strings.Contains(is.Diagnostics, "FHIR dateTime") {
				t.Errorf("issue %s %q", is.Code, is.Diagnostics)
			}
		})
	}
	for _, start := range []string{"2026-11-23T10:00:00,0Z", "2026-11-23T10:00:00.0000000000Z", "2026-11-24T00:30:00+14:30"} {
		t.Run("update "+start, func(t *testing.T) {
			body := fmt.Sprintf(`{"resourceType":"Appointment","id":"%d","status":"cancelled","start":%q}`, f.appt1.ID, start)
			r := f.do(t, "PUT", fmt.Sprintf("Appointment/%d", f.appt1.ID), "admin", body).want(t, http.StatusUnprocessableEntity)
			if is := outcome(t, r); is.Code != codeValue || !strings.HasPrefix(is.Diagnostics, "start: ") || !strings.Contains(is.Diagnostics, "FHIR dateTime") {
				t.Errorf("issue %s %q", is.Code, is.Diagnostics)
			}
		})
	}
	_, total, err := f.st.SearchAppointments(context.Background(), store.AppointmentQuery{})
	if err != nil || total != 2 {
		t.Errorf("%d appointments stored (%v), want the fixture's 2", total, err)
	}
	if a, err := f.st.AppointmentByID(context.Background(), f.appt1.ID); err != nil || a.Status != scheduling.StatusBooked {
		t.Errorf("appt1 is %q (%v), want it still booked", a.Status, err)
	}
}
