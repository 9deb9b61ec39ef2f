package fhir

import (
	"fmt"
	"net/http"
	"testing"
)

func TestGolden(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		file, path, role string
		status           int
	}{
		{"capability.json", "metadata", "", http.StatusOK},
		{"patient.json", fmt.Sprint("Patient/", f.ada.ID), "scheduler", http.StatusOK},
		{"practitioner.json", fmt.Sprint("Practitioner/", f.grace.ID), "patient", http.StatusOK},
		{"schedule.json", fmt.Sprint("Schedule/", f.grace.ID), "patient", http.StatusOK},
		{"slot-bundle.json", fmt.Sprintf("Slot?schedule=Schedule/%d&start=ge2026-11-23&start=lt2026-11-24&_count=3&_offset=1", f.grace.ID), "patient", http.StatusOK},
		{"appointment.json", fmt.Sprint("Appointment/", f.appt1.ID), "physician", http.StatusOK},
		{"outcome.json", "Appointment?patient=Patient/x", "admin", http.StatusBadRequest},
	} {
		t.Run(tc.file, func(t *testing.T) {
			r := f.do(t, "GET", tc.path, tc.role, "").want(t, tc.status)
			golden(t, tc.file, r.body)
		})
	}
}
