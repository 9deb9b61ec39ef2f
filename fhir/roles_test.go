package fhir

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// roles are the callers of the role matrix, as named in fixture.tokens.
var roles = []string{"admin", "scheduler", "physician", "other-physician", "patient", "other-patient"}

// statuses gives, in the order of roles, the status each caller gets.
type statuses [6]int

func TestRoleReads(t *testing.T) {
	f := newFixture(t)
	free := graceSlot(f, 1, 9, 0)
	all := statuses{200, 200, 200, 200, 200, 200}
	for _, tc := range []struct {
		path string
		want statuses
	}{
		{fmt.Sprint("Patient/", f.ada.ID), statuses{200, 200, 200, 404, 200, 404}},
		{fmt.Sprint("Patient/", f.charles.ID), statuses{200, 200, 404, 200, 404, 200}},
		{fmt.Sprint("Patient/", f.grace.ID), statuses{404, 404, 404, 404, 404, 404}}, // not a patient
		{fmt.Sprint("Practitioner/", f.grace.ID), all},
		{fmt.Sprint("Practitioner/", f.ada.ID), statuses{404, 404, 404, 404, 404, 404}},
		{fmt.Sprint("Schedule/", f.alan.ID), all},
		{"Slot/" + free, all},
		{"Slot/" + free + "-follow-up", all},
		{fmt.Sprint("Appointment/", f.appt1.ID), statuses{200, 200, 200, 404, 200, 404}},
		{fmt.Sprint("Appointment/", f.appt2.ID), statuses{200, 200, 404, 200, 404, 200}},
	} {
		for i, role := range roles {
			t.Run(role+" "+tc.path, func(t *testing.T) {
				r := f.do(t, "GET", tc.path, role, "").want(t, tc.want[i])
				if r.status == 404 {
					if is := outcome(t, r); is.Code != codeNotFound {
						t.Errorf("code %s, want not-found", is.Code)
					}
				}
			})
		}
	}
}

func TestRoleSearches(t *testing.T) {
	f := newFixture(t)
	ada, charles := fmt.Sprint(f.ada.ID), fmt.Sprint(f.charles.ID)
	grace, alan := fmt.Sprint(f.grace.ID), fmt.Sprint(f.alan.ID)
	a1, a2 := fmt.Sprint(f.appt1.ID), fmt.Sprint(f.appt2.ID)
	both := func(x, y string) []string { return []string{x, y} }
	one := func(x string) []string { return []string{x} }
	none := []string{}
	for _, tc := range []struct {
		path string
		want [6][]string // the IDs found, by role
	}{
		{"Patient", [6][]string{both(ada, charles), both(ada, charles), one(ada), one(charles), one(ada), one(charles)}},
		{"Patient?name=lovelace", [6][]string{one(ada), one(ada), one(ada), none, one(ada), none}},
		{"Patient?email=CHARLES@example.org", [6][]string{one(charles), one(charles), none, one(charles), none, one(charles)}},
		{"Patient?identifier=urn:bedside:email|ada@example.org", [6][]string{one(ada), one(ada), one(ada), none, one(ada), none}},
		{"Patient?identifier=urn:other|ada@example.org", [6][]string{none, none, none, none, none, none}},
		{"Patient?birthdate=1990-12-10", [6][]string{one(ada), one(ada), one(ada), none, one(ada), none}},
		{"Practitioner", [6][]string{both(alan, grace), both(alan, grace), both(alan, grace), both(alan, grace), both(alan, grace), both(alan, grace)}},
		{"Practitioner?name=grace", [6][]string{one(grace), one(grace), one(grace), one(grace), one(grace), one(grace)}},
		{"Schedule", [6][]string{both(alan, grace), both(alan, grace), both(alan, grace), both(alan, grace), both(alan, grace), both(alan, grace)}}, // by name
		{"Schedule?actor=Practitioner/" + alan, [6][]string{one(alan), one(alan), one(alan), one(alan), one(alan), one(alan)}},
		{"Appointment", [6][]string{both(a1, a2), both(a1, a2), one(a1), one(a2), one(a1), one(a2)}},
		{"Appointment?patient=Patient/" + ada, [6][]string{one(a1), one(a1), one(a1), none, one(a1), none}},
		{"Appointment?actor=Practitioner/" + alan, [6][]string{one(a2), one(a2), none, one(a2), none, one(a2)}},
		{"Appointment?practitioner=" + baseURL + "/fhir/Practitioner/" + grace + "&status=booked,arrived", [6][]string{one(a1), one(a1), one(a1), none, one(a1), none}},
		{"Appointment?status=cancelled", [6][]string{none, none, none, none, none, none}},
		{"Appointment?date=2026-11-23", [6][]string{one(a1), one(a1), one(a1), none, one(a1), none}},
		{"Appointment?date=ge2026-11-23T10:00:00Z&date=lt2026-11-24T15:00:00Z", [6][]string{one(a1), one(a1), one(a1), none, one(a1), none}},
		{"Appointment?date=gt2026-11-23T10:00:00Z", [6][]string{one(a2), one(a2), none, one(a2), none, one(a2)}},
		{"Appointment?date=le2026-11-24T15:00:00Z", [6][]string{both(a1, a2), both(a1, a2), one(a1), one(a2), one(a1), one(a2)}},
		{"Appointment?date=eq2026-11-24T15:00:00%2B00:00", [6][]string{one(a2), one(a2), none, one(a2), none, one(a2)}},
		{"Appointment?date=2026-11-24T10:00:00-05:00", [6][]string{one(a2), one(a2), none, one(a2), none, one(a2)}},
	} {
		for i, role := range roles {
			t.Run(role+" "+tc.path, func(t *testing.T) {
				total, ids := searchIDs(t, f.do(t, "GET", tc.path, role, "").want(t, 200))
				want := tc.want[i]
				if total != len(want) || !slices.Equal(ids, want) {
					t.Errorf("total %d, ids %v; want %v", total, ids, want)
				}
			})
		}
	}
}

