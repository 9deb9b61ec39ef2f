package scheduling

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// localStarts renders slot starts as local wall times with their offsets.
func localStarts(slots []Slot, loc *time.Location) []string {
	var out []string
	for _, s := range slots {
		out = append(out, s.Start.In(loc).Format("2006-01-02 15:04 -0700"))
	}
	return out
}

// checkInvariants holds for every result of Slots: UTC instants starting in
// [q.From, q.To), each slot as long as the visit type, starts strictly in
// order and, within one block of hours, at least SlotLength apart in real
// time, and each slot accepted by Check with the same end. Slots of a visit
// longer than SlotLength may overlap (they are alternative starts); slots of
// different blocks only have to be in order, as blocks may lie closer
// together than one step.
func checkInvariants(t *testing.T, a Availability, q Query, slots []Slot) {
	t.Helper()
	length, _ := a.VisitLength(q.VisitType)
	for i, s := range slots {
		if s.Start.Location() != time.UTC || s.End.Location() != time.UTC {
			t.Errorf("slot %d not in UTC: %v", i, s)
		}
		if s.Start.Before(q.From) || !s.Start.Before(q.To) {
			t.Errorf("slot %d starts at %v, outside [%v, %v)", i, s.Start, q.From, q.To)
		}
		if s.End.Sub(s.Start) != length {
			t.Errorf("slot %d lasts %s, want %s", i, s.End.Sub(s.Start), length)
		}
		if i > 0 {
			prev := slots[i-1]
			if !s.Start.After(prev.Start) {
				t.Errorf("slot %d (%v) does not start after slot %d (%v)", i, s.Start, i-1, prev.Start)
			} else if gap := s.Start.Sub(prev.Start); gap < a.SlotLength && sameBlock(a, prev.Start, s.Start) {
				t.Errorf("slot %d (%v) starts %s after slot %d (%v) of the same block, less than a step of %s",
					i, s.Start, gap, i-1, prev.Start, a.SlotLength)
			}
		}
		if end, err := a.Check(s.Start, q.VisitType, q.Now); err != nil || !end.Equal(s.End) {
			t.Errorf("Check(slot %d %v) = %v, %v; want %v", i, s, end, err, s.End)
		}
	}
}

// checkNoOtherStarts asks Check about every five minutes of [q.From, q.To)
// that slots do not start at: it must refuse them all.
func checkNoOtherStarts(t *testing.T, a Availability, q Query, slots []Slot) {
	t.Helper()
	given := make(map[time.Time]bool, len(slots))
	for _, s := range slots {
		given[s.Start] = true
	}
	for at := q.From; at.Before(q.To); at = at.Add(5 * time.Minute) {
		if given[at.UTC()] {
			continue
		}
		if end, err := a.Check(at, q.VisitType, q.Now); err == nil {
			t.Errorf("Check accepted %s (ending %s), which Slots does not give",
				at.In(a.Zone).Format("2006-01-02 15:04 -0700"), end.In(a.Zone).Format("15:04 -0700"))
		}
	}
}

// sameBlock reports whether the wall clock of a.Zone shows x and y on one
// local date, each inside exactly one block of that date's hours (its
// Override's, or else its weekday's), and that block the same.
func sameBlock(a Availability, x, y time.Time) bool {
	dx, bx, ok := blockOf(a, x)
	if !ok {
		return false
	}
	dy, by, ok := blockOf(a, y)
	return ok && dx == dy && bx == by
}

