package scheduling

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	loc := mustZone(t, "Australia/Adelaide")
	at := func(month time.Month, day, h, m int) time.Time { return time.Date(2026, month, day, h, m, 0, 0, loc) }
	base := Availability{
		Zone: loc, SlotLength: 30 * time.Minute,
		Weekly: []WeeklyHours{{Weekday: time.Monday, Start: 13 * 60, End: 15 * 60}},
		VisitTypes: []VisitType{
			{Code: "long", Name: "New patient", Duration: time.Hour},
			{Code: "short", Name: "Prescription", Duration: 15 * time.Minute},
		},
		Overrides: []Override{
			{Date: Date{2026, time.June, 22}},                                           // a Monday off
			{Date: Date{2026, time.June, 23}, Blocks: []Block{{9 * 60, 10 * 60}}},       // a Tuesday on
			{Date: Date{2026, time.July, 6}, Blocks: []Block{{13*60 + 10, 14*60 + 10}}}, // a Monday's grid moved
		},
		TimeOff:   []Interval{{at(6, 29, 13, 45), at(6, 29, 14, 0)}},
		MinNotice: 24 * time.Hour,
		Horizon:   30 * 24 * time.Hour,
	}
	now := at(6, 14, 12, 0) // a Sunday
	cases := []struct {
		name      string
		start     time.Time
		visitType string
		now       time.Time
		edit      func(*Availability)
		wantEnd   time.Time
		wantErr   error
		wantMsg   string // in the error
	}{
		{name: "a slot", start: at(6, 15, 13, 30), now: now, wantEnd: at(6, 15, 14, 0)},
		{name: "a slot given in UTC", start: at(6, 15, 13, 30).UTC(), now: now, wantEnd: at(6, 15, 14, 0)},
		{name: "a slot a year (52 weeks) ago, with no now", start: at(6, 15, 13, 30).AddDate(0, 0, -364), wantEnd: at(6, 15, 14, 0).AddDate(0, 0, -364)},
		{name: "a long visit", start: at(6, 15, 13, 0), visitType: "long", now: now, wantEnd: at(6, 15, 14, 0)},
		{name: "a long visit at a :30 grid point", start: at(6, 15, 13, 30), visitType: "long", now: now, wantEnd: at(6, 15, 14, 30)},
		{name: "a long visit ending at the block's end", start: at(6, 15, 14, 0), visitType: "long", now: now, wantEnd: at(6, 15, 15, 0)},
		{name: "a long visit off its grid", start: at(6, 15, 13, 10), visitType: "long", now: now, wantErr: ErrOutsideHours, wantMsg: "no 1h0m0s visit starts at 2026-06-15 13:10 +0930"},
		{name: "a long visit past the block's end", start: at(6, 15, 14, 30), visitType: "long", now: now, wantErr: ErrOutsideHours},
		{name: "a short visit", start: at(6, 15, 14, 30), visitType: "short", now: now, wantEnd: at(6, 15, 14, 45)},
		{name: "a short visit off the grid", start: at(6, 15, 14, 15), visitType: "short", now: now, wantErr: ErrOutsideHours},
		{name: "off the grid", start: at(6, 15, 13, 35), now: now, wantErr: ErrOutsideHours},
		{name: "a second off the grid", start: at(6, 15, 13, 30).Add(time.Second), now: now, wantErr: ErrOutsideHours},
		{name: "at the block's end", start: at(6, 15, 15, 0), now: now, wantErr: ErrOutsideHours},
		{name: "another weekday", start: at(6, 16, 13, 30), now: now, wantErr: ErrOutsideHours},
		{name: "unknown visit type", start: at(6, 15, 13, 30), visitType: "surgery", now: now, wantErr: ErrOutsideHours, wantMsg: `no visit type "surgery"`},
		{name: "no zone", start: at(6, 15, 13, 30), now: now, edit: func(a *Availability) { a.Zone = nil }, wantErr: ErrOutsideHours},
		{name: "a day off by override", start: at(6, 22, 13, 30), now: now, wantErr: ErrOutsideHours, wantMsg: "2026-06-22 is a day off"},
		{name: "hours by override on another weekday", start: at(6, 23, 9, 30), now: now, wantEnd: at(6, 23, 10, 0)},
		{name: "an override moves the grid", start: at(7, 6, 13, 40), now: now, wantEnd: at(7, 6, 14, 10)},
		{name: "the weekly grid is gone on an override's date", start: at(7, 6, 13, 30), now: now, wantErr: ErrOutsideHours},
		{name: "time off", start: at(6, 29, 13, 30), now: now, wantErr: ErrTimeOff, wantMsg: "2026-06-29 13:45 to 2026-06-29 14:00"},
		{name: "just before time off", start: at(6, 29, 13, 0), now: now, wantEnd: at(6, 29, 13, 30)},
		{name: "just after time off", start: at(6, 29, 14, 0), now: now, wantEnd: at(6, 29, 14, 30)},
		{name: "a long visit reaching into time off", start: at(6, 29, 13, 0), visitType: "long", now: now, wantErr: ErrTimeOff},
		{name: "time off is more specific than too soon", start: at(6, 29, 13, 30), now: at(6, 29, 14, 0), wantErr: ErrTimeOff},
		{name: "off the grid is more specific than time off", start: at(6, 29, 13, 50), now: now, wantErr: ErrOutsideHours},
		{name: "too soon", start: at(6, 15, 13, 0), now: at(6, 14, 13, 1), wantErr: ErrTooSoon, wantMsg: "earliest start is 2026-06-15 13:01"},
		{name: "exactly the notice", start: at(6, 15, 13, 0), now: at(6, 14, 13, 0), wantEnd: at(6, 15, 13, 30)},
		{name: "in the past", start: at(6, 8, 13, 0), now: now, wantErr: ErrTooSoon},
		{name: "in the past with no notice", start: at(6, 15, 13, 0), now: at(6, 15, 13, 0).Add(time.Nanosecond),
			edit: func(a *Availability) { a.MinNotice = 0 }, wantErr: ErrTooSoon},
		{name: "starting now with no notice", start: at(6, 15, 13, 0), now: at(6, 15, 13, 0),
			edit: func(a *Availability) { a.MinNotice = 0 }, wantEnd: at(6, 15, 13, 30)},
		{name: "too far", start: at(7, 20, 13, 0), now: now, wantErr: ErrTooFar, wantMsg: "latest start is 2026-07-14 12:00"},
		{name: "exactly the horizon", start: at(7, 13, 13, 0), now: at(6, 13, 13, 0), wantEnd: at(7, 13, 13, 30)},
		{name: "a minute past the horizon", start: at(7, 13, 13, 0), now: at(6, 13, 12, 59), wantErr: ErrTooFar},
		{name: "no horizon", start: at(6, 15, 13, 0).AddDate(0, 0, 364), now: now,
			edit: func(a *Availability) { a.Horizon = 0 }, wantEnd: at(6, 15, 13, 30).AddDate(0, 0, 364)},
		{name: "zero now skips notice and horizon", start: at(1, 5, 13, 0), wantEnd: at(1, 5, 13, 30)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := base
			if c.edit != nil {
				c.edit(&a)
			}
			end, err := a.Check(c.start, c.visitType, c.now)
			if c.wantErr == nil {
				if err != nil || !end.Equal(c.wantEnd) || end.Location() != time.UTC {
					t.Fatalf("Check = %v, %v; want %v in UTC", end, err, c.wantEnd)
				}
				return
			}
			if !errors.Is(err, c.wantErr) || !end.IsZero() {
				t.Fatalf("Check = %v, %v; want an error wrapping %q", end, err, c.wantErr)
			}
			for _, other := range []error{ErrOutsideHours, ErrTimeOff, ErrTooSoon, ErrTooFar} {
				if other != c.wantErr && errors.Is(err, other) {
					t.Errorf("error %q also wraps %q", err, other)
				}
			}
			if !strings.Contains(err.Error(), c.wantMsg) {
				t.Errorf("error %q does not say %q", err, c.wantMsg)
			}
		})
	}
}

