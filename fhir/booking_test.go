package fhir

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

func TestBook(t *testing.T) {
	f := newFixture(t)
	slot := graceSlot(f, 1, 11, 0) + "-follow-up"
	body := strings.Replace(bookBody(slot, f.ada.ID, f.grace.ID), `"status"`,
		`"serviceType":[{"coding":[{"system":"urn:bedside:visit-type","code":"follow-up"}]}],"start":"2026-11-24T11:00:00Z","end":"2026-11-24T11:15:00Z","minutesDuration":15,"status"`, 1)
	r := f.do(t, "POST", "Appointment", "scheduler", body).want(t, http.StatusCreated)
	var got Appointment
	r.decode(t, &got)
	if loc := r.header.Get("Location"); loc != baseURL+"/fhir/Appointment/"+got.ID {
		t.Errorf("Location %q, id %s", loc, got.ID)
	}
	if got.Status != "booked" || got.Start != "2026-11-24T11:00:00Z" || got.End != "2026-11-24T11:15:00Z" || got.MinutesDuration != 15 ||
		len(got.Slot) != 1 || got.Slot[0].Reference != "Slot/"+slot || len(got.ServiceType) != 1 || got.ServiceType[0].Coding[0].Code != "follow-up" {
		t.Errorf("booked %+v", got)
	}
	// The stored appointment is what was answered, and the patient is told.
	read := f.do(t, "GET", "Appointment/"+got.ID, "patient", "").want(t, http.StatusOK)
	if string(read.body) != string(r.body) {
		t.Errorf("read back\n%s\nbooked\n%s", read.body, r.body)
	}
	f.mu.Lock()
	changes := f.changes
	f.mu.Unlock()
	if len(changes) != 1 || fmt.Sprint(changes[0].ID) != got.ID || changes[0].Status != scheduling.StatusBooked {
		t.Errorf("Changed was told %+v", changes)
	}
	id, _ := parseID(got.ID)
	history, err := f.st.AppointmentHistory(context.Background(), id)
	if err != nil || len(history) != 1 || history[0].Kind != store.EventBooked || history[0].ActorID != f.scheduler.ID {
		t.Errorf("history %+v (%v), want one booking by the scheduler", history, err)
	}
	// The slot is now busy, so booking it again is a conflict.
	if total, _ := searchIDs(t, f.do(t, "GET", "Slot?status=busy&service-type=follow-up&start=2026-11-24&practitioner="+fmt.Sprint(f.grace.ID), "patient", "")); total != 1 {
		t.Errorf("%d busy follow-up slots on Tuesday, want 1", total)
	}
	f.do(t, "POST", "Appointment", "scheduler", bookBody(slot, f.charles.ID, f.grace.ID)).want(t, http.StatusConflict)
}

func TestConcurrentBooking(t *testing.T) {
	f := newFixture(t)
	slot := graceSlot(f, 2, 10, 30)
	const n = 50
	codes := make([]int, n)
	issues := make([]Issue, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req := f.request(t, "POST", "Appointment", bookBody(slot, f.ada.ID, f.grace.ID))
			req.Header.Set("Authorization", "Bearer "+f.tokens["scheduler"])
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			codes[i] = res.StatusCode
			if res.StatusCode != http.StatusCreated {
				var o OperationOutcome
				if err := json.NewDecoder(res.Body).Decode(&o); err != nil || len(o.Issue) != 1 {
					t.Errorf("answer %d is not an OperationOutcome: %v", res.StatusCode, err)
					return
				}
				issues[i] = o.Issue[0]
			}
		})
	}
	wg.Wait()
	created, conflicts := 0, 0
	for i, c := range codes {
		switch c {
		case http.StatusCreated:
			created++
		case http.StatusConflict:
			conflicts++
			if issues[i].Code != codeConflict || !strings.Contains(issues[i].Diagnostics, "Slot/"+slot) {
				t.Errorf("409 issue %+v", issues[i])
			}
		default:
			t.Errorf("status %d", c)
		}
	}
	if created != 1 || conflicts != n-1 {
		t.Errorf("%d created, %d conflicts; want 1 and %d", created, conflicts, n-1)
	}
	start := slotIDStart(t, slot)
	held, err := f.st.AppointmentsBetween(context.Background(), f.grace.ID, 0, start, start.Add(time.Hour))
	if err != nil || len(held) != 1 {
		t.Errorf("%d appointments hold the slot (%v), want 1", len(held), err)
	}
	if _, total, err := f.st.SearchAppointments(context.Background(), store.AppointmentQuery{}); err != nil || total != 3 {
		t.Errorf("%d appointments stored (%v), want the fixture's 2 and 1 more", total, err)
	}
}

