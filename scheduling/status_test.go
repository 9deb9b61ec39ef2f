package scheduling

import (
	"errors"
	"slices"
	"testing"
	"time"
)

var allStatuses = []Status{StatusBooked, StatusArrived, StatusFulfilled, StatusCancelled, StatusNoShow, StatusEnteredInError}

func TestStatusTransitions(t *testing.T) {
	// The lifecycle, written out again so that a change to it must be made
	// twice: from, then every status it may become.
	allowed := map[Status][]Status{
		StatusBooked:         {StatusArrived, StatusCancelled, StatusNoShow, StatusFulfilled, StatusEnteredInError},
		StatusArrived:        {StatusFulfilled, StatusCancelled, StatusEnteredInError},
		StatusNoShow:         {StatusArrived, StatusEnteredInError},
		StatusFulfilled:      {StatusEnteredInError},
		StatusCancelled:      {StatusEnteredInError},
		StatusEnteredInError: nil,
	}
	from := slices.Concat(allStatuses, []Status{"", "pending"})
	to := slices.Concat(allStatuses, []Status{"", "pending", "Booked"})
	n := 0
	for _, s := range from {
		for _, u := range to {
			want := false
			for _, a := range allowed[s] {
				want = want || a == u
			}
			if want {
				n++
			}
			t.Run(string(s)+" to "+string(u), func(t *testing.T) {
				if got := s.CanBecome(u); got != want {
					t.Errorf("CanBecome = %v, want %v", got, want)
				}
				err := s.CheckTransition(u)
				if want && err != nil {
					t.Errorf("CheckTransition = %v, want nil", err)
				}
				if !want && !errors.Is(err, ErrTransition) {
					t.Errorf("CheckTransition = %v, want an error wrapping ErrTransition", err)
				}
			})
		}
	}
	if n != 12 {
		t.Errorf("%d transitions allowed, want 12", n)
	}
}

func TestStatusValidAndLive(t *testing.T) {
	cases := []struct {
		s           Status
		valid, live bool
	}{
		{StatusBooked, true, true},
		{StatusArrived, true, true},
		{StatusFulfilled, true, true},
		{StatusNoShow, true, true},
		{StatusCancelled, true, false},
		{StatusEnteredInError, true, false},
		{"", false, true},
		{"proposed", false, true},
		{"BOOKED", false, true},
	}
	for _, c := range cases {
		if got := c.s.Valid(); got != c.valid {
			t.Errorf("%q.Valid() = %v, want %v", c.s, got, c.valid)
		}
		if got := c.s.Live(); got != c.live {
			t.Errorf("%q.Live() = %v, want %v", c.s, got, c.live)
		}
	}
}

func TestNoShowDue(t *testing.T) {
	start := time.Date(2026, 6, 15, 13, 0, 0, 0, time.UTC)
	grace := 15 * time.Minute
	cases := []struct {
		name   string
		status Status
		grace  time.Duration
		now    time.Time
		want   bool
	}{
		{"before the start", StatusBooked, grace, start.Add(-time.Minute), false},
		{"at the start", StatusBooked, grace, start, false},
		{"a nanosecond inside the grace", StatusBooked, grace, start.Add(grace - time.Nanosecond), false},
		{"exactly at the end of the grace", StatusBooked, grace, start.Add(grace), true},
		{"well after", StatusBooked, grace, start.Add(24 * time.Hour), true},
		{"no grace, at the start", StatusBooked, 0, start, true},
		{"no grace, just before", StatusBooked, 0, start.Add(-time.Nanosecond), false},
		{"the same instant in another zone", StatusBooked, grace, start.Add(grace).In(time.FixedZone("X", -5*3600)), true},
		{"checked in", StatusArrived, grace, start.Add(time.Hour), false},
		{"already a no-show", StatusNoShow, grace, start.Add(time.Hour), false},
		{"cancelled", StatusCancelled, grace, start.Add(time.Hour), false},
		{"fulfilled", StatusFulfilled, grace, start.Add(time.Hour), false},
		{"entered in error", StatusEnteredInError, grace, start.Add(time.Hour), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := Appointment{Start: start, End: start.Add(30 * time.Minute), Status: c.status}
			if got := NoShowDue(a, c.grace, c.now); got != c.want {
				t.Errorf("NoShowDue = %v, want %v", got, c.want)
			}
		})
	}
}