// TestCheckAgreesWithSlots asks Check about every five minutes of weeks
// with clock changes and every rule in play: it must accept exactly the
// starts Slots gives, with the same ends.
func TestCheckAgreesWithSlots(t *testing.T) {
	cases := []struct {
		zone string
		from string // local date; 8 days from it are asked about
		off  Date   // a day off by override
		on   Date   // a date with its own hours
	}{
		{"America/New_York", "2026-03-04", Date{2026, time.March, 6}, Date{2026, time.March, 8}},
		{"America/New_York", "2026-10-28", Date{2026, time.October, 30}, Date{2026, time.November, 1}},
		{"Europe/London", "2026-10-21", Date{2026, time.October, 22}, Date{2026, time.October, 25}},
		{"Australia/Adelaide", "2026-04-01", Date{2026, time.April, 3}, Date{2026, time.April, 5}},
		{"Australia/Adelaide", "2026-09-30", Date{2026, time.October, 2}, Date{2026, time.October, 4}},
	}
	for _, c := range cases {
		t.Run(c.zone+" "+c.from, func(t *testing.T) {
			loc := mustZone(t, c.zone)
			from, _ := time.ParseInLocation(time.DateOnly, c.from, loc)
			to := from.AddDate(0, 0, 8)
			var weekly []WeeklyHours
			for d := time.Sunday; d <= time.Saturday; d++ {
				weekly = append(weekly, WeeklyHours{Weekday: d, Start: 30, End: 4 * 60}, WeeklyHours{Weekday: d, Start: 13 * 60, End: 16*60 + 15})
			}
			a := Availability{
				Zone: loc, SlotLength: 30 * time.Minute, Weekly: weekly,
				Overrides: []Override{{Date: c.off}, {Date: c.on, Blocks: []Block{{60, 3*60 + 30}, {13*60 + 15, 14*60 + 45}}}},
				TimeOff:   []Interval{{from.AddDate(0, 0, 3).Add(14 * time.Hour), from.AddDate(0, 0, 3).Add(15*time.Hour + 10*time.Minute)}},
				MinNotice: 26 * time.Hour, Horizon: 6 * 24 * time.Hour,
				VisitTypes: []VisitType{{Code: "long", Duration: time.Hour}, {Code: "short", Duration: 20 * time.Minute}, {Code: "odd", Duration: 50 * time.Minute}},
			}
			now := from.Add(9 * time.Hour)
			seen := map[error]int{}
			for _, vt := range []string{"", "long", "short", "odd"} {
				q := Query{From: from, To: to, Now: now, VisitType: vt}
				slots := Slots(a, q)
				checkInvariants(t, a, q, slots)
				ends := map[time.Time]time.Time{}
				for _, s := range slots {
					ends[s.Start] = s.End
				}
				for at := from; at.Before(to); at = at.Add(5 * time.Minute) {
					end, err := a.Check(at, vt, now)
					wantEnd, ok := ends[at.UTC()]
					switch {
					case ok && (err != nil || !end.Equal(wantEnd)):
						t.Errorf("%q at %s: Check = %v, %v; Slots gave it ending %v", vt, at.In(loc).Format(time.RFC3339), end, err, wantEnd)
					case !ok && err == nil:
						t.Errorf("%q at %s: Check accepted a start Slots does not give", vt, at.In(loc).Format(time.RFC3339))
					case !ok:
						known := false
						for _, e := range []error{ErrOutsideHours, ErrTimeOff, ErrTooSoon, ErrTooFar} {
							if errors.Is(err, e) {
								seen[e]++
								known = true
							}
						}
						if !known {
							t.Errorf("%q at %s: unexpected error %v", vt, at.Format(time.RFC3339), err)
						}
					}
				}
				if len(slots) < 10 {
					t.Errorf("%q: only %d slots", vt, len(slots))
				}
			}
			for _, e := range []error{ErrOutsideHours, ErrTimeOff, ErrTooSoon, ErrTooFar} {
				if seen[e] == 0 {
					t.Errorf("no start was refused with %v", e)
				}
			}
		})
	}
}

