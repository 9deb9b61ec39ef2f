package fhir

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/sqlite"
)

// bookBody is a booking of a slot of a physician for a patient.
func bookBody(slot string, patient, physician int64) string {
	return fmt.Sprintf(`{"resourceType":"Appointment","status":"booked","slot":[{"reference":"Slot/%s"}],
		"participant":[{"actor":{"reference":"Patient/%d"},"status":"accepted"},{"actor":{"reference":"Practitioner/%d"},"status":"accepted"}]}`,
		slot, patient, physician)
}

// graceSlot is the ID of Grace's standard slot at hh:mm UTC on a day after monday.
func graceSlot(f *fixture, day, hh, mm int) string {
	return slotID{f.grace.ID, monday.AddDate(0, 0, day).Add(time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute), ""}.String()
}

func TestOutcomes(t *testing.T) {
	f := newFixture(t)
	free := graceSlot(f, 1, 9, 0)
	revoked := f.token(t, f.scheduler.ID, time.Time{})
	cred, err := f.st.CredentialByHash(context.Background(), store.CredentialAPI, hashOf(revoked))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.RevokeCredential(context.Background(), cred.ID, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	f.tokens["revoked"] = revoked
	f.tokens["expired"] = f.token(t, f.scheduler.ID, now)
	f.tokens["unknown"] = "not-a-token"
	f.tokens["live"] = f.token(t, f.scheduler.ID, now.Add(time.Second))

	for _, tc := range []struct {
		name         string
		method, path string
		role, body   string
		contentType  string // for the body; application/fhir+json if empty
		status       int
		code         string
		diagnostics  string // a part of the diagnostics
	}{
		{"bad JSON", "POST", "Appointment", "scheduler", `{"resourceType":`, "", 400, codeInvalid, "not valid JSON"},
		{"trailing data", "POST", "Appointment", "scheduler", bookBody(free, f.ada.ID, f.grace.ID) + "{}", "", 400, codeInvalid, "not valid JSON"},
		{"wrong JSON type", "POST", "Appointment", "scheduler", `{"resourceType":"Appointment","status":1}`, "", 400, codeInvalid, "status: want a JSON string"},
		{"unknown element", "POST", "Appointment", "scheduler", `{"resourceType":"Appointment","comment":"x"}`, "", 400, codeInvalid, `unknown element "comment"`},
		{"wrong resourceType", "POST", "Appointment", "scheduler", `{"resourceType":"Patient"}`, "", 400, codeInvalid, `resourceType: want Appointment, got "Patient"`},
		{"not booked", "POST", "Appointment", "scheduler", strings.Replace(bookBody(free, f.ada.ID, f.grace.ID), `"booked"`, `"proposed"`, 1), "", 422, codeValue, "status: a new appointment must be booked"},
		{"missing slot", "POST", "Appointment", "scheduler", `{"resourceType":"Appointment","status":"booked"}`, "", 422, codeRequired, "slot: missing"},
		{"missing participant", "POST", "Appointment", "scheduler", fmt.Sprintf(`{"resourceType":"Appointment","status":"booked","slot":[{"reference":"Slot/%s"}]}`, free), "", 422, codeRequired, "participant: missing"},
		{"no patient", "POST", "Appointment", "scheduler", fmt.Sprintf(`{"resourceType":"Appointment","status":"booked","slot":[{"reference":"Slot/%s"}],"participant":[{"actor":{"reference":"Practitioner/%d"}}]}`, free, f.grace.ID), "", 422, codeRequired, "participant: no Patient"},
		{"malformed slot id", "POST", "Appointment", "scheduler", bookBody("3-soon", f.ada.ID, f.grace.ID), "", 422, codeValue, "slot[0].reference"},
		{"slot of another practitioner", "POST", "Appointment", "scheduler", bookBody(free, f.ada.ID, f.alan.ID), "", 422, codeValue, "participant[1].actor.reference: Practitioner/4 is not the practitioner"},
		{"unknown patient", "POST", "Appointment", "scheduler", bookBody(free, 999, f.grace.ID), "", 422, codeValue, "participant[0].actor.reference: Patient/999 is not known"},
		{"physician as patient", "POST", "Appointment", "scheduler", bookBody(free, f.alan.ID, f.grace.ID), "", 422, codeValue, "Patient/4 is not known"},
		{"slot in the past", "POST", "Appointment", "scheduler", bookBody(slotID{f.grace.ID, monday.AddDate(0, 0, -7).Add(9 * time.Hour), ""}.String(), f.ada.ID, f.grace.ID), "", 422, codeProcessing, "has passed"},
		{"slot too soon", "POST", "Appointment", "scheduler", bookBody(slotID{f.grace.ID, now.Add(30 * time.Minute), ""}.String(), f.ada.ID, f.grace.ID), "", 422, codeProcessing, "too soon"},
		{"slot too far", "POST", "Appointment", "scheduler", bookBody(slotID{f.grace.ID, monday.AddDate(0, 3, 0).Add(9 * time.Hour), ""}.String(), f.ada.ID, f.grace.ID), "", 422, codeProcessing, "too far"},
		{"not on the grid", "POST", "Appointment", "scheduler", bookBody(graceSlot(f, 1, 9, 10), f.ada.ID, f.grace.ID), "", 422, codeValue, "is not a slot of Schedule/3"},
		{"unknown visit type", "POST", "Appointment", "scheduler", bookBody(free+"-surgery", f.ada.ID, f.grace.ID), "", 422, codeValue, `no visit type "surgery"`},
		{"wrong start", "POST", "Appointment", "scheduler", strings.Replace(bookBody(free, f.ada.ID, f.grace.ID), `"status"`, `"start":"2026-11-24T10:00:00Z","status"`, 1), "", 422, codeValue, "start: 2026-11-24T10:00:00Z is not the start of the slot"},
		{"busy slot", "POST", "Appointment", "scheduler", bookBody(slotID{f.grace.ID, f.appt1.Start, ""}.String(), f.ada.ID, f.grace.ID), "", 409, codeConflict, "is busy"},
		{"patient books", "POST", "Appointment", "patient", bookBody(free, f.ada.ID, f.grace.ID), "", 403, codeForbidden, "a patient may not book"},
		{"wrong content type", "POST", "Appointment", "scheduler", bookBody(free, f.ada.ID, f.grace.ID), "text/plain", 415, codeNotSupported, `Content-Type "text/plain"`},
		{"wrong charset", "POST", "Appointment", "scheduler", bookBody(free, f.ada.ID, f.grace.ID), "application/json; charset=latin1", 415, codeNotSupported, "charset"},
		{"oversized body", "POST", "Appointment", "scheduler", `{"resourceType":"Appointment","text":"` + strings.Repeat("x", 70<<10) + `"}`, "", 413, codeTooCostly, "larger than 64 KiB"},
		{"no token", "GET", "Patient", "", "", "", 401, codeLogin, "no bearer token"},
		{"unknown token", "GET", "Patient", "unknown", "", "", 401, codeLogin, "not a known API token"},
		{"revoked token", "GET", "Patient", "revoked", "", "", 401, codeLogin, "revoked"},
		{"expired token", "GET", "Patient", "expired", "", "", 401, codeLogin, "expired"},
		{"unknown search parameter", "GET", "Patient?_sort=name", "admin", "", "", 400, codeNotSupported, `unknown search parameter "_sort"`},
		{"modifier", "GET", "Patient?name:exact=Ada", "admin", "", "", 400, codeNotSupported, `"name:exact"`},
		{"repeated parameter", "GET", "Patient?email=a@b&email=c@d", "admin", "", "", 400, codeValue, "email: give it once"},
		{"bad _count", "GET", "Patient?_count=-1", "admin", "", "", 400, codeValue, "_count"},
		{"bad birthdate", "GET", "Patient?birthdate=10/12/1990", "admin", "", "", 400, codeValue, "birthdate"},
		{"birthdate prefix", "GET", "Patient?birthdate=ge1990-01-01", "admin", "", "", 400, codeNotSupported, "birthdate"},
		{"bad date", "GET", "Appointment?date=tomorrow", "admin", "", "", 400, codeValue, "date"},
		{"date without zone", "GET", "Appointment?date=ge2026-11-23T10:00:00", "admin", "", "", 400, codeValue, "with its zone"},
		{"date prefix", "GET", "Appointment?date=ap2026-11-23", "admin", "", "", 400, codeNotSupported, `prefix "ap"`},
		{"bad status", "GET", "Appointment?status=booked,pending", "admin", "", "", 400, codeValue, `status: "pending"`},
		{"bad actor", "GET", "Appointment?actor=5", "admin", "", "", 400, codeValue, "actor: want Patient/{id} or Practitioner/{id}"},
		{"zero id", "GET", "Appointment?patient=Patient/0", "admin", "", "", 400, codeValue, "patient"},
		{"slot range missing", "GET", "Slot?start=ge2026-11-23", "patient", "", "", 400, codeRequired, "start: give the range"},
		{"slot range too wide", "GET", "Slot?start=ge2026-11-23&start=lt2027-01-01", "patient", "", "", 400, codeTooCostly, "longer than 31 days"},
		{"bad slot status", "GET", "Slot?start=2026-11-23&status=busy-tentative", "patient", "", "", 400, codeValue, "status"},
		{"unknown appointment", "GET", "Appointment/999", "admin", "", "", 404, codeNotFound, "Appointment/999 is not known"},
		{"non-numeric id", "GET", "Patient/ada", "admin", "", "", 404, codeNotFound, "Patient/ada is not known"},
		{"unknown slot", "GET", "Slot/" + graceSlot(f, 1, 9, 10), "admin", "", "", 404, codeNotFound, "Slot/"},
		{"past slot", "GET", "Slot/" + slotID{f.grace.ID, monday.AddDate(0, 0, -7).Add(9 * time.Hour), ""}.String(), "admin", "", "", 404, codeNotFound, "Slot/"},
		{"unknown schedule", "GET", "Schedule/" + fmt.Sprint(f.ada.ID), "admin", "", "", 404, codeNotFound, "Schedule/5"},
		{"unknown type", "GET", "MedicationRequest", "admin", "", "", 404, codeNotFound, "/MedicationRequest is not a path"},
		{"trailing slash", "GET", "Patient/", "admin", "", "", 404, codeNotFound, "is not a path"},
		{"method not allowed", "DELETE", "Appointment/1", "admin", "", "", 405, codeNotSupported, "DELETE /Appointment/1 is not supported"},
		{"update of a patient", "PUT", "Patient/5", "admin", `{}`, "", 405, codeNotSupported, "takes GET"},
		{"update without id", "PUT", "Appointment/1", "admin", `{"resourceType":"Appointment","status":"arrived"}`, "", 400, codeRequired, "id: missing"},
		{"update of another id", "PUT", "Appointment/1", "admin", `{"resourceType":"Appointment","id":"2","status":"arrived"}`, "", 400, codeInvalid, `id: "2" does not match`},
		{"update to an unknown status", "PUT", "Appointment/1", "admin", `{"resourceType":"Appointment","id":"1","status":"waitlist"}`, "", 422, codeValue, `status: "waitlist" cannot be set here`},
		{"update of the start", "PUT", "Appointment/1", "admin", `{"resourceType":"Appointment","id":"1","status":"cancelled","start":"2026-11-23T11:00:00Z"}`, "", 422, codeValue, "start: only status"},
		{"update of a participant", "PUT", "Appointment/1", "admin", `{"resourceType":"Appointment","id":"1","status":"cancelled","participant":[{"actor":{"reference":"Patient/6"}},{"actor":{"reference":"Practitioner/3"}}]}`, "", 422, codeValue, "participant: only status"},
		{"reason without cancelling", "PUT", "Appointment/1", "admin", `{"resourceType":"Appointment","id":"1","status":"arrived","cancelationReason":{"text":"ill"}}`, "", 422, codeValue, "cancelationReason"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := f.request(t, tc.method, tc.path, tc.body)
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			if tc.role != "" {
				req.Header.Set("Authorization", "Bearer "+f.tokens[tc.role])
			}
			r := f.send(t, req).want(t, tc.status)
			is := outcome(t, r)
			if is.Code != tc.code || !strings.Contains(is.Diagnostics, tc.diagnostics) {
				t.Errorf("issue %s %q; want %s containing %q", is.Code, is.Diagnostics, tc.code, tc.diagnostics)
			}
			challenge := r.header.Get("WWW-Authenticate")
			if (tc.status == 401) != strings.HasPrefix(challenge, "Bearer") {
				t.Errorf("WWW-Authenticate %q with status %d", challenge, tc.status)
			}
			if tc.status == 405 && r.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
	t.Run("live token", func(t *testing.T) {
		f.do(t, "GET", "Patient", "live", "").want(t, http.StatusOK)
	})
	t.Run("no appointment was stored", func(t *testing.T) {
		_, total, err := f.st.SearchAppointments(context.Background(), store.AppointmentQuery{})
		if err != nil || total != 2 {
			t.Errorf("%d appointments stored (%v), want the fixture's 2", total, err)
		}
	})
}

// failingStore fails every appointment search, as a broken database would.
type failingStore struct{ *sqlite.DB }

func (failingStore) SearchAppointments(context.Context, store.AppointmentQuery) ([]scheduling.Appointment, int, error) {
	return nil, 0, errors.New("disk I/O error")
}

func TestServerError(t *testing.T) {
	f := newFixtureWith(t, func(db *sqlite.DB) Store { return failingStore{db} })
	r := f.do(t, "GET", "Appointment", "admin", "").want(t, http.StatusInternalServerError)
	if is := outcome(t, r); is.Code != codeException || strings.Contains(is.Diagnostics, "disk") {
		t.Errorf("issue %s %q; want exception without the cause", is.Code, is.Diagnostics)
	}
}
