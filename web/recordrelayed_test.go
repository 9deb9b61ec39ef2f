package web

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

// TestRecordNamesRelayedDevice: the visit's timeline and the patient's
// chart name the Bluetooth device that measured a relayed reading, and
// the relay it came through, as the timeline names its events; a direct
// device's readings stay as they were.
func TestRecordNamesRelayedDevice(t *testing.T) {
	f := newFixture(t)
	holdVisit(t, f)
	ctx := t.Context()
	browser, err := f.st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte("browser"), UserID: f.pat.ID,
		Name: browserDevice, Browser: true, CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	strap, err := f.st.RelayedDevice(ctx, browser.ID, "Polar H10 7E2F")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := f.st.AppendObservations(ctx, browser.ID, 2, []store.Observation{
		{PatientID: f.pat.ID, DeviceID: browser.ID, Seq: 1, Code: "8867-4", Value: 66, Unit: "/min", EffectiveAt: now.Add(-30 * time.Hour), Relayed: strap.ID},
		{PatientID: f.pat.ID, DeviceID: browser.ID, Seq: 2, Code: "8867-4", Value: 74, Unit: "/min", EffectiveAt: now.Add(-11 * time.Minute), Relayed: strap.ID},
	}); err != nil {
		t.Fatal(err)
	}
	doc := f.signIn(t, "doc@example.org")
	const from = `<span class="hint">from Polar H10 7E2F (through Web browser)</span>`
	status, body := get(t, doc, fmt.Sprintf("%s/visits/%d/record", f.srv.URL, f.visit.ID))
	if status != http.StatusOK {
		t.Fatalf("record: %d", status)
	}
	var rows []string
	for _, row := range strings.Split(body, "<tr class=")[1:] {
		cells := strings.NewReplacer("<td>", "|", "</td>", "").Replace(row[strings.Index(row, ">")+1 : strings.Index(row, "</tr>")])
		l := strings.Join(strings.Fields(cells[strings.Index(cells, "|")+1:]), " ")
		if l = strings.ReplaceAll(l[strings.Index(l, "|")+1:], " |", "|"); strings.HasPrefix(l, "Heart rate") {
			rows = append(rows, l)
		}
	}
	want := []string{
		"Heart rate " + from + "|74/min|",
		"Heart rate|73/min|",
	}
	if len(rows) < 2 || rows[0] != want[0] || rows[1] != want[1] {
		t.Errorf("the timeline's heart rates:\n%s\nwant, first:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
	status, body = get(t, doc, fmt.Sprintf("%s/patients/%d/chart", f.srv.URL, f.pat.ID))
	if status != http.StatusOK {
		t.Fatalf("chart: %d", status)
	}
	// The readings from home, latest first: the strap's, then the direct
	// device's.
	_, latest, _ := strings.Cut(body, "Latest readings")
	i, j := strings.Index(latest, "66/min"), strings.Index(latest, "61/min")
	if i < 0 || j < i || strings.Count(latest, from) != 1 || !strings.Contains(latest[:i], from) {
		t.Errorf("the chart's recent readings do not name the strap for its reading alone:\n%s", body)
	}
}
