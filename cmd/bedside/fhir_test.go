package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// fhirDo sends one FHIR request with a bearer token and decodes the answer.
func fhirDo(t *testing.T, method, u, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("%s %s: content type %q", method, u, ct)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s %s: %v\n%s", method, u, err, b)
	}
	return resp.StatusCode, v
}

// TestFHIRBookingThroughTheServer: a scheduler's API token from the CLI
// finds Dr Okafor, her free slots and Maria Silva over FHIR, books a slot,
// and the visit is on the web pages with its invite queued.
func TestFHIRBookingThroughTheServer(t *testing.T) {
	ts := startServer(t, nil)
	token := strings.TrimSpace(ts.cli(t, "", "token", "issue", "--email", "scheduler@demo.bedside.test", "--ttl", "1h"))
	base := ts.URL + "/fhir/"
	id := func(bundle map[string]any) string {
		t.Helper()
		entries, _ := bundle["entry"].([]any)
		if len(entries) == 0 {
			t.Fatalf("empty bundle: %v", bundle)
		}
		return entries[0].(map[string]any)["resource"].(map[string]any)["id"].(string)
	}
	status, doc := fhirDo(t, "GET", base+"Practitioner?email=dr.okafor@demo.bedside.test", token, "")
	if status != http.StatusOK {
		t.Fatalf("practitioner search: %d %v", status, doc)
	}
	docID := id(doc)
	_, pat := fhirDo(t, "GET", base+"Patient?name=maria", token, "")
	patID := id(pat)
	from := time.Now().UTC().Add(2 * time.Hour).Truncate(time.Hour)
	q := url.Values{"practitioner": {docID}, "status": {"free"}, "start": {"ge" + from.Format(time.RFC3339), "lt" + from.Add(48*time.Hour).Format(time.RFC3339)}}
	status, slots := fhirDo(t, "GET", base+"Slot?"+q.Encode(), token, "")
	if status != http.StatusOK {
		t.Fatalf("slot search: %d %v", status, slots)
	}
	slotID := id(slots)
	body := fmt.Sprintf(`{"resourceType":"Appointment","status":"booked","slot":[{"reference":"Slot/%s"}],
		"participant":[{"actor":{"reference":"Patient/%s"},"status":"accepted"},{"actor":{"reference":"Practitioner/%s"},"status":"accepted"}]}`, slotID, patID, docID)
	status, appt := fhirDo(t, "POST", base+"Appointment", token, body)
	if status != http.StatusCreated || appt["status"] != "booked" {
		t.Fatalf("book: %d %v", status, appt)
	}
	// The same slot again: taken, as an OperationOutcome.
	status, oo := fhirDo(t, "POST", base+"Appointment", token, body)
	if status != http.StatusConflict || oo["resourceType"] != "OperationOutcome" {
		t.Fatalf("booking a taken slot: %d %v", status, oo)
	}
	// The web shows it, with the patient's invite in the outbox.
	c := client(t)
	signIn(t, c, ts.URL, "scheduler@demo.bedside.test", ts.demoPassword(t, "scheduler@demo.bedside.test"))
	st, page := get(t, c, ts.URL+"/appointments/"+appt["id"].(string))
	if st != http.StatusOK || !strings.Contains(page, "Maria Silva") || !strings.Contains(page, "Your video visit with Dr Ada Okafor") {
		t.Fatalf("visit page after a FHIR booking: %d", st)
	}
	// Without a valid token, nothing.
	if st, _ := fhirDo(t, "GET", base+"Appointment/"+appt["id"].(string), "not-a-token", ""); st != http.StatusUnauthorized {
		t.Errorf("a bad token: %d, want 401", st)
	}
}
