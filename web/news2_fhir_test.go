package web

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/store"
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

// postObservation posts a pulse reading as token for the patient and
// wants it created.
func postObservation(t *testing.T, f *fixture, token string, patient int64, pulse int) {
	t.Helper()
	body := `{"resourceType":"Observation","status":"final",
"subject":{"reference":"Patient/` + strconv.FormatInt(patient, 10) + `"},
"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
"effectiveDateTime":"` + time.Now().UTC().Format(time.RFC3339Nano) + `",
"valueQuantity":{"value":` + strconv.Itoa(pulse) + `,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`
	req, err := http.NewRequest("POST", f.srv.URL+"/fhir/Observation", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("post observation: %d", resp.StatusCode)
	}
}

// awaitPulseSource reads the viewer's messages until a NEWS2 scores the
// pulse 3 and returns where the pulse came from.
func awaitPulseSource(t *testing.T, viewer *viewerClient) string {
	t.Helper()
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
			if p.Param == "pulse" && p.Score == 3 {
				return p.Source
			}
		}
	}
}

// TestPostedByPhysicianScoredEntered: a physician's API token posting a
// pulse they took by hand is scored in NEWS2 as entered, not measured.
func TestPostedByPhysicianScoredEntered(t *testing.T) {
	f := newFixture(t)
	viewer, status := dialVitals(t, f, "doc@example.org")
	if viewer == nil {
		t.Fatalf("physician's vitals socket refused: %d", status)
	}
	tok, hash := auth.NewToken()
	if _, err := f.st.CreateCredential(t.Context(), store.Credential{Kind: store.CredentialAPI, TokenHash: hash, UserID: f.doc.ID,
		ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	postObservation(t, f, tok, f.pat.ID, 131)
	if src := awaitPulseSource(t, viewer); src != "entered" {
		t.Fatalf("physician's posted pulse scored as %q, want entered", src)
	}
}
