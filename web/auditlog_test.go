package web

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
)

// lockedBuffer is a log destination safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func auditFixture(t *testing.T) (*fixture, *lockedBuffer) {
	logs := &lockedBuffer{}
	f := newFixtureWith(t, func(d *Deps) {
		d.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		d.Audit = &audit.Recorder{Store: d.Store, Log: d.Log}
	})
	return f, logs
}

// who lists "actor action resource outcome" of the events about a patient.
func whoLooked(t *testing.T, f *fixture, patientID int64) []string {
	t.Helper()
	list, _, err := f.st.AuditEvents(t.Context(), store.AuditQuery{PatientID: patientID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list {
		out = append(out, fmt.Sprintf("%d %s %s %s", e.ActorID, e.Action, e.Resource, e.Outcome))
	}
	return out
}

// TestAuditAnswersWhoLooked: opening a patient's records leaves a trail
// that names who, what and how it ended, and refusals are there too.
func TestAuditAnswersWhoLooked(t *testing.T) {
	f, _ := auditFixture(t)
	sched := f.signIn(t, "sched@example.org")
	schedUser, _ := f.st.UserByEmail(t.Context(), "sched@example.org")
	for _, path := range []string{fmt.Sprintf("/patients/%d", f.pat.ID), fmt.Sprintf("/appointments/%d", f.visit.ID)} {
		if st, _ := getPage(t, sched, f.srv.URL+path); st != http.StatusOK {
			t.Fatalf("%s: %d", path, st)
		}
	}
	doc2 := f.signIn(t, "doc2@example.org")
	if st, _ := getPage(t, doc2, fmt.Sprintf("%s/consult/%d", f.srv.URL, f.visit.ID)); st != http.StatusForbidden {
		t.Fatalf("another physician on the consult: %d", st)
	}
	got := strings.Join(whoLooked(t, f, f.pat.ID), "\n")
	for _, want := range []string{
		fmt.Sprintf("%d read Patient/%d success", schedUser.ID, f.pat.ID),
		fmt.Sprintf("%d read Appointment/%d success", schedUser.ID, f.visit.ID),
		fmt.Sprintf("%d read Appointment/%d denied", f.doc2.ID, f.visit.ID),
	} {
		if !strings.Contains(got, want) {
			t.Errorf("audit trail of the patient lacks %q:\n%s", want, got)
		}
	}
	if err := audit.VerifyStore(t.Context(), f.st); err != nil {
		t.Errorf("chain: %v", err)
	}
}

// TestNoVitalValueInLogsOrAudit streams readings with values that appear
// nowhere else, then searches every log line and audit row for them.
func TestNoVitalValueInLogsOrAudit(t *testing.T) {
	f, logs := auditFixture(t)
	viewer, _ := dialVitals(t, f, "doc@example.org")
	dev := dialDevice(t, f, f.devToken)
	values := []float64{73.4567, 96.8123, 37.6543}
	codes := [][2]string{{"8867-4", "/min"}, {"59408-5", "%"}, {"8310-5", "Cel"}}
	for i, v := range values {
		sendFrame(t, dev, envelope(i+1, codes[i][0], v, codes[i][1], ""))
		nextReading(t, viewer)
	}
	sendFrame(t, dev, envelope(4, "8867-4", 412.9876, "/min", "")) // refused as impossible: logged?
	list, _, err := f.st.AuditEvents(t.Context(), store.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) == 0 {
		t.Fatal("no audit events at all: the device connection and the viewer should be there")
	}
	var rows strings.Builder
	for _, e := range list {
		fmt.Fprintf(&rows, "%+v\n", e)
	}
	for _, v := range append(values, 412.9876) {
		for _, s := range []string{fmt.Sprint(v), fmt.Sprintf("%.2f", v), fmt.Sprintf("%.1f", v)} {
			if strings.Contains(logs.String(), s) {
				t.Errorf("a log line carries the value %s", s)
			}
			if strings.Contains(rows.String(), s) {
				t.Errorf("an audit row carries the value %s", s)
			}
		}
	}
	if !strings.Contains(rows.String(), "Device/") {
		t.Errorf("the device's connection is not in the audit trail:\n%s", rows.String())
	}
}
