package fhir

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// vitalsSeed is what seedVitals stores: Ada's pulse oximeter and cuff,
// the readings it sent during her held visit with Grace (appt1) and one
// at home two days before it.
type vitalsSeed struct {
	dev      store.Credential
	devToken string
	visit    scheduling.Appointment
	hr, bp   int64 // the first heart rate, the systolic row of the panel
	dia      int64 // the diastolic row of the panel
	home     int64 // the reading taken at home, outside any visit
}

func seedVitals(t testing.TB, f *fixture) vitalsSeed {
	t.Helper()
	ctx := context.Background()
	var s vitalsSeed
	var hash []byte
	s.devToken, hash = auth.NewToken()
	var err error
	s.dev, err = f.st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: hash, UserID: f.ada.ID, Name: "Home hub", CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	start := f.appt1.Start // Monday 10:00
	for _, step := range []struct {
		st scheduling.Status
		at time.Time
	}{{scheduling.StatusArrived, start.Add(2 * time.Minute)}, {scheduling.StatusFulfilled, start.Add(32 * time.Minute)}} {
		if s.visit, err = f.st.SetAppointmentStatus(ctx, f.appt1.ID, step.st, store.Change{ActorID: f.grace.ID, At: step.at}); err != nil {
			t.Fatal(err)
		}
	}
	at := func(min int) time.Time { return start.Add(time.Duration(min) * time.Minute) }
	o := func(seq int64, code string, v float64, unit string, when time.Time, flags ...string) store.Observation {
		return store.Observation{PatientID: f.ada.ID, DeviceID: s.dev.ID, Seq: seq, Code: code, Value: v, Unit: unit,
			EffectiveAt: when, ReceivedAt: when.Add(time.Second), Flags: flags}
	}
	if err := f.st.AppendObservations(ctx, s.dev.ID, 7, []store.Observation{
		o(1, "8867-4", 80, "/min", monday.Add(-40*time.Hour)), // Saturday at home
		o(2, "8867-4", 72, "/min", at(5)),
		o(3, "59408-5", 95, "%", at(6)),
		o(4, store.CodeSystolic, 128, "mm[Hg]", at(7), "cuff too loose"),
		o(4, store.CodeDiastolic, 84, "mm[Hg]", at(7)),
		o(5, "9279-1", 22, "/min", at(8)),
		o(6, "8310-5", 37.2, "Cel", at(9)),
		o(7, "8867-4", 160, "/min", at(10), "motion"), // doubtful: NEWS2 keeps the 72
	}); err != nil {
		t.Fatal(err)
	}
	all, err := f.st.ObservationsBetween(ctx, f.ada.ID, time.Time{}, monday.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range all {
		switch {
		case x.Seq == 1:
			s.home = x.ID
		case x.Seq == 2:
			s.hr = x.ID
		case x.Code == store.CodeSystolic:
			s.bp = x.ID
		case x.Code == store.CodeDiastolic:
			s.dia = x.ID
		}
	}
	return s
}

func TestVitalsGolden(t *testing.T) {
	f := newFixture(t)
	s := seedVitals(t, f)
	for _, tc := range []struct{ file, path, role string }{
		{"observation-panel.json", fmt.Sprint("Observation/", s.bp), "patient"},
		{"observation-home.json", fmt.Sprint("Observation/", s.home), "physician"},
		{"device.json", fmt.Sprint("Device/", s.dev.ID), "admin"},
		{"encounter.json", fmt.Sprint("Encounter/", s.visit.ID), "scheduler"},
		{"everything.json", fmt.Sprintf("Encounter/%d/$everything", s.visit.ID), "physician"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			golden(t, tc.file, f.do(t, "GET", tc.path, tc.role, "").want(t, http.StatusOK).body)
		})
	}
}

