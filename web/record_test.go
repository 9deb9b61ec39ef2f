package web

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// holdVisit marks the fixture's visit held (arrived 20 minutes ago, ended
// 2 minutes ago) and stores readings: two during it (one flagged), one at
// home two days before, and a device connecting during it.
func holdVisit(t *testing.T, f *fixture) {
	t.Helper()
	ctx := t.Context()
	now := time.Now().UTC()
	for _, st := range []struct {
		s  scheduling.Status
		at time.Time
	}{{scheduling.StatusArrived, now.Add(-20 * time.Minute)}, {scheduling.StatusFulfilled, now.Add(-2 * time.Minute)}} {
		if _, err := f.st.SetAppointmentStatus(ctx, f.visit.ID, st.s, store.Change{ActorID: f.doc.ID, At: st.at}); err != nil {
			t.Fatal(err)
		}
	}
	o := func(seq int64, v float64, at time.Time, flags ...string) store.Observation {
		return store.Observation{PatientID: f.pat.ID, DeviceID: f.devID, Seq: seq, Code: "8867-4", Value: v, Unit: "/min", EffectiveAt: at, Flags: flags}
	}
	if err := f.st.AppendObservations(ctx, f.devID, 3, []store.Observation{
		o(1, 61, now.Add(-48*time.Hour)), o(2, 73, now.Add(-10*time.Minute)), o(3, 140, now.Add(-9*time.Minute), "motion artefact"),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.AppendDeviceEvent(ctx, store.DeviceEvent{PatientID: f.pat.ID, DeviceID: f.devID, Device: "Oximeter", Kind: store.DeviceConnected, At: now.Add(-15 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestVisitRecord(t *testing.T) {
	f := newFixture(t)
	doc := f.signIn(t, "doc@example.org")
	base := fmt.Sprintf("%s/visits/%d", f.srv.URL, f.visit.ID)

	// Before the visit is held: no note can be written.
	status, body := get(t, doc, base+"/record")
	if status != http.StatusOK || !strings.Contains(body, "has not taken place yet") {
		t.Fatalf("record of a booked visit: %d %s", status, body)
	}
	resp, err := doc.PostForm(base+"/notes", url.Values{"note": {"too early"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("note on a booked visit: %d, want 409", resp.StatusCode)
	}

	holdVisit(t, f)
	if _, today := get(t, doc, f.srv.URL+"/today"); !strings.Contains(today, fmt.Sprintf(`href="/visits/%d/record"`, f.visit.ID)) {
		t.Error("the day list does not link the held visit's record")
	}
	status, body = get(t, doc, base+"/record")
	for _, want := range []string{"Duration</dt><dd>18 min", "73/min", `class="tl-reading doubtful"`, "motion artefact", "Device Oximeter", "connected", "Export FHIR"} {
		if status != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("record lacks %q: %d", want, status)
		}
	}
	if strings.Contains(body, "61/min") {
		t.Error("the record shows a reading from before the visit")
	}

	// The note is saved, shown, and replaced.
	for _, note := range []string{"Stable; review in a week.", "Stable <b>; review in two weeks."} {
		resp, err := doc.PostForm(base+"/notes", url.Values{"note": {note}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !strings.HasSuffix(loc, "/record?saved=1") {
			t.Fatalf("save note: %d to %q", resp.StatusCode, loc)
		}
		if _, page := get(t, doc, f.srv.URL+loc); !strings.Contains(page, "The note is saved.") {
			t.Error("no word that the note is saved")
		}
	}
	_, body = get(t, doc, base+"/record")
	if !strings.Contains(body, "Stable &lt;b&gt;; review in two weeks.") || strings.Contains(body, "in a week") {
		t.Errorf("the record does not show the latest note, escaped")
	}
	n, err := f.st.VisitNote(t.Context(), f.visit.ID)
	if err != nil || n.AuthorID != f.doc.ID {
		t.Errorf("stored note %+v, %v", n, err)
	}

	// The export is the visit's FHIR Bundle.
	resp, err = doc.Get(base + "/record/fhir")
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		ResourceType, Type string
		Entry              []struct {
			Resource struct{ ResourceType, ID string }
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&b)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || b.Type != "searchset" || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %v %+v", resp.StatusCode, err, b)
	}
	kinds := map[string]int{}
	for _, e := range b.Entry {
		kinds[e.Resource.ResourceType]++
	}
	// Two readings and the derived NEWS2.
	if kinds["Encounter"] != 1 || kinds["Patient"] != 1 || kinds["Device"] != 1 || kinds["Observation"] != 3 {
		t.Errorf("export holds %v", kinds)
	}

	// Another physician sees none of it.
	doc2 := f.signIn(t, "doc2@example.org")
	for _, u := range []string{base + "/record", base + "/record/fhir", fmt.Sprintf("%s/patients/%d/chart", f.srv.URL, f.pat.ID)} {
		if status, _ := get(t, doc2, u); status != http.StatusForbidden {
			t.Errorf("another physician GET %s: %d, want 403", u, status)
		}
	}
	resp, err = doc2.PostForm(base+"/notes", url.Values{"note": {"not mine"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n, _ := f.st.VisitNote(t.Context(), f.visit.ID); resp.StatusCode != http.StatusForbidden || strings.Contains(n.Text, "not mine") {
		t.Errorf("another physician's note: %d, stored %q", resp.StatusCode, n.Text)
	}
}

func TestPatientChart(t *testing.T) {
	f := newFixture(t)
	holdVisit(t, f)
	doc := f.signIn(t, "doc@example.org")
	status, body := get(t, doc, fmt.Sprintf("%s/patients/%d/chart", f.srv.URL, f.pat.ID))
	if status != http.StatusOK {
		t.Fatalf("chart: %d", status)
	}
	// Only the reading from home: those of the visit are in its record.
	for _, want := range []string{"Heart rate</strong>: 61/min", "1 shown", "<polyline", fmt.Sprintf("/visits/%d/record", f.visit.ID)} {
		if !strings.Contains(body, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	if strings.Contains(body, "73/min") || strings.Contains(body, "140/min") {
		t.Error("the chart shows readings taken during the visit")
	}
	// A patient the physician has no visit with.
	if status, _ := get(t, doc, fmt.Sprintf("%s/patients/%d/chart", f.srv.URL, f.other.ID)); status != http.StatusForbidden {
		t.Errorf("chart of a stranger: %d, want 403", status)
	}
}
