package fhir

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// FuzzSearch sends arbitrary query strings to every search, as a patient
// and as an admin. Whatever the query, the answer is a searchset Bundle or
// an OperationOutcome, never a server error; and a patient's answer holds
// only their own records, so no parameter, however mangled, lets one
// patient read another's.
func FuzzSearch(f *testing.F) {
	fx := newFixture(f)
	seedVitals(f, fx)
	for _, q := range []string{
		"patient=Patient/5", "practitioner=Practitioner/3&date=ge2026-11-23&date=lt2026-11-30",
		"actor=Patient/6&status=booked,cancelled", "_count=1&_offset=1", "date=2026-11-23T10:00:00Z",
		"schedule=Schedule/3&start=ge2026-11-23&start=lt2026-11-24&status=free",
		"name=ada&birthdate=1990-12-10", "identifier=urn:bedside:email|ada@example.org",
		"agent=6&action=R", "patient=Patient/%00", "_count=-1", "date=gt", "patient:missing=true",
		"patient=Patient/6&code=85354-9", "device=Device/7&date=ge2026-11-23", "code=http://loinc.org|8867-4,9279-1",
	} {
		f.Add(q)
	}
	ada := "Patient/" + strconv.FormatInt(fx.ada.ID, 10)
	kinds := []string{kindAppointment, kindSlot, kindSchedule, kindPatient, kindPractitioner, kindAuditEvent, kindObservation, kindEncounter, kindDevice}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, kind := range kinds {
			for _, role := range []string{"patient", "admin"} {
				// Straight to the handler: a query no HTTP client would
				// send still reaches it, as it may through a proxy.
				req := httptest.NewRequest(http.MethodGet, "/fhir/"+kind, nil)
				req.URL.RawQuery = raw
				req.Header.Set("Authorization", "Bearer "+fx.tokens[role])
				rec := httptest.NewRecorder()
				fx.srv.Config.Handler.ServeHTTP(rec, req)
				res := rec.Result()
				var b struct {
					ResourceType string `json:"resourceType"`
					Type         string `json:"type"`
					Entry        []struct {
						Resource struct {
							ResourceType string `json:"resourceType"`
							ID           string `json:"id"`
							Subject      struct {
								Reference string `json:"reference"`
							} `json:"subject"`
							Patient struct {
								Reference string `json:"reference"`
							} `json:"patient"`
							Participant []struct {
								Actor struct {
									Reference string `json:"reference"`
								} `json:"actor"`
							} `json:"participant"`
						} `json:"resource"`
					} `json:"entry"`
				}
				err := json.NewDecoder(res.Body).Decode(&b)
				switch {
				case err != nil:
					t.Fatalf("%s?%s as %s: %d, body not JSON: %v", kind, raw, role, res.StatusCode, err)
				case res.StatusCode >= 500:
					t.Fatalf("%s?%s as %s: %d", kind, raw, role, res.StatusCode)
				case res.StatusCode == http.StatusOK && (b.ResourceType != "Bundle" || b.Type != "searchset"):
					t.Fatalf("%s?%s as %s: 200 with a %s %s", kind, raw, role, b.Type, b.ResourceType)
				case res.StatusCode != http.StatusOK && b.ResourceType != "OperationOutcome":
					t.Fatalf("%s?%s as %s: %d with a %s", kind, raw, role, res.StatusCode, b.ResourceType)
				}
				if role != "patient" {
					continue
				}
				for _, e := range b.Entry {
					r := e.Resource
					switch r.ResourceType {
					case kindPatient:
						if r.ResourceType+"/"+r.ID != ada {
							t.Fatalf("%s?%s: a patient was shown %s/%s", kind, raw, r.ResourceType, r.ID)
						}
					case kindAppointment:
						mine := false
						for _, p := range r.Participant {
							mine = mine || p.Actor.Reference == ada
						}
						if !mine {
							t.Fatalf("%s?%s: a patient was shown Appointment/%s, not theirs", kind, raw, r.ID)
						}
					case kindObservation, kindEncounter:
						if r.Subject.Reference != ada {
							t.Fatalf("%s?%s: a patient was shown %s/%s of %s", kind, raw, r.ResourceType, r.ID, r.Subject.Reference)
						}
					case kindDevice:
						if r.Patient.Reference != ada {
							t.Fatalf("%s?%s: a patient was shown Device/%s of %s", kind, raw, r.ID, r.Patient.Reference)
						}
					case kindAuditEvent:
						t.Fatalf("%s?%s: a patient was shown the audit trail", kind, raw)
					}
				}
			}
		}
	})
}
