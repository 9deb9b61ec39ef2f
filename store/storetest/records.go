package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

func testSearchObservations(t *testing.T, st store.Store) {
	ctx := context.Background()
	p := user(t, st, "p@example.org", store.RolePatient)
	other := user(t, st, "q@example.org", store.RolePatient)
	dev := device(t, st, p.ID, "dev")
	dev2 := device(t, st, other.ID, "dev2")
	t0 := odd(t)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	o := func(pid, dev, seq int64, code string, v float64, when time.Time) store.Observation {
		return store.Observation{PatientID: pid, DeviceID: dev, Seq: seq, Code: code, Value: v, Unit: "/min", EffectiveAt: when}
	}
	if err := st.AppendObservations(ctx, dev.ID, 4, []store.Observation{
		o(p.ID, dev.ID, 1, "8867-4", 70, at(1)),
		o(p.ID, dev.ID, 2, store.CodeSystolic, 120, at(2)),
		o(p.ID, dev.ID, 2, store.CodeDiastolic, 80, at(2)),
		o(p.ID, dev.ID, 3, store.CodeDiastolic, 81, at(3)), // no systolic: stays its own reading
		o(p.ID, dev.ID, 4, "8867-4", 72, at(4)),
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendObservations(ctx, dev2.ID, 1, []store.Observation{o(other.ID, dev2.ID, 1, "8867-4", 90, at(1))}); err != nil {
		t.Fatal(err)
	}
	codes := func(obs []store.Observation) []string {
		var out []string
		for _, x := range obs {
			out = append(out, x.Code)
		}
		return out
	}
	for _, c := range []struct {
		name  string
		q     store.ObservationQuery
		want  []string
		total int
	}{
		{"patient", store.ObservationQuery{PatientID: p.ID}, []string{"8867-4", store.CodeSystolic, store.CodeDiastolic, store.CodeDiastolic, "8867-4"}, 5},
		{"panels", store.ObservationQuery{PatientID: p.ID, Panels: true}, []string{"8867-4", store.CodeSystolic, store.CodeDiastolic, "8867-4"}, 4},
		{"code", store.ObservationQuery{PatientID: p.ID, Codes: []string{"8867-4"}}, []string{"8867-4", "8867-4"}, 2},
		{"range", store.ObservationQuery{PatientID: p.ID, From: at(2), To: at(4), Panels: true}, []string{store.CodeSystolic, store.CodeDiastolic}, 2},
		{"page", store.ObservationQuery{PatientID: p.ID, Limit: 2, Offset: 1}, []string{store.CodeSystolic, store.CodeDiastolic}, 5},
		{"device", store.ObservationQuery{DeviceID: dev2.ID}, []string{"8867-4"}, 1},
		{"nothing", store.ObservationQuery{PatientID: other.ID, Codes: []string{store.CodeSystolic}}, nil, 0},
	} {
		page, total, err := st.SearchObservations(ctx, c.q)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := codes(page); total != c.total || len(got) != len(c.want) || (len(got) > 0 && !equal(got, c.want)) {
			t.Errorf("%s: %v (total %d), want %v (total %d)", c.name, got, total, c.want, c.total)
		}
	}
	page, _, err := st.SearchObservations(ctx, store.ObservationQuery{PatientID: p.ID, Codes: []string{store.CodeSystolic}})
	if err != nil || len(page) != 1 {
		t.Fatalf("systolic: %v %v", page, err)
	}
	got, err := st.ObservationByID(ctx, page[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Value != 120 || got.Seq != 2 || got.DeviceID != dev.ID || !sameInstant(at(2), got.EffectiveAt) {
		t.Errorf("ObservationByID = %+v", got)
	}
	_, err = st.ObservationByID(ctx, page[0].ID+1000)
	wantErr(t, "unknown observation", err, store.ErrNotFound)

	c, err := st.CredentialByID(ctx, store.CredentialDevice, dev.ID)
	if err != nil || c.Name != "dev" || c.UserID != p.ID || c.LastSeq != 4 {
		t.Errorf("CredentialByID = %+v, %v", c, err)
	}
	_, err = st.CredentialByID(ctx, store.CredentialAPI, dev.ID)
	wantErr(t, "device credential asked as an API one", err, store.ErrNotFound)
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func testVisitNotes(t *testing.T, st store.Store) {
	ctx := context.Background()
	doc := user(t, st, "doc@example.org", store.RolePhysician)
	p := user(t, st, "p@example.org", store.RolePatient)
	a, err := booker{st, p.ID}.book(doc.ID, slotAt(9), 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.VisitNote(ctx, a.ID)
	wantErr(t, "note never saved", err, store.ErrNotFound)
	t0 := odd(t)
	if _, err := st.SaveVisitNote(ctx, store.VisitNote{AppointmentID: a.ID, AuthorID: doc.ID, Text: "first", UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SaveVisitNote(ctx, store.VisitNote{AppointmentID: a.ID, AuthorID: doc.ID, Text: "second\nline", UpdatedAt: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	n, err := st.VisitNote(ctx, a.ID)
	if err != nil || n.Text != "second\nline" || n.AuthorID != doc.ID || !sameInstant(t0.Add(time.Minute), n.UpdatedAt) {
		t.Errorf("VisitNote = %+v, %v", n, err)
	}
	_, err = st.SaveVisitNote(ctx, store.VisitNote{AppointmentID: a.ID + 100, AuthorID: doc.ID, Text: "x", UpdatedAt: t0})
	wantErr(t, "note of an unknown visit", err, store.ErrNotFound)
}

func testSampleObservations(t *testing.T, st store.Store) {
	ctx := context.Background()
	p := user(t, st, "p@example.org", store.RolePatient)
	dev := device(t, st, p.ID, "dev")
	base := time.Date(2031, 2, 3, 4, 5, 0, 0, time.UTC) // on a minute
	var obs []store.Observation
	for s := range 180 { // three minutes of 1 Hz pulse and SpO2
		for _, code := range []string{"8867-4", "59408-5"} {
			o := store.Observation{PatientID: p.ID, DeviceID: dev.ID, Seq: int64(s + 1), Code: code, Value: float64(s), Unit: "/min",
				EffectiveAt: base.Add(time.Duration(s) * time.Second)}
			if code == "8867-4" && s == 10 {
				o.Flags = []string{"motion"}
			}
			obs = append(obs, o)
		}
	}
	if err := st.AppendObservations(ctx, dev.ID, 180, obs); err != nil {
		t.Fatal(err)
	}
	got, total, err := st.SampleObservations(ctx, p.ID, base, base.Add(3*time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var desc []string
	for _, o := range got {
		desc = append(desc, fmt.Sprintf("%s@%g", o.Code, o.Value))
	}
	want := "8867-4@10 8867-4@59 59408-5@59 8867-4@119 59408-5@119 8867-4@179 59408-5@179"
	if total != 360 || strings.Join(desc, " ") != want {
		t.Errorf("sample: %v (total %d), want %s (total 360)", desc, total, want)
	}
	got, total, err = st.SampleObservations(ctx, p.ID, base.Add(time.Minute), base.Add(90*time.Second), time.Minute)
	if err != nil || total != 60 || len(got) != 2 || got[0].Value != 89 {
		t.Errorf("sample of half a minute: %+v (total %d), %v", got, total, err)
	}
	// A reading that arrives late (stored last) but was taken earlier in
	// its minute is not the minute's latest.
	if err := st.AppendObservations(ctx, dev.ID, 181, []store.Observation{{PatientID: p.ID, DeviceID: dev.ID, Seq: 181, Code: "8867-4",
		Value: 1000, Unit: "/min", EffectiveAt: base.Add(30 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	got, total, err = st.SampleObservations(ctx, p.ID, base, base.Add(time.Minute), time.Minute)
	if err != nil || total != 121 || len(got) != 3 || got[1].Value != 59 {
		t.Errorf("sample with a late reading: %+v (total %d), %v", got, total, err)
	}
}