// blockOf returns the local date of t in a.Zone and the one block of that
// date's hours holding t's wall-clock minute; false if none or several do.
func blockOf(a Availability, t time.Time) (Date, Block, bool) {
	local := t.In(a.Zone)
	date, minute := DateOf(local), local.Hour()*60+local.Minute()
	var blocks []Block
	overridden := false
	for _, o := range a.Overrides {
		if o.Date == date {
			blocks, overridden = o.Blocks, true
			break
		}
	}
	if !overridden {
		for _, h := range a.Weekly {
			if h.Weekday == local.Weekday() {
				blocks = append(blocks, Block{h.Start, h.End})
			}
		}
	}
	var found []Block
	for _, b := range blocks {
		if b.Start <= minute && minute < b.End {
			found = append(found, b)
		}
	}
	if len(found) != 1 {
		return date, Block{}, false
	}
	return date, found[0], true
}

// oneDay is an Availability with one block on the weekday of the local
// date day, and a visit type "v" of the given length (0: SlotLength).
func oneDay(t *testing.T, zone, day string, start, end int, step, visit time.Duration) (Availability, Query) {
	t.Helper()
	loc := mustZone(t, zone)
	d, err := time.ParseInLocation(time.DateOnly, day, loc)
	if err != nil {
		t.Fatal(err)
	}
	a := Availability{Zone: loc, SlotLength: step, Weekly: []WeeklyHours{{Weekday: d.Weekday(), Start: start, End: end}}}
	q := Query{From: d, To: d.AddDate(0, 0, 1)}
	if visit != 0 {
		a.VisitTypes = []VisitType{{Code: "v", Name: "Visit", Duration: visit}}
		q.VisitType = "v"
	}
	return a, q
}

