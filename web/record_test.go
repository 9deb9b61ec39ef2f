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
// home two days before, a device connecting and disconnecting during it,
// and alerts: one raised, acknowledged and cleared during the visit, a band
// change noted, and one raised the day before.
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
	for _, e := range []store.DeviceEvent{
		{PatientID: f.pat.ID, DeviceID: f.devID, Device: "Oximeter", Kind: store.DeviceConnected, At: now.Add(-15 * time.Minute)},
		{PatientID: f.pat.ID, DeviceID: f.devID, Device: "Polar H10", Relay: "Oximeter", Kind: store.DeviceConnected, At: now.Add(-12 * time.Minute)},
		{PatientID: f.pat.ID, DeviceID: f.devID, Device: "Oximeter", Kind: store.DeviceDisconnected, At: now.Add(-5 * time.Minute)},
	} {
		if _, err := f.st.AppendDeviceEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	hr := func(state string, at time.Time, by string) store.AlertEvent {
		return store.AlertEvent{AlertID: "threshold:8867-4:high@1", State: state, Rule: "threshold", Severity: "warning",
			Title: "Heart rate above 120 /min", Code: "8867-4", By: by, At: at}
	}
	if err := f.st.AppendAlertEvents(ctx, f.pat.ID, []store.AlertEvent{
		{AlertID: "old@1", State: "raised", Rule: "threshold", Severity: "warning", Title: "Heart rate below 40 /min", At: now.Add(-24 * time.Hour)},
		hr("raised", now.Add(-9*time.Minute), ""),
		{AlertID: "news2-band@2", State: "notice", Rule: "news2-band", Severity: "info", Title: "NEWS2 band down to low", At: now.Add(-8 * time.Minute)},
		hr("acknowledged", now.Add(-7*time.Minute), fmt.Sprintf("User/%d", f.doc.ID)),
		hr("cleared", now.Add(-6*time.Minute), ""),
	}); err != nil {
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
	if strings.Contains(body, "61/min") || strings.Contains(body, "below 40") {
		t.Error("the record shows a reading or an alert from before the visit")
	}
	// The timeline holds, in time order, the device and alert events
	// between the readings.
	var lines []string
	for _, row := range strings.Split(body, "<tr class=")[1:] {
		cells := strings.NewReplacer("<td>", "|", "</td>", "", "<strong>", "", "</strong>", "").Replace(row[strings.Index(row, ">")+1 : strings.Index(row, "</tr>")])
		lines = append(lines, strings.Join(strings.Fields(cells[strings.Index(cells, "|")+1:]), " "))
	}
	// Drop the times: the order says enough.
	for i, l := range lines {
		lines[i] = strings.ReplaceAll(l[strings.Index(l, "|")+1:], " |", "|")
	}
	want := []string{
		"Device Oximeter|connected|",
		"Device Polar H10 (through Oximeter)|connected|",
		"Heart rate|73/min|",
		"Heart rate|140/min <span class=\"sr-only\">(doubtful)</span>|motion artefact",
		"Alert: Heart rate above 120 /min|raised, warning|your threshold",
		"Alert: NEWS2 band down to low|noted|NEWS2 band change",
		"Alert: Heart rate above 120 /min|acknowledged by doc@example.org|your threshold",
		"Alert: Heart rate above 120 /min|cleared|your threshold",
		"Device Oximeter|disconnected|",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("timeline:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(body, `class="tl-alert sev-warning"`) {
		t.Error("an alert line does not carry its severity")
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

// TestTimelineReusesStrings checks that rows sharing a second or a value
// with an earlier row still show their own time and value.
func TestTimelineReusesStrings(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	obs := []store.Observation{
		{Code: "8867-4", Value: 72, Unit: "/min", EffectiveAt: t0},
		{Code: "59408-5", Value: 97, Unit: "%", EffectiveAt: t0.Add(300 * time.Millisecond)},
		{Code: "8867-4", Value: 72, Unit: "/min", EffectiveAt: t0.Add(time.Second)},
		{Code: "8867-4", Value: 75, Unit: "/min", EffectiveAt: t0.Add(61 * time.Second)},
		{Code: "59408-5", Value: 97, Unit: "%", EffectiveAt: t0.Add(61 * time.Second)},
		{Code: "8867-4", Value: 75, Unit: "mm[Hg]", EffectiveAt: t0.Add(2 * time.Second)},
	}
	got := timeline(obs, nil, nil, nil, time.UTC)
	want := []struct{ when, what, value string }{
		{"09:00:00", "Heart rate", "72/min"},
		{"09:00:00", "SpO2", "97%"},
		{"09:00:01", "Heart rate", "72/min"},
		{"09:01:01", "Heart rate", "75/min"},
		{"09:01:01", "SpO2", "97%"},
		{"09:00:02", "Heart rate", "75 mmHg"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i, w := range want {
		if g := got[i]; g.When != w.when || g.What != w.what || g.Value != w.value {
			t.Errorf("row %d: %s %s %s, want %s %s %s", i, g.When, g.What, g.Value, w.when, w.what, w.value)
		}
	}
}

// TestPhysicianCompletesVisit: the physician ends their visit from its
// record once it is under way, which closes the record; nobody else can,
// and a visit not under way cannot be.
func TestPhysicianCompletesVisit(t *testing.T) {
	f := newFixture(t)
	doc, doc2 := f.signIn(t, "doc@example.org"), f.signIn(t, "doc2@example.org")
	base := fmt.Sprintf("%s/visits/%d", f.srv.URL, f.visit.ID)
	status := func() scheduling.Status {
		a, err := f.st.AppointmentByID(t.Context(), f.visit.ID)
		if err != nil {
			t.Fatal(err)
		}
		return a.Status
	}
	complete := func(c *http.Client) int {
		resp, err := c.PostForm(base+"/complete", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := complete(doc); code != http.StatusConflict || status() != scheduling.StatusBooked {
		t.Fatalf("completing a visit not under way: %d, status %s; want 409 and booked", code, status())
	}
	if _, err := f.st.SetAppointmentStatus(t.Context(), f.visit.ID, scheduling.StatusArrived, store.Change{ActorID: f.doc.ID, At: time.Now().Add(-10 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, doc, base+"/record"); !strings.Contains(body, "still going on") || !strings.Contains(body, "Mark the visit completed") {
		t.Fatalf("the record of a visit under way offers no way to end it:\n%s", body)
	}
	if code := complete(doc2); code != http.StatusForbidden || status() != scheduling.StatusArrived {
		t.Fatalf("another physician completing the visit: %d, status %s; want 403 and checked in", code, status())
	}
	if code := complete(doc); code != http.StatusSeeOther || status() != scheduling.StatusFulfilled {
		t.Fatalf("the physician completing the visit: %d, status %s; want 303 and fulfilled", code, status())
	}
	_, body := get(t, doc, base+"/record?completed=1")
	for _, want := range []string{"The visit is marked completed.", "Status</dt><dd>completed", "Duration</dt><dd>10 min"} {
		if !strings.Contains(body, want) {
			t.Errorf("the completed visit's record lacks %q", want)
		}
	}
	if strings.Contains(body, "still going on") || strings.Contains(body, "Mark the visit completed") {
		t.Error("the completed visit's record still says it goes on")
	}
	if code := complete(doc); code != http.StatusConflict {
		t.Errorf("completing it again: %d, want 409", code)
	}
}