func slotIDStart(t *testing.T, s string) time.Time {
	t.Helper()
	id, ok := parseSlotID(s)
	if !ok {
		t.Fatalf("bad slot id %q", s)
	}
	return id.start
}

func TestStatusChange(t *testing.T) {
	f := newFixture(t)
	path := fmt.Sprint("Appointment/", f.appt1.ID)
	// The physician sends the resource back as read, with a new status.
	var res map[string]any
	f.do(t, "GET", path, "physician", "").want(t, http.StatusOK).decode(t, &res)
	res["status"] = "arrived"
	body, _ := json.Marshal(res)
	var got Appointment
	f.do(t, "PUT", path, "physician", string(body)).want(t, http.StatusOK).decode(t, &got)
	if got.Status != "arrived" {
		t.Errorf("status %s, want arrived", got.Status)
	}
	// Sending the same again changes nothing and tells nobody.
	f.do(t, "PUT", path, "physician", string(body)).want(t, http.StatusOK)
	// An admin may not take it back to cancelled once fulfilled.
	put := func(role, status, extra string) response {
		return f.do(t, "PUT", path, role, fmt.Sprintf(`{"resourceType":"Appointment","id":"%d","status":"%s"%s}`, f.appt1.ID, status, extra))
	}
	put("physician", "fulfilled", "").want(t, http.StatusOK)
	r := put("admin", "cancelled", `,"cancelationReason":{"text":"duplicate"}`).want(t, http.StatusConflict)
	if is := outcome(t, r); is.Code != codeConflict || !strings.Contains(is.Diagnostics, "fulfilled cannot become cancelled") {
		t.Errorf("issue %+v", is)
	}
	put("admin", "entered-in-error", `,"cancelationReason":{"text":"wrong patient"}`).want(t, http.StatusOK).decode(t, &got)
	if got.Status != "entered-in-error" || got.CancelationReason == nil || got.CancelationReason.Text != "wrong patient" {
		t.Errorf("answered %+v", got)
	}

	history, err := f.st.AppointmentHistory(context.Background(), f.appt1.ID)
	if err != nil {
		t.Fatal(err)
	}
	type ev struct {
		actor    int64
		from, to scheduling.Status
		reason   string
	}
	var evs []ev
	for _, e := range history[1:] { // after the booking
		evs = append(evs, ev{e.ActorID, e.FromStatus, e.ToStatus, e.Reason})
	}
	want := []ev{
		{f.grace.ID, scheduling.StatusBooked, scheduling.StatusArrived, ""},
		{f.grace.ID, scheduling.StatusArrived, scheduling.StatusFulfilled, ""},
		{f.admin.ID, scheduling.StatusFulfilled, scheduling.StatusEnteredInError, "wrong patient"},
	}
	if fmt.Sprint(evs) != fmt.Sprint(want) {
		t.Errorf("history %v, want %v", evs, want)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var told []scheduling.Status
	for _, a := range f.changes {
		if a.ID != f.appt1.ID {
			t.Errorf("Changed told of appointment %d", a.ID)
		}
		told = append(told, a.Status)
	}
	if fmt.Sprint(told) != "[arrived fulfilled entered-in-error]" {
		t.Errorf("Changed was told %v", told)
	}
}

func TestPatientCancels(t *testing.T) {
	f := newFixture(t)
	path := fmt.Sprint("Appointment/", f.appt1.ID)
	body := fmt.Sprintf(`{"resourceType":"Appointment","id":"%d","status":"cancelled","cancelationReason":{"text":"feeling better"}}`, f.appt1.ID)
	f.do(t, "PUT", path, "patient", body).want(t, http.StatusOK)
	a, err := f.st.AppointmentByID(context.Background(), f.appt1.ID)
	if err != nil || a.Status != scheduling.StatusCancelled || a.CancelReason != "feeling better" || a.Sequence != 1 {
		t.Errorf("stored %+v (%v)", a, err)
	}
	history, err := f.st.AppointmentHistory(context.Background(), f.appt1.ID)
	if err != nil || len(history) != 2 || history[1].ActorID != f.ada.ID || history[1].Reason != "feeling better" {
		t.Errorf("history %+v (%v)", history, err)
	}
	// The freed slot can be booked again.
	f.do(t, "POST", "Appointment", "scheduler", bookBody(slotID{f.grace.ID, f.appt1.Start, ""}.String(), f.charles.ID, f.grace.ID)).want(t, http.StatusCreated)
}