func TestSlotsAcrossTimeZonesAndDST(t *testing.T) {
	cases := []struct {
		name   string
		zone   string
		day    string // local date
		start  int    // minutes after local midnight
		end    int
		length time.Duration
		visit  time.Duration // 0: the slot length
		want   []string
	}{
		{"New York day before spring forward", "America/New_York", "2026-03-07", 13 * 60, 14 * 60, 30 * time.Minute, 0,
			[]string{"2026-03-07 13:00 -0500", "2026-03-07 13:30 -0500"}},
		{"New York spring forward keeps 13:00 local", "America/New_York", "2026-03-08", 13 * 60, 14 * 60, 30 * time.Minute, 0,
			[]string{"2026-03-08 13:00 -0400", "2026-03-08 13:30 -0400"}},
		{"New York spring gap skips 02:00-03:00", "America/New_York", "2026-03-08", 60, 4 * 60, 30 * time.Minute, 0,
			[]string{"2026-03-08 01:00 -0500", "2026-03-08 01:30 -0500", "2026-03-08 03:00 -0400", "2026-03-08 03:30 -0400"}},
		{"New York spring gap with 45-minute slots keeps starts a step apart", "America/New_York", "2026-03-08", 60, 5 * 60, 45 * time.Minute, 0,
			// 01:45 EST ends at 03:30 EDT, so 03:15 is dropped.
			[]string{"2026-03-08 01:00 -0500", "2026-03-08 01:45 -0500", "2026-03-08 04:00 -0400"}},
		{"New York spring block overrun is dropped", "America/New_York", "2026-03-08", 60, 3 * 60, time.Hour, 0,
			// 01:00 EST + 1h = 03:00 EDT, the block's end; 02:00 does not exist.
			[]string{"2026-03-08 01:00 -0500"}},
		{"New York spring block overrun is dropped though the wall clock fits", "America/New_York", "2026-03-08", 90, 3*60 + 30, 30 * time.Minute, 90 * time.Minute,
			// 01:30 EST + 90 minutes is 04:00 EDT, past 03:30; 03:00 + 90 minutes is past 03:30 on the wall clock.
			nil},
		{"London spring forward, a visit across the gap ends at the block's end", "Europe/London", "2026-03-29", 30, 2*60 + 30, 30 * time.Minute, time.Hour,
			// 00:30 GMT + 1h = 02:30 BST; 01:00 and 01:30 do not exist.
			[]string{"2026-03-29 00:30 +0000"}},
		{"New York autumn back, a slot must fit its block on the wall clock", "America/New_York", "2026-11-01", 0, 2 * 60, 90 * time.Minute, 0,
			// 01:30 EDT + 90 minutes is 02:00 EST, the block's end, but 01:30 + 1:30 is past 02:00.
			[]string{"2026-11-01 00:00 -0400"}},
		{"New York autumn back keeps 13:00 local", "America/New_York", "2026-11-01", 13 * 60, 14 * 60, 30 * time.Minute, 0,
			[]string{"2026-11-01 13:00 -0500", "2026-11-01 13:30 -0500"}},
		{"New York autumn repeated hour once", "America/New_York", "2026-11-01", 0, 3 * 60, 30 * time.Minute, 0,
			[]string{"2026-11-01 00:00 -0400", "2026-11-01 00:30 -0400", "2026-11-01 01:00 -0400", "2026-11-01 01:30 -0400",
				"2026-11-01 02:00 -0500", "2026-11-01 02:30 -0500"}},
		{"London after clocks go forward", "Europe/London", "2026-03-29", 13 * 60, 15 * 60, time.Hour, 0,
			[]string{"2026-03-29 13:00 +0100", "2026-03-29 14:00 +0100"}},
		{"London after clocks go back", "Europe/London", "2026-10-25", 16 * 60, 17 * 60, 20 * time.Minute, 0,
			[]string{"2026-10-25 16:00 +0000", "2026-10-25 16:20 +0000", "2026-10-25 16:40 +0000"}},
		{"London repeated hour at its first occurrence", "Europe/London", "2026-10-25", 60, 2*60 + 30, 30 * time.Minute, 0,
			[]string{"2026-10-25 01:00 +0100", "2026-10-25 01:30 +0100", "2026-10-25 02:00 +0000"}},
		{"Adelaide half-hour offset, DST start", "Australia/Adelaide", "2026-10-04", 13*60 + 30, 15 * 60, 45 * time.Minute, 0,
			[]string{"2026-10-04 13:30 +1030", "2026-10-04 14:15 +1030"}},
		{"Adelaide half-hour offset, DST end", "Australia/Adelaide", "2026-04-05", 13 * 60, 14 * 60, 30 * time.Minute, 0,
			[]string{"2026-04-05 13:00 +0930", "2026-04-05 13:30 +0930"}},
		{"Adelaide repeated hour at its first occurrence", "Australia/Adelaide", "2026-04-05", 2 * 60, 4 * 60, time.Hour, 0,
			// time.Date alone would put 02:00 at +0930, the second occurrence.
			[]string{"2026-04-05 02:00 +1030", "2026-04-05 03:00 +0930"}},
		{"Adelaide spring gap", "Australia/Adelaide", "2026-10-04", 60, 4 * 60, time.Hour, 0,
			[]string{"2026-10-04 01:00 +0930", "2026-10-04 03:00 +1030"}},
		{"block to midnight", "Europe/London", "2026-06-15", 22 * 60, 24 * 60, time.Hour, 0,
			[]string{"2026-06-15 22:00 +0100", "2026-06-15 23:00 +0100"}},

		// Visits longer or shorter than the step between starts. A longer
		// visit may start at every grid point from which it fits in its
		// block; only one of the overlapping alternatives is booked.
		{"60-minute visits on a 30-minute grid start at every grid point", "America/New_York", "2026-06-15", 9 * 60, 12 * 60, 30 * time.Minute, time.Hour,
			// The :30 starts are offered too; 11:30 would end at 12:30.
			[]string{"2026-06-15 09:00 -0400", "2026-06-15 09:30 -0400", "2026-06-15 10:00 -0400", "2026-06-15 10:30 -0400", "2026-06-15 11:00 -0400"}},
		{"a long visit must end within its block", "America/New_York", "2026-06-15", 9 * 60, 11*60 + 30, 30 * time.Minute, time.Hour,
			// 10:30 ends at 11:30, the block's end; 11:00 would end at 12:00.
			[]string{"2026-06-15 09:00 -0400", "2026-06-15 09:30 -0400", "2026-06-15 10:00 -0400", "2026-06-15 10:30 -0400"}},
		{"New York spring forward, 60-minute visits at 13:00", "America/New_York", "2026-03-08", 13 * 60, 15 * 60, 30 * time.Minute, time.Hour,
			[]string{"2026-03-08 13:00 -0400", "2026-03-08 13:30 -0400", "2026-03-08 14:00 -0400"}},
		{"New York spring gap, 60-minute visits on a 30-minute grid", "America/New_York", "2026-03-08", 60, 5 * 60, 30 * time.Minute, time.Hour,
			// 02:xx do not exist; 03:00 EDT is 30 real minutes (one step)
			// after 01:30 EST, though 01:30 EST ends at 03:30 EDT.
			[]string{"2026-03-08 01:00 -0500", "2026-03-08 01:30 -0500", "2026-03-08 03:00 -0400", "2026-03-08 03:30 -0400", "2026-03-08 04:00 -0400"}},
		{"New York spring gap, 45-minute visits on a 15-minute grid", "America/New_York", "2026-03-08", 60, 4 * 60, 15 * time.Minute, 45 * time.Minute,
			// 02:00-02:45 do not exist; 03:00 EDT is 15 real minutes (one
			// step) after 01:45 EST; 03:30 would end at 04:15, past 04:00.
			[]string{"2026-03-08 01:00 -0500", "2026-03-08 01:15 -0500", "2026-03-08 01:30 -0500", "2026-03-08 01:45 -0500",
				"2026-03-08 03:00 -0400", "2026-03-08 03:15 -0400"}},
		{"New York spring gap, 90-minute visits on a 45-minute grid", "America/New_York", "2026-03-08", 60, 6 * 60, 45 * time.Minute, 90 * time.Minute,
			// 02:30 does not exist; 03:15 EDT is only 30 real minutes after
			// 01:45 EST, less than a step, so it is dropped; 04:00 EDT is 75
			// real minutes after 01:45 EST, the previous start kept.
			[]string{"2026-03-08 01:00 -0500", "2026-03-08 01:45 -0500", "2026-03-08 04:00 -0400"}},
		{"New York spring gap, 20-minute visits on an hourly grid", "America/New_York", "2026-03-08", 60, 4 * 60, time.Hour, 20 * time.Minute,
			[]string{"2026-03-08 01:00 -0500", "2026-03-08 03:00 -0400"}},
		{"New York autumn back, 60-minute visits at 13:00", "America/New_York", "2026-11-01", 13 * 60, 15 * 60, 30 * time.Minute, time.Hour,
			[]string{"2026-11-01 13:00 -0500", "2026-11-01 13:30 -0500", "2026-11-01 14:00 -0500"}},
		{"New York repeated hour, 60-minute visits on a 30-minute grid", "America/New_York", "2026-11-01", 0, 3 * 60, 30 * time.Minute, time.Hour,
			// 01:00 and 01:30 at their first occurrence (EDT) only; 01:30 EDT
			// ends at 01:30 EST; 02:00 EST ends at the block's end.
			[]string{"2026-11-01 00:00 -0400", "2026-11-01 00:30 -0400", "2026-11-01 01:00 -0400", "2026-11-01 01:30 -0400", "2026-11-01 02:00 -0500"}},
		{"London after clocks go forward, 90-minute visits at 13:00", "Europe/London", "2026-03-29", 13 * 60, 17 * 60, 30 * time.Minute, 90 * time.Minute,
			// 15:30 ends at the block's end.
			[]string{"2026-03-29 13:00 +0100", "2026-03-29 13:30 +0100", "2026-03-29 14:00 +0100", "2026-03-29 14:30 +0100",
				"2026-03-29 15:00 +0100", "2026-03-29 15:30 +0100"}},
		{"London spring gap, 60-minute visits on a 15-minute grid", "Europe/London", "2026-03-29", 15, 2*60 + 30, 15 * time.Minute, time.Hour,
			// 00:30 GMT + 1h = 02:30 BST, the block's end; 00:45 GMT + 1h =
			// 02:45 BST is past it though 00:45 + 1:00 fits on the wall clock;
			// 01:00-01:30 do not exist.
			[]string{"2026-03-29 00:15 +0000", "2026-03-29 00:30 +0000"}},
		{"London repeated hour, 60-minute visits on a 30-minute grid", "Europe/London", "2026-10-25", 30, 3 * 60, 30 * time.Minute, time.Hour,
			// 01:30 BST ends at 01:30 GMT; 02:00 GMT is 90 real minutes after it.
			[]string{"2026-10-25 00:30 +0100", "2026-10-25 01:00 +0100", "2026-10-25 01:30 +0100", "2026-10-25 02:00 +0000"}},
		{"London after clocks go back, 60-minute visits at 13:00", "Europe/London", "2026-10-25", 13 * 60, 15 * 60, 30 * time.Minute, time.Hour,
			[]string{"2026-10-25 13:00 +0000", "2026-10-25 13:30 +0000", "2026-10-25 14:00 +0000"}},
		{"Adelaide DST start, 60-minute visits at 13:00", "Australia/Adelaide", "2026-10-04", 13 * 60, 15*60 + 30, 30 * time.Minute, time.Hour,
			// 14:30 ends at the block's end, overlapping 14:00-15:00.
			[]string{"2026-10-04 13:00 +1030", "2026-10-04 13:30 +1030", "2026-10-04 14:00 +1030", "2026-10-04 14:30 +1030"}},
		{"Adelaide spring gap, 45-minute visits on a 15-minute grid", "Australia/Adelaide", "2026-10-04", 90, 3*60 + 45, 15 * time.Minute, 45 * time.Minute,
			// 02:00-02:45 do not exist; 03:00 +1030 is 15 real minutes after
			// 01:45 +0930 and ends at the block's end.
			[]string{"2026-10-04 01:30 +0930", "2026-10-04 01:45 +0930", "2026-10-04 03:00 +1030"}},
		{"Adelaide DST start, 15-minute visits on a 30-minute grid", "Australia/Adelaide", "2026-10-04", 13*60 + 30, 14*60 + 30, 30 * time.Minute, 15 * time.Minute,
			[]string{"2026-10-04 13:30 +1030", "2026-10-04 14:00 +1030"}},
		{"Adelaide DST end, 45-minute visits at 13:00", "Australia/Adelaide", "2026-04-05", 13 * 60, 15 * 60, 30 * time.Minute, 45 * time.Minute,
			// 14:30 would end at 15:15.
			[]string{"2026-04-05 13:00 +0930", "2026-04-05 13:30 +0930", "2026-04-05 14:00 +0930"}},
		{"Adelaide repeated hour, 60-minute visits on a 30-minute grid", "Australia/Adelaide", "2026-04-05", 90, 4 * 60, 30 * time.Minute, time.Hour,
			// 02:00 and 02:30 at their first occurrence (+1030) only; 02:30
			// +1030 ends at 02:30 +0930; 03:00 +0930 ends at the block's end.
			[]string{"2026-04-05 01:30 +1030", "2026-04-05 02:00 +1030", "2026-04-05 02:30 +1030", "2026-04-05 03:00 +0930"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, q := oneDay(t, c.zone, c.day, c.start, c.end, c.length, c.visit)
			slots := Slots(a, q)
			checkInvariants(t, a, q, slots)
			checkNoOtherStarts(t, a, q, slots)
			if got := localStarts(slots, a.Zone); !slices.Equal(got, c.want) {
				t.Fatalf("got  %v\nwant %v", got, c.want)
			}
		})
	}
}

