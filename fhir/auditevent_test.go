package fhir

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
)

// newAuditFixture is the fixture served by a handler that records to the
// fixture's store and logs to the returned buffer.
func newAuditFixture(t *testing.T) (*fixture, *bytes.Buffer) {
	t.Helper()
	f := newFixture(t)
	logs := &bytes.Buffer{} // slog's handlers serialise their writes
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := NewHandler(Deps{
		Store: f.st, Log: log, Now: func() time.Time { return now }, BaseURL: baseURL,
		Audit: &audit.Recorder{Store: f.st, Log: log},
	})
	mux := http.NewServeMux()
	mux.Handle("/fhir/", http.StripPrefix("/fhir", h))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f, logs
}

// trail is the stored audit events q selects.
func (f *fixture) trail(t *testing.T, q store.AuditQuery) []store.AuditEvent {
	t.Helper()
	q.Limit = 1000
	evs, _, err := f.st.AuditEvents(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// brief is an event as "actor action resource patient outcome".
func brief(e store.AuditEvent) string {
	return fmt.Sprintf("%d %s %s %s %d %s", e.ActorID, e.ActorRole, e.Action, e.Resource, e.PatientID, e.Outcome)
}

func TestAuditRecordsPatientAndAppointmentAccess(t *testing.T) {
	f, _ := newAuditFixture(t)
	a1, a2 := fmt.Sprint(f.appt1.ID), fmt.Sprint(f.appt2.ID)
	f.do(t, "GET", fmt.Sprint("Patient/", f.ada.ID), "physician", "").want(t, http.StatusOK)
	f.do(t, "GET", fmt.Sprint("Patient/", f.charles.ID), "physician", "").want(t, http.StatusNotFound) // not hers
	f.do(t, "GET", "Patient/9999", "physician", "").want(t, http.StatusNotFound)                       // nobody's
	f.do(t, "GET", "Practitioner/"+fmt.Sprint(f.alan.ID), "physician", "").want(t, http.StatusOK)      // not patient data
	f.do(t, "GET", "Appointment/"+a1, "physician", "").want(t, http.StatusOK)
	f.do(t, "GET", "Appointment/"+a2, "physician", "").want(t, http.StatusNotFound)
	f.do(t, "GET", "Patient?name=lovelace", "scheduler", "").want(t, http.StatusOK)
	f.do(t, "GET", "Patient?name=nobody", "scheduler", "").want(t, http.StatusOK)
	f.do(t, "GET", "Appointment", "scheduler", "").want(t, http.StatusOK)
	f.do(t, "GET", fmt.Sprint("Appointment?patient=Patient/", f.charles.ID), "patient", "").want(t, http.StatusOK) // narrowed away
	r := f.do(t, "POST", "Appointment", "scheduler", bookBody(graceSlot(f, 1, 11, 0), f.ada.ID, f.grace.ID)).want(t, http.StatusCreated)
	var booked Appointment
	r.decode(t, &booked)
	f.do(t, "POST", "Appointment", "scheduler", bookBody(graceSlot(f, 1, 11, 0), f.ada.ID, f.grace.ID)).want(t, http.StatusConflict)
	f.do(t, "POST", "Appointment", "patient", bookBody(graceSlot(f, 1, 11, 30), f.ada.ID, f.grace.ID)).want(t, http.StatusForbidden)
	cancel := fmt.Sprintf(`{"resourceType":"Appointment","id":"%s","status":"cancelled"}`, a1)
	f.do(t, "PUT", "Appointment/"+a1, "other-patient", cancel).want(t, http.StatusNotFound)
	f.do(t, "PUT", "Appointment/"+a1, "patient", cancel).want(t, http.StatusOK)

	sid, gid, aid, cid, pid := f.scheduler.ID, f.grace.ID, f.ada.ID, f.charles.ID, f.ada.ID
	want := []string{
		fmt.Sprintf("%d physician read Patient/%d %d success", gid, aid, aid),
		fmt.Sprintf("%d physician read Patient/%d %d denied", gid, cid, cid),
		fmt.Sprintf("%d physician read Appointment/%s %d success", gid, a1, aid),
		fmt.Sprintf("%d physician read Appointment/%s %d denied", gid, a2, cid),
		fmt.Sprintf("%d scheduler search Patient/%d %d success", sid, aid, aid),
		fmt.Sprintf("%d scheduler search Patient 0 success", sid),
		fmt.Sprintf("%d scheduler search Appointment/%s %d success", sid, a1, aid),
		fmt.Sprintf("%d scheduler search Appointment/%s %d success", sid, a2, cid),
		fmt.Sprintf("%d patient search Appointment %d success", pid, cid),
		fmt.Sprintf("%d scheduler create Appointment/%s %d success", sid, booked.ID, aid),
		fmt.Sprintf("%d scheduler create Appointment %d failed", sid, aid),
		fmt.Sprintf("%d patient create Appointment 0 denied", pid),
		fmt.Sprintf("%d patient update Appointment/%s %d denied", f.charles.ID, a1, aid),
		fmt.Sprintf("%d patient update Appointment/%s %d success", pid, a1, aid),
	}
	var got []string
	for _, e := range f.trail(t, store.AuditQuery{}) {
		got = append(got, brief(e))
		if e.Address != "127.0.0.1" || !e.At.Equal(now) {
			t.Errorf("event %d from %q at %v, want 127.0.0.1 at %v", e.Seq, e.Address, e.At, now)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("recorded\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := audit.VerifyStore(context.Background(), f.st); err != nil {
		t.Fatal(err)
	}

	// Who looked at Charles's data last week: Grace tried; the scheduler
	// found his appointment; Ada searched for it.
	var who []int64
	for _, e := range f.trail(t, store.AuditQuery{PatientID: f.charles.ID, From: now.AddDate(0, 0, -7), To: now.Add(time.Second)}) {
		if !slices.Contains(who, e.ActorID) {
			who = append(who, e.ActorID)
		}
	}
	if fmt.Sprint(who) != fmt.Sprint([]int64{gid, sid, pid}) {
		t.Errorf("who looked at Charles: %v, want %v", who, []int64{gid, sid, pid})
	}
}

func TestAuditEventExportAdminOnly(t *testing.T) {
	f, _ := newAuditFixture(t)
	for _, role := range []string{"scheduler", "physician", "patient"} {
		is := outcome(t, f.do(t, "GET", "AuditEvent", role, "").want(t, http.StatusForbidden))
		if is.Code != codeForbidden {
			t.Errorf("%s: issue %+v", role, is)
		}
	}
	f.do(t, "GET", "AuditEvent", "", "").want(t, http.StatusUnauthorized)
	f.do(t, "POST", "AuditEvent", "admin", "{}").want(t, http.StatusMethodNotAllowed)
	var got []string
	for _, e := range f.trail(t, store.AuditQuery{Action: audit.ActionExport}) {
		got = append(got, brief(e))
	}
	want := fmt.Sprintf("%d scheduler export AuditEvent 0 denied|%d physician export AuditEvent 0 denied|%d patient export AuditEvent 0 denied",
		f.scheduler.ID, f.grace.ID, f.ada.ID)
	if strings.Join(got, "|") != want {
		t.Errorf("refused exports recorded as\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
}

func TestAuditEventExport(t *testing.T) {
	f, _ := newAuditFixture(t)
	ctx := context.Background()
	f.do(t, "GET", fmt.Sprint("Appointment/", f.appt1.ID), "physician", "").want(t, http.StatusOK)
	f.do(t, "GET", fmt.Sprint("Appointment/", f.appt2.ID), "physician", "").want(t, http.StatusNotFound)
	// Older events, recorded straight into the store.
	for i, e := range []store.AuditEvent{
		{At: now.AddDate(0, 0, -10), ActorID: f.scheduler.ID, ActorRole: "scheduler", Action: "create", PatientID: f.ada.ID, Resource: "Appointment/77", Address: "192.0.2.9", Outcome: "success"},
		{At: now.AddDate(0, 0, -3), ActorRole: "anonymous", Action: "login", Address: "2001:db8::9", Outcome: "failed"},
		{At: now.AddDate(0, 0, -2), ActorID: f.ada.ID, ActorRole: "patient", Action: "stream", PatientID: f.ada.ID, Resource: "vitals/live", Outcome: "success"},
	} {
		if _, err := f.st.AppendAudit(ctx, e); err != nil {
			t.Fatal(i, err)
		}
	}

	var b struct {
		Total int
		Entry []struct {
			FullURL  string
			Resource AuditEvent
		}
	}
	f.do(t, "GET", "AuditEvent", "admin", "").want(t, http.StatusOK).decode(t, &b)
	if b.Total != 5 || len(b.Entry) != 5 {
		t.Fatalf("%d events (%d in all), want 5", len(b.Entry), b.Total)
	}
	read := b.Entry[0].Resource
	if b.Entry[0].FullURL != baseURL+"/fhir/AuditEvent/1" || read.ResourceType != "AuditEvent" || read.ID != "1" ||
		read.Type.Code != "rest" || read.Action != "R" || read.Recorded != "2026-11-20T09:00:00.000Z" || read.Outcome != "0" ||
		len(read.Subtype) != 2 || read.Subtype[0].Code != "read" || read.Subtype[1].Code != "read" || read.Source.Observer.Display != "Bedside" {
		t.Errorf("first event %+v", read)
	}
	if ag := read.Agent; len(ag) != 1 || !ag[0].Requestor || ag[0].Who.Reference != fmt.Sprint("Practitioner/", f.grace.ID) ||
		ag[0].Who.Display != f.grace.Name || ag[0].Role[0].Text != "physician" || ag[0].Network == nil ||
		ag[0].Network.Address != "127.0.0.1" || ag[0].Network.Type != "2" {
		t.Errorf("agent %+v", ag)
	}
	if en := read.Entity; len(en) != 2 || en[0].What.Reference != fmt.Sprint("Appointment/", f.appt1.ID) ||
		en[1].What.Reference != fmt.Sprint("Patient/", f.ada.ID) || en[1].What.Display != f.ada.Name || en[1].Role.Code != "1" {
		t.Errorf("entities %+v", en)
	}
	if denied := b.Entry[1].Resource; denied.Outcome != "4" || denied.Entity[1].What.Reference != fmt.Sprint("Patient/", f.charles.ID) {
		t.Errorf("denied event %+v", denied)
	}
	create := b.Entry[2].Resource
	if create.Action != "C" || create.Agent[0].Who.Reference != "" || create.Agent[0].Who.Identifier == nil ||
		create.Agent[0].Who.Identifier.Value != fmt.Sprint(f.scheduler.ID) || create.Agent[0].Who.Display != f.scheduler.Name {
		t.Errorf("scheduler's event %+v", create)
	}
	login := b.Entry[3].Resource
	if login.Type.Code != "110114" || login.Action != "E" || login.Outcome != "8" || login.Agent[0].Who.Display != "anonymous" ||
		login.Agent[0].Network.Address != "2001:db8::9" || len(login.Entity) != 0 {
		t.Errorf("login event %+v", login)
	}
	if live := b.Entry[4].Resource; live.Entity[0].What.Identifier == nil || live.Entity[0].What.Identifier.Value != "vitals/live" ||
		live.Agent[0].Network != nil || live.Agent[0].Who.Reference != fmt.Sprint("Patient/", f.ada.ID) {
		t.Errorf("vitals event %+v", live)
	}

	// The searches below go through a handler that records nothing, so
	// that they do not add to what they search.
	audited := f.srv
	f.srv = httptest.NewServer(http.StripPrefix("/fhir", NewHandler(Deps{Store: f.st, Now: func() time.Time { return now }, BaseURL: baseURL})))
	t.Cleanup(f.srv.Close)
	for _, c := range []struct {
		query string
		want  []string
	}{
		{fmt.Sprint("patient=Patient/", f.ada.ID), []string{"1", "3", "5"}},
		{fmt.Sprint("patient=", f.charles.ID), []string{"2"}},
		{fmt.Sprint("agent=Practitioner/", f.grace.ID), []string{"1", "2"}},
		{fmt.Sprint("agent=", f.scheduler.ID), []string{"3"}},
		{"action=R", []string{"1", "2", "6"}}, // 6: the first export
		{"action=C", []string{"3"}},
		{"action=E", []string{"4", "5"}},
		{"action=login", []string{"4"}},
		{"date=ge2026-11-15&date=lt2026-11-20", []string{"4", "5"}},
		{"date=2026-11-10", []string{"3"}},
		{"date=ge2026-11-20&date=lt2026-11-19", []string{}},
		{fmt.Sprint("patient=Patient/", f.ada.ID, "&date=ge2026-11-13"), []string{"1", "5"}}, // last week
	} {
		total, ids := searchIDs(t, f.do(t, "GET", "AuditEvent?"+c.query, "admin", "").want(t, http.StatusOK))
		if total != len(c.want) || fmt.Sprint(ids) != fmt.Sprint(c.want) {
			t.Errorf("%s: %v (%d in all), want %v", c.query, ids, total, c.want)
		}
	}
	if total, ids := searchIDs(t, f.do(t, "GET", "AuditEvent?action=R&_count=1&_offset=1", "admin", "").want(t, http.StatusOK)); total != 3 || fmt.Sprint(ids) != "[2]" {
		t.Errorf("action=R, second page of one: %v of %d, want [2] of 3", ids, total)
	}
	for _, bad := range []string{"patient=Practitioner/1", "agent=Schedule/1", "date=soon", "action=Read!", "subject=1"} {
		f.do(t, "GET", "AuditEvent?"+bad, "admin", "").want(t, http.StatusBadRequest)
	}
	f.srv = audited
	f.do(t, "GET", fmt.Sprint("AuditEvent?patient=", f.charles.ID), "admin", "").want(t, http.StatusOK)
	// Each export was itself recorded, with the patient it was about.
	exports := f.trail(t, store.AuditQuery{Action: audit.ActionExport, PatientID: f.charles.ID})
	if len(exports) != 1 || exports[0].ActorID != f.admin.ID || exports[0].Resource != "AuditEvent" || exports[0].Outcome != "success" {
		t.Errorf("exports about Charles: %+v", exports)
	}
}

// TestAuditHoldsNoVitalsOrNotes runs a FHIR session about a patient who
// has vitals on record and checks that no audit row, no exported
// AuditEvent and no log line holds a vital value, a note or a name.
func TestAuditHoldsNoVitalsOrNotes(t *testing.T) {
	f, logs := newAuditFixture(t)
	ctx := context.Background()
	vitals := map[string]float64{"8867-4": 141.7, "59408-5": 87.3, "8310-5": 39.42, "8480-6": 187.5, "8462-4": 113.25}
	var obs []store.Observation
	for code, v := range vitals {
		obs = append(obs, store.Observation{PatientID: f.ada.ID, Code: code, Value: v, Unit: "/min", EffectiveAt: now.Add(-time.Hour), ReceivedAt: now.Add(-time.Hour)})
	}
	if err := f.st.AppendObservations(ctx, 0, 0, obs); err != nil {
		t.Fatal(err)
	}
	const note = "Reports crushing chest pain since Tuesday"
	secrets := []string{note, "crushing", f.ada.Name, "Lovelace", f.ada.Email, f.ada.BirthDate, f.ada.Phone}
	for _, v := range vitals {
		secrets = append(secrets, fmt.Sprint(v))
	}

	f.do(t, "GET", "Patient?name=Lovelace&birthdate="+f.ada.BirthDate, "physician", "").want(t, http.StatusOK)
	f.do(t, "GET", fmt.Sprint("Patient/", f.ada.ID), "physician", "").want(t, http.StatusOK)
	f.do(t, "GET", fmt.Sprint("Appointment?patient=Patient/", f.ada.ID), "physician", "").want(t, http.StatusOK)
	var booked Appointment
	f.do(t, "POST", "Appointment", "scheduler", bookBody(graceSlot(f, 2, 9, 30), f.ada.ID, f.grace.ID)).want(t, http.StatusCreated).decode(t, &booked)
	f.do(t, "GET", "Appointment/"+booked.ID, "patient", "").want(t, http.StatusOK)
	f.do(t, "PUT", "Appointment/"+booked.ID, "patient",
		fmt.Sprintf(`{"resourceType":"Appointment","id":"%s","status":"cancelled","cancelationReason":{"text":%q}}`, booked.ID, note)).want(t, http.StatusOK)
	f.do(t, "PUT", "Appointment/"+booked.ID, "patient", // refused: a note that is too long
		fmt.Sprintf(`{"resourceType":"Appointment","id":"%s","status":"cancelled","cancelationReason":{"text":%q}}`, booked.ID, strings.Repeat(note, 20))).want(t, http.StatusUnprocessableEntity)
	export := f.do(t, "GET", fmt.Sprint("AuditEvent?patient=Patient/", f.ada.ID), "admin", "").want(t, http.StatusOK)

	rows := f.trail(t, store.AuditQuery{})
	if len(rows) < 7 {
		t.Fatalf("only %d events recorded", len(rows))
	}
	for _, e := range rows {
		fields := strings.Join([]string{e.ActorRole, e.Action, e.Resource, e.Address, e.Outcome, fmt.Sprint(e.ActorID, " ", e.PatientID)}, "|")
		for _, s := range secrets {
			if strings.Contains(fields, s) {
				t.Errorf("audit event %d holds %q: %s", e.Seq, s, fields)
			}
		}
	}
	// The export names people (it is for the admin) but holds no vitals or notes.
	for _, s := range secrets[:2] {
		if bytes.Contains(export.body, []byte(s)) {
			t.Errorf("the AuditEvent export holds %q", s)
		}
	}
	for _, v := range vitals {
		if bytes.Contains(export.body, []byte(fmt.Sprint(v))) {
			t.Errorf("the AuditEvent export holds the vital value %v", v)
		}
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		for _, s := range secrets {
			if s != "" && strings.Contains(line, s) {
				t.Errorf("log line holds %q: %s", s, line)
			}
		}
	}
}
