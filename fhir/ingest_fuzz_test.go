package fhir

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bedside-health/bedside/store"
)

// FuzzObservationPost posts arbitrary bodies to POST /fhir/Observation as
// a device. Whatever the body, the answer is 201 with the stored
// Observation or an OperationOutcome (never a server error); a refusal
// stores nothing, and a 201 stores the one reading (or the panel's two)
// for the device's own patient. Seeds are in
// testdata/fuzz/FuzzObservationPost.
func FuzzObservationPost(f *testing.F) {
	fx := newFixture(f)
	s := seedVitals(f, fx)
	f.Add([]byte(hrBody("", 70)))
	f.Add([]byte(bpBody))
	count := func() int {
		_, n, err := fx.st.SearchObservations(context.Background(), store.ObservationQuery{Limit: 1})
		if err != nil {
			f.Fatal(err)
		}
		return n
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		before := count()
		req := httptest.NewRequest(http.MethodPost, "/fhir/Observation", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set("Authorization", "Bearer "+s.devToken)
		rec := httptest.NewRecorder()
		fx.srv.Config.Handler.ServeHTTP(rec, req)
		var res struct {
			ResourceType string
			Subject      struct{ Reference string }
			Component    []json.RawMessage
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
			t.Fatalf("%d, body not JSON: %v", rec.Code, err)
		}
		added := count() - before
		switch {
		case rec.Code >= 500:
			t.Fatalf("%s: %d %s", body, rec.Code, rec.Body)
		case rec.Code == http.StatusCreated:
			want := 1
			if len(res.Component) > 0 {
				want = 2
			}
			if res.ResourceType != kindObservation || res.Subject.Reference != ref(kindPatient, fx.ada.ID) || added != want {
				t.Fatalf("%s: stored %d, answered %s", body, added, rec.Body)
			}
		case res.ResourceType != "OperationOutcome" || added != 0:
			t.Fatalf("%s: %d with a %s, %d stored", body, rec.Code, res.ResourceType, added)
		}
	})
}