// TestSlotsEveryGridPoint checks the rule on a day with no clock change,
// for visits shorter than, as long as and longer than the step: a visit
// starts at every step from the block's start from which it ends by the
// block's end, and nowhere else.
func TestSlotsEveryGridPoint(t *testing.T) {
	const start, end = 8 * 60, 12*60 + 10 // 250 minutes, a multiple of no step
	for _, step := range []int{10, 15, 20, 30, 45, 60} {
		for _, visit := range []int{5, 10, 15, 25, 30, 45, 50, 60, 90, 120, 249, 250, 251} {
			t.Run(fmt.Sprintf("%d-minute visits on a %d-minute grid", visit, step), func(t *testing.T) {
				a, q := oneDay(t, "Australia/Adelaide", "2026-06-15", start, end, time.Duration(step)*time.Minute, time.Duration(visit)*time.Minute)
				var want []string
				for m := start; m+visit <= end; m += step {
					want = append(want, fmt.Sprintf("2026-06-15 %02d:%02d +0930", m/60, m%60))
				}
				slots := Slots(a, q)
				checkInvariants(t, a, q, slots)
				checkNoOtherStarts(t, a, q, slots)
				if got := localStarts(slots, a.Zone); !slices.Equal(got, want) {
					t.Fatalf("got  %v\nwant %v", got, want)
				}
				for i, s := range slots {
					if !s.Free {
						t.Errorf("slot %d not free with nothing busy", i)
					}
				}
			})
		}
	}
}

