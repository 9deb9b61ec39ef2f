package fhir

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/bedside-health/bedside/scheduling"
)

// FuzzAppointmentBody feeds the booking and status-change body decoder
// arbitrary bytes. It must never panic; every refusal must be a 400 or 422
// OperationOutcome; and what it accepts must read the same after being
// written out again. Seeds are in testdata/fuzz/FuzzAppointmentBody.
func FuzzAppointmentBody(f *testing.F) {
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	cur := scheduling.Appointment{ID: 7, PhysicianID: 3, PatientID: 5, Start: start, End: start.Add(30 * time.Minute),
		Status: scheduling.StatusBooked, VisitType: "follow-up", CreatedAt: start.Add(-time.Hour), UpdatedAt: start.Add(-time.Hour)}
	n := &names{cache: map[int64]string{3: "Grace Hopper", 5: "Ada Lovelace"}}
	curRes, err := appointmentResource(f.Context(), n, cur)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(bookBody("3-1795428000", 5, 3)))
	f.Fuzz(func(t *testing.T, body []byte) {
		refused := func(err error, statuses ...int) bool {
			t.Helper()
			if err == nil {
				return false
			}
			var ae *apiError
			if !errors.As(err, &ae) {
				t.Fatalf("%v is not an answer", err)
			}
			for _, s := range statuses {
				if ae.status == s {
					if ae.diagnostics == "" || ae.code == "" {
						t.Fatalf("answer without code or diagnostics: %+v", ae)
					}
					return true
				}
			}
			t.Fatalf("status %d (%v), want one of %v", ae.status, ae, statuses)
			return true
		}
		res, err := decodeAppointment(body)
		if refused(err, http.StatusBadRequest) {
			return
		}
		again, err := json.Marshal(res)
		if err != nil {
			t.Fatalf("encode %+v: %v", res, err)
		}
		res2, err := decodeAppointment(again)
		if err != nil {
			t.Fatalf("%s decoded, but not once written out again as %s: %v", body, again, err)
		}
		bk, err := parseBooking(res)
		if !refused(err, http.StatusUnprocessableEntity) {
			if bk.physicianID != bk.slot.physician || bk.patientID <= 0 {
				t.Fatalf("accepted booking %+v", bk)
			}
			if id, ok := parseSlotID(bk.slot.String()); !ok || !reflect.DeepEqual(id, bk.slot) {
				t.Fatalf("slot id %q does not read back", bk.slot)
			}
			bk2, err := parseBooking(res2)
			if err != nil || !reflect.DeepEqual(bk, bk2) {
				t.Fatalf("booking %+v read again as %+v (%v)", bk, bk2, err)
			}
		}
		if ch, err := parseStatusChange(res, cur); !refused(err, http.StatusBadRequest, http.StatusUnprocessableEntity) {
			if ch.status != cur.Status && !ch.status.Valid() || len(ch.reason) > maxReason {
				t.Fatalf("accepted status change %+v", ch)
			}
		}
		refused(sameAppointment(res, curRes), http.StatusUnprocessableEntity)
	})
}