func TestVitalsAccess(t *testing.T) {
	f := newFixture(t)
	s := seedVitals(t, f)
	paths := map[string]string{
		"observation": fmt.Sprint("Observation/", s.hr),
		"device":      fmt.Sprint("Device/", s.dev.ID),
		"encounter":   fmt.Sprint("Encounter/", s.visit.ID),
		"export":      fmt.Sprintf("Encounter/%d/$everything", s.visit.ID),
		"search":      fmt.Sprint("Observation?patient=Patient/", f.ada.ID),
		"devices":     fmt.Sprint("Device?patient=Patient/", f.ada.ID),
	}
	// Rows: what each role gets; a scheduler never sees vitals (403) but
	// sees the visit itself, as it sees the Appointment.
	want := map[string]map[string]int{
		"patient":         {"observation": 200, "device": 200, "encounter": 200, "export": 200, "search": 200, "devices": 200},
		"physician":       {"observation": 200, "device": 200, "encounter": 200, "export": 200, "search": 200, "devices": 200},
		"admin":           {"observation": 200, "device": 200, "encounter": 200, "export": 200, "search": 200, "devices": 200},
		"scheduler":       {"observation": 403, "device": 403, "encounter": 200, "export": 403, "search": 403, "devices": 403},
		"other-patient":   {"observation": 404, "device": 404, "encounter": 404, "export": 404, "search": 200, "devices": 200},
		"other-physician": {"observation": 404, "device": 404, "encounter": 404, "export": 404, "search": 200, "devices": 200},
	}
	for role, row := range want {
		for what, status := range row {
			r := f.do(t, "GET", paths[what], role, "")
			if r.status != status {
				t.Errorf("%s GET %s: %d, want %d: %s", role, paths[what], r.status, status, r.body)
				continue
			}
			if status == 200 && (what == "search" || what == "devices") {
				total, _ := searchIDs(t, r)
				mine := role == "patient" || role == "physician" || role == "admin"
				if (total > 0) != mine {
					t.Errorf("%s GET %s: total %d; sees Ada's: %v", role, paths[what], total, mine)
				}
			}
		}
	}
	// A diastolic row is found as its panel.
	r := f.do(t, "GET", fmt.Sprint("Observation/", s.dia), "patient", "").want(t, http.StatusNotFound)
	if d := outcome(t, r).Diagnostics; !strings.Contains(d, fmt.Sprint("panel Observation/", s.bp)) {
		t.Errorf("diastolic read: %q", d)
	}
	// A held visit only: Charles's booked appointment is no Encounter.
	f.do(t, "GET", fmt.Sprint("Encounter/", f.appt2.ID), "admin", "").want(t, http.StatusNotFound)
}

func TestObservationSearch(t *testing.T) {
	f := newFixture(t)
	s := seedVitals(t, f)
	ada := fmt.Sprint("patient=Patient/", f.ada.ID)
	for _, tc := range []struct {
		name, query, role string
		total             int
		first             int64
	}{
		{"all, panels joined", ada, "physician", 7, s.home},
		{"own, without naming", "", "patient", 7, s.home},
		{"panel code", ada + "&code=85354-9", "physician", 1, s.bp},
		{"systolic finds the panel", ada + "&code=http://loinc.org|8480-6", "admin", 1, s.bp},
		{"codes", ada + "&code=8867-4,9279-1", "physician", 4, s.home},
		{"during the visit", ada + "&date=ge" + f.appt1.Start.Format(time.RFC3339) + "&date=lt" + f.appt1.End.Format(time.RFC3339), "physician", 6, s.hr},
		{"by device", fmt.Sprint("device=Device/", s.dev.ID), "physician", 7, s.home},
		{"another's device", fmt.Sprint("device=Device/", s.dev.ID), "other-patient", 0, 0},
		{"page", ada + "&_count=2&_offset=1", "physician", 7, s.hr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, "GET", "Observation?"+tc.query, tc.role, "").want(t, http.StatusOK)
			total, ids := searchIDs(t, r)
			if total != tc.total || (tc.first != 0 && (len(ids) == 0 || ids[0] != fmt.Sprint(tc.first))) {
				t.Errorf("total %d, ids %v; want %d starting %d", total, ids, tc.total, tc.first)
			}
		})
	}
	r := f.do(t, "GET", "Observation?"+ada+"&_count=2&_offset=1", "physician", "")
	if !strings.Contains(string(r.body), `"relation":"next"`) || !strings.Contains(string(r.body), `_offset=3`) {
		t.Errorf("no next page link: %s", r.body)
	}
	for _, tc := range []struct{ query, role, diag string }{
		{"", "physician", "patient: a physician searches"},
		{"patient=Device/1", "admin", "patient: want Patient/{id}"},
		{ada + "&code=http://snomed.info/sct|123", "admin", "code:"},
		{ada + "&date=2026-13", "admin", "date:"},
		{ada + "&subject=x", "admin", "unknown search parameter"},
	} {
		r := f.do(t, "GET", "Observation?"+tc.query, tc.role, "").want(t, http.StatusBadRequest)
		if d := outcome(t, r).Diagnostics; !strings.Contains(d, tc.diag) {
			t.Errorf("%s: %q, want it to mention %q", tc.query, d, tc.diag)
		}
	}
}