func TestRoleSlotSearch(t *testing.T) {
	f := newFixture(t)
	for _, role := range roles {
		t.Run(role, func(t *testing.T) {
			path := fmt.Sprintf("Slot?practitioner=Practitioner/%d&start=2026-11-23&status=busy", f.grace.ID)
			total, ids := searchIDs(t, f.do(t, "GET", path, role, "").want(t, 200))
			want := slotID{f.grace.ID, f.appt1.Start, ""}.String()
			if total != 1 || len(ids) != 1 || ids[0] != want {
				t.Errorf("total %d, ids %v; want the busy slot %s", total, ids, want)
			}
		})
	}
}

func TestRoleWrites(t *testing.T) {
	f := newFixture(t)
	// Each booking takes its own free slot of Grace on Wednesday.
	for i, tc := range []struct {
		role string
		want int
	}{{"admin", 201}, {"scheduler", 201}, {"physician", 403}, {"other-physician", 403}, {"patient", 403}, {"other-patient", 403}} {
		t.Run("book as "+tc.role, func(t *testing.T) {
			r := f.do(t, "POST", "Appointment", tc.role, bookBody(graceSlot(f, 2, 9, 30*i), f.ada.ID, f.grace.ID)).want(t, tc.want)
			if tc.want == 403 {
				if is := outcome(t, r); is.Code != codeForbidden {
					t.Errorf("code %s, want forbidden", is.Code)
				}
			}
		})
	}
	// Each status change is on a fresh appointment of Ada with Grace.
	for i, tc := range []struct {
		role, status string
		want         int
	}{
		{"admin", "arrived", 200},
		{"admin", "entered-in-error", 200},
		{"scheduler", "cancelled", 200},
		{"scheduler", "noshow", 200},
		{"physician", "arrived", 200},
		{"physician", "fulfilled", 200},
		{"physician", "noshow", 200},
		{"physician", "cancelled", 403},
		{"physician", "entered-in-error", 403},
		{"other-physician", "arrived", 404},
		{"patient", "cancelled", 200},
		{"patient", "arrived", 403},
		{"patient", "noshow", 403},
		{"other-patient", "cancelled", 404},
	} {
		t.Run(tc.status+" as "+tc.role, func(t *testing.T) {
			a := f.book(t, f.ada.ID, f.grace.ID, monday.AddDate(0, 0, 3).Add(time.Duration(9*60+15*i)*time.Minute), 15*time.Minute)
			body := fmt.Sprintf(`{"resourceType":"Appointment","id":"%d","status":"%s"}`, a.ID, tc.status)
			r := f.do(t, "PUT", fmt.Sprint("Appointment/", a.ID), tc.role, body).want(t, tc.want)
			got, err := f.st.AppointmentByID(t.Context(), a.ID)
			if err != nil {
				t.Fatal(err)
			}
			if changed := string(got.Status) == tc.status; changed != (tc.want == 200) {
				t.Errorf("stored status %s after answer %d", got.Status, r.status)
			}
			if want := map[int]string{403: codeForbidden, 404: codeNotFound}[tc.want]; want != "" && outcome(t, r).Code != want {
				t.Errorf("outcome %s, want code %s", r.body, want)
			}
		})
	}
	t.Run("patient cancels an arrived visit", func(t *testing.T) {
		a := f.book(t, f.ada.ID, f.grace.ID, monday.AddDate(0, 0, 4).Add(9*time.Hour), 30*time.Minute)
		f.do(t, "PUT", fmt.Sprint("Appointment/", a.ID), "physician", fmt.Sprintf(`{"resourceType":"Appointment","id":"%d","status":"arrived"}`, a.ID)).want(t, 200)
		r := f.do(t, "PUT", fmt.Sprint("Appointment/", a.ID), "patient", fmt.Sprintf(`{"resourceType":"Appointment","id":"%d","status":"cancelled"}`, a.ID)).want(t, 403)
		if is := outcome(t, r); !strings.Contains(is.Diagnostics, "only a booked appointment") {
			t.Errorf("diagnostics %q", is.Diagnostics)
		}
	})
}
