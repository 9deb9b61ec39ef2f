package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

func testAvailability(t *testing.T, st store.Store) {
	ctx := context.Background()
	d := user(t, st, "d@example.org", store.RolePhysician)
	_, err := st.Availability(ctx, d.ID)
	wantErr(t, "no hours yet", err, store.ErrNotFound)
	day := func(s string) scheduling.Date {
		d, err := scheduling.ParseDate(s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	want := scheduling.Availability{
		Weekly:     []scheduling.WeeklyHours{{Weekday: time.Monday, Start: 540, End: 720}, {Weekday: time.Friday, Start: 780, End: 1020}},
		SlotLength: 20 * time.Minute,
		Overrides: []scheduling.Override{
			{Date: day("2030-03-30"), Blocks: []scheduling.Block{{Start: 480, End: 600}, {Start: 780, End: 840}}},
			{Date: day("2030-03-31")}, // a day off
		},
		TimeOff:    []scheduling.Interval{{Start: odd(t), End: odd(t).Add(72 * time.Hour)}},
		Buffer:     10 * time.Minute,
		MinNotice:  2 * time.Hour,
		Horizon:    60 * 24 * time.Hour,
		VisitTypes: []scheduling.VisitType{{Code: "new", Name: "New patient", Duration: time.Hour}, {Code: "follow-up", Name: "Follow-up", Duration: 20 * time.Minute}},
	}
	if err := st.SetAvailability(ctx, d.ID, want); err != nil {
		t.Fatal(err)
	}
	got, err := st.Availability(ctx, d.ID)
	if err != nil || got.Zone.String() != "Europe/London" {
		t.Fatalf("Availability = %+v, %v; want the physician's zone", got, err)
	}
	same := func(got, want scheduling.Availability) bool {
		return fmt.Sprint(got.Weekly, got.SlotLength, got.Overrides, got.Buffer, got.MinNotice, got.Horizon, got.VisitTypes) ==
			fmt.Sprint(want.Weekly, want.SlotLength, want.Overrides, want.Buffer, want.MinNotice, want.Horizon, want.VisitTypes) &&
			len(got.TimeOff) == len(want.TimeOff) && sameInstant(want.TimeOff[0].Start, got.TimeOff[0].Start) &&
			sameInstant(want.TimeOff[0].End, got.TimeOff[0].End)
	}
	if !same(got, want) {
		t.Fatalf("Availability = %+v\nwant %+v", got, want)
	}
	// Setting again replaces all of it.
	next := scheduling.Availability{Weekly: []scheduling.WeeklyHours{{Weekday: time.Tuesday, Start: 600, End: 660}}, SlotLength: 15 * time.Minute,
		TimeOff: []scheduling.Interval{{Start: slotAt(1), End: slotAt(2)}}}
	if err := st.SetAvailability(ctx, d.ID, next); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Availability(ctx, d.ID); err != nil || !same(got, next) {
		t.Fatalf("replaced Availability = %+v, %v", got, err)
	}
	for name, bad := range map[string]scheduling.Availability{
		"a slot of 90s":                   {Weekly: next.Weekly, SlotLength: 90 * time.Second},
		"a block ending before it starts": {Weekly: []scheduling.WeeklyHours{{Weekday: time.Monday, Start: 600, End: 540}}, SlotLength: 15 * time.Minute},
		"two visit types with one code": {Weekly: next.Weekly, SlotLength: 15 * time.Minute,
			VisitTypes: []scheduling.VisitType{{Code: "a", Name: "A", Duration: time.Hour}, {Code: "a", Name: "B", Duration: time.Hour}}},
		"negative buffer": {Weekly: next.Weekly, SlotLength: 15 * time.Minute, Buffer: -time.Minute},
	} {
		if err := st.SetAvailability(ctx, d.ID, bad); err == nil {
			t.Errorf("%s was accepted", name)
		}
	}
	if got, _ := st.Availability(ctx, d.ID); !same(got, next) {
		t.Errorf("a refused update changed the availability: %+v", got)
	}
	wantErr(t, "hours of a missing physician", st.SetAvailability(ctx, 9999, next), store.ErrNotFound)
}

// slotAt is an hour on a fixed future Monday, in UTC.
func slotAt(h int) time.Time { return time.Date(2030, 1, 7, h, 0, 0, 0, time.UTC) }

// booker books for one patient.
type booker struct {
	st      store.Store
	patient int64
}

func (b booker) book(physician int64, start time.Time, d time.Duration) (scheduling.Appointment, error) {
	return b.st.BookAppointment(context.Background(), scheduling.Appointment{
		PhysicianID: physician, PatientID: b.patient, Start: start, End: start.Add(d), Status: scheduling.StatusBooked}, store.Change{})
}

func testOverlaps(t *testing.T, st store.Store) {
	ctx := context.Background()
	d := user(t, st, "d@example.org", store.RolePhysician)
	d2 := user(t, st, "d2@example.org", store.RolePhysician)
	p := user(t, st, "p@example.org", store.RolePatient)
	b := booker{st, p.ID}

	start := odd(t)
	first, err := st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: d.ID, PatientID: p.ID, Start: start, End: start.Add(time.Hour)}, store.Change{})
	if err != nil {
		t.Fatal(err)
	}
	if first.ID == 0 || first.Status != scheduling.StatusBooked || !sameInstant(start, first.Start) ||
		!sameInstant(start.Add(time.Hour), first.End) || first.CreatedAt.IsZero() {
		t.Fatalf("BookAppointment returned %+v; want an ID, status booked, times kept in UTC", first)
	}
	got, err := st.AppointmentByID(ctx, first.ID)
	if err != nil || !sameAppointment(got, first) {
		t.Fatalf("AppointmentByID = %+v, %v; want %+v", got, err, first)
	}
	_, err = st.AppointmentByID(ctx, 9999)
	wantErr(t, "missing appointment", err, store.ErrNotFound)

	s, e := first.Start, first.End
	for _, c := range []struct {
		name  string
		start time.Time
		dur   time.Duration
	}{
		{"same slot", s, time.Hour},
		{"same start, shorter", s, 30 * time.Minute},
		{"starts inside", s.Add(45 * time.Minute), time.Hour},
		{"ends inside", s.Add(-30 * time.Minute), time.Hour},
		{"inside", s.Add(10 * time.Minute), 10 * time.Minute},
		{"encloses", s.Add(-time.Hour), 3 * time.Hour},
		{"one millisecond of overlap at the end", e.Add(-time.Millisecond), time.Hour},
		{"one millisecond of overlap at the start", s.Add(-time.Hour + time.Millisecond), time.Hour},
	} {
		_, err := b.book(d.ID, c.start, c.dur)
		wantErr(t, c.name, err, scheduling.ErrSlotTaken)
	}
	if _, err := b.book(d.ID, e, 30*time.Minute); err != nil {
		t.Errorf("booking that starts as another ends refused: %v", err)
	}
	if _, err := b.book(d.ID, s.Add(-30*time.Minute), 30*time.Minute); err != nil {
		t.Errorf("booking that ends as another starts refused: %v", err)
	}
	if _, err := b.book(d2.ID, s, time.Hour); err != nil {
		t.Errorf("another physician at the same time refused: %v", err)
	}
	if list, _ := st.AppointmentsBetween(ctx, d.ID, 0, s.Add(-24*time.Hour), s.Add(24*time.Hour)); len(list) != 3 {
		t.Errorf("physician has %d appointments, want 3: %+v", len(list), list)
	}
	if _, err := b.book(d.ID, s, 0); err == nil || errors.Is(err, scheduling.ErrSlotTaken) {
		t.Errorf("empty appointment: %v, want a validation error", err)
	}
}

