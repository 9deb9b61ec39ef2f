package fhir

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

func hrBody(subject string, v float64) string {
	s := ""
	if subject != "" {
		s = `"subject":{"reference":"` + subject + `"},`
	}
	return `{"resourceType":"Observation","status":"final",` + s +
		`"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"effectiveDateTime":"2026-11-21T08:00:00Z",` +
		fmt.Sprintf(`"valueQuantity":{"value":%g,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`, v)
}

const bpBody = `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
"effectiveDateTime":"2026-11-21T08:05:00Z","component":[
{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":131,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":86,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`

// post sends an Observation with a raw bearer token.
func (f *fixture) post(t *testing.T, token, body string) response {
	t.Helper()
	req := f.request(t, "POST", "Observation", body)
	req.Header.Set("Authorization", "Bearer "+token)
	return f.send(t, req)
}

func (f *fixture) stored(t *testing.T, patient int64) []store.Observation {
	t.Helper()
	obs, err := f.st.ObservationsBetween(context.Background(), patient, time.Time{}, monday.Add(100*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return obs
}

func TestCreateObservation(t *testing.T) {
	f := newFixture(t)
	s := seedVitals(t, f)
	before := len(f.stored(t, f.ada.ID))

	// A device posts for its patient, naming her or not.
	r := f.post(t, s.devToken, hrBody("", 77)).want(t, http.StatusCreated)
	var o Observation
	r.decode(t, &o)
	if o.Device == nil || o.Device.Reference != fmt.Sprint("Device/", s.dev.ID) || o.ValueQuantity.Value != 77 || o.Subject.Reference != fmt.Sprint("Patient/", f.ada.ID) {
		t.Errorf("created %s", r.body)
	}
	if loc := r.header.Get("Location"); loc != baseURL+"/fhir/Observation/"+o.ID {
		t.Errorf("Location %q for id %s", loc, o.ID)
	}
	f.post(t, s.devToken, hrBody(fmt.Sprint(baseURL, "/fhir/Patient/", f.ada.ID), 78)).want(t, http.StatusCreated)
	// A panel is stored as its two readings and answered as the panel.
	r = f.post(t, s.devToken, bpBody).want(t, http.StatusCreated)
	r.decode(t, &o)
	if o.Code.Coding[0].Code != "85354-9" || len(o.Component) != 2 || o.Component[1].ValueQuantity.Value != 86 {
		t.Errorf("panel answered as %s", r.body)
	}
	// The patient enters a reading by hand with her API token.
	r = f.do(t, "POST", "Observation", "patient", hrBody("", 66)).want(t, http.StatusCreated)
	var entered Observation
	r.decode(t, &entered)
	if entered.Device != nil || entered.Method == nil {
		t.Errorf("a hand-entered reading: %s", r.body)
	}
	// Her physician may enter one for her; naming her is required.
	f.do(t, "POST", "Observation", "physician", hrBody(fmt.Sprint("Patient/", f.ada.ID), 65)).want(t, http.StatusCreated)
	after := len(f.stored(t, f.ada.ID))
	if after != before+6 {
		t.Fatalf("%d readings stored, want %d", after-before, 6)
	}

	// Refusals store nothing.
	for _, tc := range []struct {
		name, token, body string
		status            int
		diag              string
	}{
		{"impossible value", s.devToken, hrBody("", 400), 422, "observation.valueQuantity"},
		{"waveform", s.devToken, `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"urn:oid:2.16.840.1.113883.6.24","code":"131328"}]},"effectiveDateTime":"2026-11-21T08:00:00Z","valueSampledData":{"origin":{"value":0,"unit":"mV"},"period":4,"factor":1,"dimensions":1,"data":"1 2 3"}}`, 422, "valueSampledData"},
		{"device for another patient", s.devToken, hrBody(fmt.Sprint("Patient/", f.charles.ID), 70), 403, "own patient"},
		{"not JSON", s.devToken, `{"resourceType":`, 422, "observation"},
		{"scheduler", f.tokens["scheduler"], hrBody(fmt.Sprint("Patient/", f.ada.ID), 70), 403, "scheduler"},
		{"admin", f.tokens["admin"], hrBody(fmt.Sprint("Patient/", f.ada.ID), 70), 403, "admin"},
		{"another physician", f.tokens["other-physician"], hrBody(fmt.Sprint("Patient/", f.ada.ID), 70), 404, "Observation"},
		{"physician without subject", f.tokens["physician"], hrBody("", 70), 422, "subject.reference"},
		{"another patient", f.tokens["other-patient"], hrBody(fmt.Sprint("Patient/", f.ada.ID), 70), 404, ""},
		{"unknown token", "nope", hrBody("", 70), 401, "neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.post(t, tc.token, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if d := outcome(t, r).Diagnostics; !strings.Contains(d, tc.diag) {
				t.Errorf("%q, want it to mention %q", d, tc.diag)
			}
		})
	}
	if n := len(f.stored(t, f.ada.ID)); n != after {
		t.Errorf("refused posts stored %d readings", n-after)
	}
	// A revoked device token is refused.
	if err := f.st.RevokeCredential(context.Background(), s.dev.ID, now); err != nil {
		t.Fatal(err)
	}
	f.post(t, s.devToken, hrBody("", 70)).want(t, http.StatusUnauthorized)
	// The device's socket sequence is untouched by posts.
	d, err := f.st.CredentialByID(context.Background(), store.CredentialDevice, s.dev.ID)
	if err != nil || d.LastSeq != 7 {
		t.Errorf("device last seq %d, %v; want 7", d.LastSeq, err)
	}
}