// TestSlotsWeekAcrossDST asks for a week spanning a change: the local
// times stay put while the UTC instants move by the hour.
func TestSlotsWeekAcrossDST(t *testing.T) {
	cases := []struct {
		zone       string
		from       string // local date; a week from it is asked for
		visit      time.Duration
		wantLocal  string
		wantBefore string // UTC of the first slot
		wantAfter  string // UTC of the last slot
	}{
		{"America/New_York", "2026-03-05", 0, "13:00", "2026-03-05T18:00:00Z", "2026-03-11T17:00:00Z"},
		{"America/New_York", "2026-10-29", 0, "13:00", "2026-10-29T17:00:00Z", "2026-11-04T18:00:00Z"},
		{"Europe/London", "2026-03-26", 0, "13:00", "2026-03-26T13:00:00Z", "2026-04-01T12:00:00Z"},
		{"Australia/Adelaide", "2026-04-02", 0, "13:00", "2026-04-02T02:30:00Z", "2026-04-08T03:30:00Z"},
		{"Australia/Adelaide", "2026-10-01", 0, "13:00", "2026-10-01T03:30:00Z", "2026-10-07T02:30:00Z"},
		{"America/New_York", "2026-03-05", 50 * time.Minute, "13:00", "2026-03-05T18:00:00Z", "2026-03-11T17:00:00Z"},
	}
	for _, c := range cases {
		t.Run(c.zone+" "+c.from, func(t *testing.T) {
			loc := mustZone(t, c.zone)
			from, _ := time.ParseInLocation(time.DateOnly, c.from, loc)
			var weekly []WeeklyHours
			for d := time.Sunday; d <= time.Saturday; d++ {
				weekly = append(weekly, WeeklyHours{Weekday: d, Start: 13 * 60, End: 14 * 60})
			}
			a := Availability{Zone: loc, SlotLength: time.Hour, Weekly: weekly,
				VisitTypes: []VisitType{{Code: "short", Duration: c.visit}}}
			q := Query{From: from, To: from.AddDate(0, 0, 7), VisitType: "short"}
			slots := Slots(a, q)
			if len(slots) != 7 {
				t.Fatalf("%d slots, want 7: %v", len(slots), localStarts(slots, loc))
			}
			for _, s := range slots {
				if got := s.Start.In(loc).Format("15:04"); got != c.wantLocal {
					t.Errorf("slot at %s local, want %s", got, c.wantLocal)
				}
			}
			if got := slots[0].Start.Format(time.RFC3339); got != c.wantBefore {
				t.Errorf("first slot %s, want %s", got, c.wantBefore)
			}
			if got := slots[6].Start.Format(time.RFC3339); got != c.wantAfter {
				t.Errorf("last slot %s, want %s", got, c.wantAfter)
			}
			checkInvariants(t, a, q, slots)
		})
	}
}