func testCancel(t *testing.T, st store.Store) {
	ctx := context.Background()
	d := user(t, st, "d@example.org", store.RolePhysician)
	p := user(t, st, "p@example.org", store.RolePatient)
	b := booker{st, p.ID}
	first, err := b.book(d.ID, slotAt(10), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetAppointmentStatus(ctx, first.ID, scheduling.StatusCancelled, store.Change{Reason: "patient unwell"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.AppointmentByID(ctx, first.ID); got.Status != scheduling.StatusCancelled || got.CancelReason != "patient unwell" || got.Sequence != 1 {
		t.Fatalf("after cancelling: %+v; want cancelled, the reason kept, sequence 1", got)
	}
	second, err := b.book(d.ID, slotAt(10).Add(30*time.Minute), time.Hour)
	if err != nil {
		t.Fatalf("booking into a cancelled time: %v", err)
	}
	// A cancelled visit stays cancelled: rebook instead.
	_, err = st.SetAppointmentStatus(ctx, first.ID, scheduling.StatusBooked, store.Change{})
	wantErr(t, "reviving a cancelled visit", err, scheduling.ErrTransition)
	if got, _ := st.AppointmentByID(ctx, first.ID); got.Status != scheduling.StatusCancelled {
		t.Fatalf("refused revival changed the status to %q", got.Status)
	}
	for _, s := range []scheduling.Status{scheduling.StatusNoShow, scheduling.StatusArrived, scheduling.StatusFulfilled} {
		if _, err := st.SetAppointmentStatus(ctx, second.ID, s, store.Change{}); err != nil {
			t.Fatalf("set status %s: %v", s, err)
		}
	}
	if _, err := b.book(d.ID, slotAt(10).Add(30*time.Minute), time.Hour); !errors.Is(err, scheduling.ErrSlotTaken) {
		t.Errorf("a fulfilled visit still holds its time: %v, want ErrSlotTaken", err)
	}
	_, err = st.SetAppointmentStatus(ctx, 9999, scheduling.StatusCancelled, store.Change{})
	wantErr(t, "status of a missing appointment", err, store.ErrNotFound)
}

func testAppointmentsBetween(t *testing.T, st store.Store) {
	ctx := context.Background()
	d1 := user(t, st, "d1@example.org", store.RolePhysician)
	d2 := user(t, st, "d2@example.org", store.RolePhysician)
	p1 := user(t, st, "p1@example.org", store.RolePatient)
	p2 := user(t, st, "p2@example.org", store.RolePatient)
	book := func(d, p store.User, h int) scheduling.Appointment {
		t.Helper()
		a, err := booker{st, p.ID}.book(d.ID, slotAt(h), 30*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a9 := book(d1, p1, 9)
	a10 := book(d1, p2, 10)
	b9 := book(d2, p2, 9)
	a11 := book(d1, p1, 11)
	gone := book(d2, p1, 12)
	if _, err := st.SetAppointmentStatus(ctx, gone.ID, scheduling.StatusCancelled, store.Change{}); err != nil {
		t.Fatal(err)
	}
	ids := func(phys, pat int64, from, to time.Time) []int64 {
		t.Helper()
		list, err := st.AppointmentsBetween(ctx, phys, pat, from, to)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, a := range list {
			out = append(out, a.ID)
		}
		return out
	}
	for _, c := range []struct {
		name     string
		phys     int64
		pat      int64
		from, to time.Time
		want     []int64
	}{
		{"physician, whole day", d1.ID, 0, slotAt(0), slotAt(24), []int64{a9.ID, a10.ID, a11.ID}},
		{"patient, whole day, cancelled left out", 0, p1.ID, slotAt(0), slotAt(24), []int64{a9.ID, a11.ID}},
		{"physician and patient", d1.ID, p2.ID, slotAt(0), slotAt(24), []int64{a10.ID}},
		{"anyone, by start then ID", 0, 0, slotAt(9), slotAt(10), []int64{a9.ID, b9.ID}},
		{"from is inclusive, to exclusive", d1.ID, 0, slotAt(10), slotAt(11), []int64{a10.ID}},
		{"started before from is left out", d1.ID, 0, slotAt(9).Add(time.Minute), slotAt(10), nil},
	} {
		got := ids(c.phys, c.pat, c.from, c.to)
		if len(got) != len(c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
}

// race starts n bookings at once, the i-th for the span span(i), and returns
// how many succeeded; every failure must wrap scheduling.ErrSlotTaken.
func race(t *testing.T, st store.Store, physician, patient int64, n int, span func(i int) (time.Time, time.Duration)) int {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			s, d := span(i)
			_, errs[i] = booker{st, patient}.book(physician, s, d)
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, scheduling.ErrSlotTaken):
			t.Errorf("attempt %d: %v, want ErrSlotTaken", i, err)
		}
	}
	return ok
}

func testConcurrentSameSlot(t *testing.T, st store.Store) {
	d := user(t, st, "d@example.org", store.RolePhysician)
	p := user(t, st, "p@example.org", store.RolePatient)
	ok := race(t, st, d.ID, p.ID, 200, func(int) (time.Time, time.Duration) { return slotAt(14), 30 * time.Minute })
	list, _ := st.AppointmentsBetween(context.Background(), d.ID, 0, slotAt(0), slotAt(24))
	if ok != 1 || len(list) != 1 {
		t.Fatalf("%d of 200 bookings succeeded and %d are stored; want exactly 1 of each", ok, len(list))
	}
}

func testConcurrentOverlapping(t *testing.T, st store.Store) {
	d := user(t, st, "d@example.org", store.RolePhysician)
	p := user(t, st, "p@example.org", store.RolePatient)
	// Different starts and lengths, all sharing 14:20-14:30.
	ok := race(t, st, d.ID, p.ID, 60, func(i int) (time.Time, time.Duration) {
		return slotAt(14).Add(time.Duration(i%3) * 10 * time.Minute), time.Duration(30+15*(i%2)) * time.Minute
	})
	list, _ := st.AppointmentsBetween(context.Background(), d.ID, 0, slotAt(0), slotAt(24))
	if ok != 1 || len(list) != 1 {
		t.Fatalf("%d of 60 bookings succeeded and %d are stored; want exactly 1 of each", ok, len(list))
	}
}

// sameAppointment compares two appointments field by field, times as instants.
func sameAppointment(a, b scheduling.Appointment) bool {
	return a.ID == b.ID && a.PhysicianID == b.PhysicianID && a.PatientID == b.PatientID && a.Status == b.Status &&
		a.Start.Equal(b.Start) && a.End.Equal(b.End) && a.CreatedAt.Equal(b.CreatedAt)
}