func TestEncounterSearch(t *testing.T) {
	f := newFixture(t)
	s := seedVitals(t, f)
	for _, tc := range []struct {
		query, role string
		want        []string
	}{
		{fmt.Sprint("patient=Patient/", f.ada.ID), "admin", []string{fmt.Sprint(s.visit.ID)}},
		{fmt.Sprint("practitioner=Practitioner/", f.grace.ID), "physician", []string{fmt.Sprint(s.visit.ID)}},
		{"", "other-physician", []string{}},
		{"", "scheduler", []string{fmt.Sprint(s.visit.ID)}}, // appt2 is booked, not held
		{"date=2026-11-23", "patient", []string{fmt.Sprint(s.visit.ID)}},
		{"date=2026-11-24", "patient", []string{}},
	} {
		_, ids := searchIDs(t, f.do(t, "GET", "Encounter?"+tc.query, tc.role, "").want(t, http.StatusOK))
		if fmt.Sprint(ids) != fmt.Sprint(tc.want) {
			t.Errorf("%s as %s: %v, want %v", tc.query, tc.role, ids, tc.want)
		}
	}
}

func TestDeviceSearchNeedsPatient(t *testing.T) {
	f := newFixture(t)
	r := f.do(t, "GET", "Device", "admin", "").want(t, http.StatusBadRequest)
	if d := outcome(t, r).Diagnostics; !strings.Contains(d, "patient") {
		t.Errorf("%q", d)
	}
}

func TestVitalsAudited(t *testing.T) {
	f, _ := newAuditFixture(t)
	s := seedVitals(t, f)
	f.do(t, "GET", fmt.Sprint("Observation/", s.hr), "physician", "").want(t, http.StatusOK)
	f.do(t, "GET", fmt.Sprint("Observation/", s.hr), "scheduler", "").want(t, http.StatusForbidden)
	f.do(t, "GET", fmt.Sprint("Observation?code=8310-5&patient=Patient/", f.ada.ID), "physician", "").want(t, http.StatusOK)
	f.do(t, "GET", fmt.Sprint("Device/", s.dev.ID), "physician", "").want(t, http.StatusOK)
	f.do(t, "GET", fmt.Sprintf("Encounter/%d/$everything", s.visit.ID), "physician", "").want(t, http.StatusOK)
	f.post(t, s.devToken, hrBody("", 70)).want(t, http.StatusCreated)
	var got []string
	for _, e := range f.trail(t, store.AuditQuery{PatientID: f.ada.ID}) {
		got = append(got, brief(e))
	}
	g, sc, a := f.grace.ID, f.scheduler.ID, f.ada.ID
	want := []string{
		fmt.Sprintf("%d physician read Observation/%d %d success", g, s.hr, a),
		fmt.Sprintf("%d scheduler read Observation/%d %d denied", sc, s.hr, a),
		fmt.Sprintf("%d physician search Observation/%d %d success", g, s.hr+5, a), // the temperature
		fmt.Sprintf("%d physician read Device/%d %d success", g, s.dev.ID, a),
		fmt.Sprintf("%d physician export Encounter/%d %d success", g, s.visit.ID, a),
		fmt.Sprintf("%d device create Observation %d success", a, a),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit trail:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
