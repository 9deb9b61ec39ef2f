package fhir

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

// follow pages through a search from path by its next links and returns
// the IDs found, failing unless every page reports the same total, and
// the pages after the first link back.
func follow(t *testing.T, f *fixture, path, role string) (int, []string) {
	t.Helper()
	var ids []string
	total := -1
	for page := 0; path != ""; page++ {
		if page > 100 {
			t.Fatal("more than 100 pages")
		}
		r := f.do(t, "GET", path, role, "").want(t, 200)
		n, got := searchIDs(t, r)
		if total >= 0 && n != total {
			t.Errorf("page %d: total %d, earlier %d", page, n, total)
		}
		total = n
		ids = append(ids, got...)
		var b Bundle
		r.decode(t, &b)
		path = ""
		hasPrevious := false
		for _, l := range b.Link {
			switch l.Relation {
			case "next":
				path = l.URL
			case "previous":
				hasPrevious = true
			}
		}
		if hasPrevious != (page > 0) {
			t.Errorf("page %d: previous link %v", page, hasPrevious)
		}
	}
	return total, ids
}

// once fails unless ids holds each of want exactly once and nothing else.
func once(t *testing.T, ids, want []string) {
	t.Helper()
	got := slices.Clone(ids)
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("found %v, want each of %v once", ids, want)
	}
}

func TestPaging(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	patients := []string{fmt.Sprint(f.ada.ID), fmt.Sprint(f.charles.ID)}
	gracePatients := []string{fmt.Sprint(f.ada.ID)}
	graceAppts := []string{fmt.Sprint(f.appt1.ID)}
	for i := range 9 {
		u, err := f.st.CreateUser(ctx, store.User{Role: store.RolePatient, Email: fmt.Sprintf("p%d@example.org", i), Name: fmt.Sprintf("Patient %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		patients = append(patients, fmt.Sprint(u.ID))
		if i%2 == 0 { // Grace sees every other one
			a := f.book(t, u.ID, f.grace.ID, monday.AddDate(0, 0, 1+i/4).Add(time.Duration(9*60+30*(i%4))*time.Minute), 30*time.Minute)
			gracePatients = append(gracePatients, fmt.Sprint(u.ID))
			graceAppts = append(graceAppts, fmt.Sprint(a.ID))
		}
	}
	for _, tc := range []struct {
		name, path, role string
		want             []string
	}{
		{"patients by 2", "Patient?_count=2", "scheduler", patients},
		{"patients by 100", "Patient?_count=500", "admin", patients},
		{"patients of a physician by 2 (scanned)", "Patient?_count=2", "physician", gracePatients},
		{"patients of a physician by name", "Patient?name=patient&_count=1", "physician", gracePatients[1:]},
		{"appointments of a physician by 3", "Appointment?_count=3", "physician", graceAppts},
		{"appointments of a patient", "Appointment?_count=1&status=booked", "patient", []string{fmt.Sprint(f.appt1.ID)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			total, ids := follow(t, f, tc.path, tc.role)
			if total != len(tc.want) {
				t.Errorf("total %d, want %d", total, len(tc.want))
			}
			once(t, ids, tc.want)
		})
	}
	t.Run("slots by 7", func(t *testing.T) {
		path := fmt.Sprintf("Slot?practitioner=%d&start=ge2026-11-23T00:00:00Z&start=lt2026-11-28T00:00:00Z&_count=7", f.grace.ID)
		total, ids := follow(t, f, path, "patient")
		if total != 30 { // six slots a day, Monday to Friday
			t.Errorf("total %d, want 30", total)
		}
		distinct := slices.Clone(ids)
		slices.Sort(distinct)
		if distinct = slices.Compact(distinct); len(distinct) != 30 || len(ids) != 30 {
			t.Errorf("%d slots found, %d distinct; want 30", len(ids), len(distinct))
		}
	})
	t.Run("count above 100 gives 100", func(t *testing.T) {
		var b Bundle
		f.do(t, "GET", "Patient?_count=500", "admin", "").want(t, 200).decode(t, &b)
		if want := baseURL + "/fhir/Patient?_count=100&_offset=0"; b.Link[0].Relation != "self" || b.Link[0].URL != want {
			t.Errorf("links %+v, want self %s", b.Link, want)
		}
	})
	t.Run("count 0 gives the total alone", func(t *testing.T) {
		total, ids := searchIDs(t, f.do(t, "GET", "Patient?_count=0", "admin", "").want(t, 200))
		if total != len(patients) || len(ids) != 0 {
			t.Errorf("total %d, %d entries", total, len(ids))
		}
	})
	t.Run("offset past the end", func(t *testing.T) {
		total, ids := searchIDs(t, f.do(t, "GET", "Patient?_offset=50", "admin", "").want(t, 200))
		if total != len(patients) || len(ids) != 0 {
			t.Errorf("total %d, %d entries", total, len(ids))
		}
	})
}