// want is one expected slot: its local start and whether it is free.
type want struct {
	at   string // 15:04, or Mon 15:04 where the day matters
	free bool
}

// checkSlots compares slots with want, rendering starts with layout.
func checkSlots(t *testing.T, got []Slot, loc *time.Location, layout string, w []want) {
	t.Helper()
	if len(got) != len(w) {
		var all []string
		for _, s := range got {
			all = append(all, s.Start.In(loc).Format(layout))
		}
		t.Fatalf("got %v, want %v", all, w)
	}
	for i, w := range w {
		if at := got[i].Start.In(loc).Format(layout); at != w.at || got[i].Free != w.free {
			t.Errorf("slot %d: %s free=%v, want %s free=%v", i, at, got[i].Free, w.at, w.free)
		}
	}
}

func TestSlotsBusyAndNow(t *testing.T) {
	loc := mustZone(t, "Europe/Berlin")
	day := time.Date(2026, 6, 15, 0, 0, 0, 0, loc) // a Monday
	at := func(h, m int) time.Time { return time.Date(2026, 6, 15, h, m, 0, 0, loc) }
	a := Availability{Zone: loc, SlotLength: 30 * time.Minute, Weekly: []WeeklyHours{{Weekday: time.Monday, Start: 9 * 60, End: 12 * 60}}}
	cases := []struct {
		name string
		now  time.Time
		busy []Interval
		want []want
	}{
		{"all free", time.Time{}, nil,
			[]want{{"09:00", true}, {"09:30", true}, {"10:00", true}, {"10:30", true}, {"11:00", true}, {"11:30", true}}},
		{"now cuts off slots that started", at(9, 10), nil,
			[]want{{"09:30", true}, {"10:00", true}, {"10:30", true}, {"11:00", true}, {"11:30", true}}},
		{"a slot starting now is kept", at(11, 0), nil,
			[]want{{"11:00", true}, {"11:30", true}}},
		{"busy across two slots", time.Time{}, []Interval{{at(9, 45), at(10, 15)}},
			[]want{{"09:00", true}, {"09:30", false}, {"10:00", false}, {"10:30", true}, {"11:00", true}, {"11:30", true}}},
		{"busy touching edges leaves neighbours free", time.Time{}, []Interval{{at(10, 0), at(10, 30)}},
			[]want{{"09:00", true}, {"09:30", true}, {"10:00", false}, {"10:30", true}, {"11:00", true}, {"11:30", true}}},
		{"longer busy, now and busy together", at(10, 1), []Interval{{at(11, 0), at(12, 0)}, {at(8, 0), at(9, 0)}},
			[]want{{"10:30", true}, {"11:00", false}, {"11:30", false}}},
		{"overlapping busy intervals, an empty one ignored", time.Time{}, []Interval{{at(9, 20), at(10, 40)}, {at(9, 0), at(9, 40)}, {at(11, 10), at(11, 10)}},
			[]want{{"09:00", false}, {"09:30", false}, {"10:00", false}, {"10:30", false}, {"11:00", true}, {"11:30", true}}},
		{"now after the day", at(13, 0), nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := Query{From: day, To: day.AddDate(0, 0, 1), Now: c.now, Busy: c.busy}
			got := Slots(a, q)
			checkSlots(t, got, loc, "15:04", c.want)
			checkInvariants(t, a, q, got)
		})
	}
}