func TestAlternatives(t *testing.T) {
	day := time.Date(2026, 6, 15, 0, 0, 0, 0, time.UTC)
	at := func(hm string) time.Time {
		var h, m int
		if _, err := fmt.Sscanf(hm, "%d:%d", &h, &m); err != nil {
			t.Fatal(err)
		}
		return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
	}
	var slots []Slot
	for _, s := range []struct {
		at   string
		free bool
	}{{"09:00", true}, {"09:30", true}, {"10:00", false}, {"10:30", true}, {"11:00", true}, {"11:30", false}, {"12:00", true}} {
		slots = append(slots, Slot{Start: at(s.at), End: at(s.at).Add(30 * time.Minute), Free: s.free})
	}
	shuffled := []Slot{slots[4], slots[0], slots[6], slots[2], slots[1], slots[5], slots[3]}
	cases := []struct {
		name  string
		slots []Slot
		want  string
		n     int
		got   []string
	}{
		{"a tie goes to the earlier", slots, "10:00", 1, []string{"09:30"}},
		{"both sides of a taken slot", slots, "10:00", 2, []string{"09:30", "10:30"}},
		{"a second tie goes to the earlier", slots, "10:00", 3, []string{"09:00", "09:30", "10:30"}},
		{"four around a taken slot", slots, "10:00", 4, []string{"09:00", "09:30", "10:30", "11:00"}},
		{"nearer beats earlier", slots, "10:10", 1, []string{"10:30"}},
		{"nearer beats earlier, two", slots, "10:10", 2, []string{"09:30", "10:30"}},
		{"want is itself free", slots, "11:00", 2, []string{"10:30", "11:00"}},
		{"taken slots are skipped", slots, "11:30", 2, []string{"11:00", "12:00"}},
		{"before every slot", slots, "06:00", 2, []string{"09:00", "09:30"}},
		{"after every slot", slots, "23:00", 3, []string{"10:30", "11:00", "12:00"}},
		{"more wanted than free", slots, "10:00", 9, []string{"09:00", "09:30", "10:30", "11:00", "12:00"}},
		{"slots out of order", shuffled, "10:10", 3, []string{"09:30", "10:30", "11:00"}},
		{"none wanted", slots, "10:00", 0, nil},
		{"a negative number wanted", slots, "10:00", -1, nil},
		{"no slots", nil, "10:00", 3, nil},
		{"none free", []Slot{slots[2], slots[5]}, "10:00", 3, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := slices.Clone(c.slots)
			alt := Alternatives(c.slots, at(c.want), c.n)
			var got []string
			for _, s := range alt {
				if !s.Free {
					t.Errorf("offered a taken slot %v", s)
				}
				got = append(got, s.Start.Format("15:04"))
			}
			if !slices.Equal(got, c.got) {
				t.Errorf("got %v, want %v", got, c.got)
			}
			if !slices.Equal(c.slots, before) {
				t.Errorf("Alternatives changed its argument")
			}
		})
	}
}

func TestAlternativesFromSlots(t *testing.T) {
	// The use it is for: a slot was just taken, offer the nearest free ones.
	a, mon := workWeek(t)
	at := func(day, h, m int) time.Time { return time.Date(2026, 6, 15+day, h, m, 0, 0, a.Zone) }
	a.Buffer = 10 * time.Minute
	busy := []Interval{{at(0, 10, 0), at(0, 10, 30)}, {at(0, 11, 30), at(0, 12, 0)}}
	slots := Slots(a, Query{From: mon, To: mon.AddDate(0, 0, 7), Busy: busy})
	var got []string
	for _, s := range Alternatives(slots, at(0, 10, 0), 3) {
		got = append(got, s.Start.In(a.Zone).Format("Mon 15:04"))
	}
	// 09:30 and 10:30 lie within the buffer of 10:00; 11:00 of 11:30.
	if want := []string{"Mon 09:00", "Tue 09:00", "Tue 09:30"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
