package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPostedObservationReachesViewers: a reading a device hub posts to
// POST /fhir/Observation reaches the physician's vitals socket and the
// patient's NEWS2, as one sent over the device socket does.
func TestPostedObservationReachesViewers(t *testing.T) {
	f := newFixture(t)
	viewer, status := dialVitals(t, f, "doc@example.org")
	if viewer == nil {
		t.Fatalf("physician's vitals socket refused: %d", status)
	}
	body := `{"resourceType":"Observation","status":"final",
"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
"effectiveDateTime":"` + time.Now().UTC().Format(time.RFC3339Nano) + `",
"valueQuantity":{"value":131,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`
	req, err := http.NewRequest("POST", f.srv.URL+"/fhir/Observation", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.devToken)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("post observation: %d", resp.StatusCode)
	}
	if r := nextReading(t, viewer); r.Code != "8867-4" || r.Value != 131 || r.Unit != "/min" {
		t.Fatalf("viewer got %+v, want 8867-4 131 /min", r)
	}
	// A pulse of 131 scores 3: the NEWS2 monitor saw the reading.
	for {
		var m struct {
			Type   string
			Params []struct {
				Param  string
				Score  int
				Source string
			}
		}
		if err := json.Unmarshal(viewer.next(t), &m); err != nil {
			t.Fatal(err)
		}
		if m.Type != "news2" {
			continue
		}
		for _, p := range m.Params {
			if p.Param == "pulse" && p.Source == "measured" && p.Score == 3 {
				return
			}
		}
	}
}