// monthAvailability is one physician's weekdays 08:00-18:00 in New York, a
// March with the spring change, with 100 half-hour visits booked.
func monthAvailability(b *testing.B) (Availability, Query) {
	loc := mustZone(b, "America/New_York")
	var weekly []WeeklyHours
	for d := time.Monday; d <= time.Friday; d++ {
		weekly = append(weekly, WeeklyHours{Weekday: d, Start: 8 * 60, End: 18 * 60})
	}
	a := Availability{Zone: loc, SlotLength: 15 * time.Minute, Weekly: weekly}
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, loc)
	var busy []Interval
	for i := range 100 {
		s := from.Add(time.Duration(i) * 7 * time.Hour)
		busy = append(busy, Interval{s, s.Add(30 * time.Minute)})
	}
	return a, Query{From: from, To: from.AddDate(0, 1, 0), Busy: busy}
}

func BenchmarkSlotsMonth(b *testing.B) {
	a, q := monthAvailability(b)
	b.ReportAllocs()
	for b.Loop() {
		Slots(a, q)
	}
}

// BenchmarkSlotsMonthRules adds the rest of Availability to
// BenchmarkSlotsMonth, one rule at a time and then all together: overrides
// (a year of working Saturdays, a day off and a changed day in the month),
// time off (an hour every third day and four days at once), a buffer, and
// notice, horizon and a visit type longer than the step.
func BenchmarkSlotsMonthRules(b *testing.B) {
	at := func(a Availability, day, h int) time.Time { return time.Date(2026, 3, day, h, 0, 0, 0, a.Zone) }
	overrides := func(a *Availability, q *Query) {
		for i := range 52 {
			d := DateOf(time.Date(2026, 1, 3+7*i, 0, 0, 0, 0, time.UTC)) // Saturdays
			a.Overrides = append(a.Overrides, Override{Date: d, Blocks: []Block{{9 * 60, 12 * 60}}})
		}
		a.Overrides = append(a.Overrides, Override{Date: Date{2026, time.March, 9}},
			Override{Date: Date{2026, time.March, 10}, Blocks: []Block{{7 * 60, 10 * 60}, {13 * 60, 20 * 60}}})
	}
	timeOff := func(a *Availability, q *Query) {
		for day := 2; day < 31; day += 3 {
			a.TimeOff = append(a.TimeOff, Interval{at(*a, day, 12), at(*a, day, 13)})
		}
		a.TimeOff = append(a.TimeOff, Interval{at(*a, 23, 0), at(*a, 27, 12)})
	}
	buffer := func(a *Availability, q *Query) { a.Buffer = 10 * time.Minute }
	rest := func(a *Availability, q *Query) {
		a.MinNotice, a.Horizon = 2*time.Hour, 60*24*time.Hour
		a.VisitTypes = []VisitType{{Code: "new", Name: "New patient", Duration: 45 * time.Minute}}
		q.VisitType = "new"
		q.Now = at(*a, 1, 0).Add(-time.Hour)
	}
	for _, c := range []struct {
		name  string
		edits []func(*Availability, *Query)
	}{
		{"overrides", []func(*Availability, *Query){overrides}},
		{"time-off", []func(*Availability, *Query){timeOff}},
		{"buffer", []func(*Availability, *Query){buffer}},
		{"all", []func(*Availability, *Query){overrides, timeOff, buffer, rest}},
	} {
		b.Run(c.name, func(b *testing.B) {
			a, q := monthAvailability(b)
			for _, edit := range c.edits {
				edit(&a, &q)
			}
			if len(Slots(a, q)) < 200 {
				b.Fatal("too few slots")
			}
			b.ReportAllocs()
			for b.Loop() {
				Slots(a, q)
			}
		})
	}
}

func BenchmarkCheck(b *testing.B) {
	a, _ := monthAvailability(b)
	start := time.Date(2026, 3, 11, 16, 45, 0, 0, a.Zone)
	if _, err := a.Check(start, "", time.Time{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		a.Check(start, "", time.Time{})
	}
}
