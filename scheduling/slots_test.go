package scheduling

import (
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

// checkInvariants holds for every result of Slots: UTC instants, each slot
// SlotLength long, in order, never overlapping, and each one Contained.
func checkInvariants(t *testing.T, a Availability, slots []Slot) {
	t.Helper()
	for i, s := range slots {
		if s.Start.Location() != time.UTC || s.End.Location() != time.UTC {
			t.Errorf("slot %d not in UTC: %v", i, s)
		}
		if s.End.Sub(s.Start) != a.SlotLength {
			t.Errorf("slot %d lasts %s, want %s", i, s.End.Sub(s.Start), a.SlotLength)
		}
		if i > 0 && s.Start.Before(slots[i-1].End) {
			t.Errorf("slot %d (%v) overlaps or precedes slot %d (%v)", i, s.Start, i-1, slots[i-1])
		}
		if !a.Contains(s.Start, s.End) {
			t.Errorf("Contains refused generated slot %d %v", i, s)
		}
	}
}

func TestSlotsAcrossTimeZonesAndDST(t *testing.T) {
	cases := []struct {
		name   string
		zone   string
		day    string // local date
		start  int    // minutes after local midnight
		end    int
		length time.Duration
		want   []string
	}{
		{"New York day before spring forward", "America/New_York", "2026-03-07", 13 * 60, 14 * 60, 30 * time.Minute,
			[]string{"2026-03-07 13:00 -0500", "2026-03-07 13:30 -0500"}},
		{"New York spring forward keeps 13:00 local", "America/New_York", "2026-03-08", 13 * 60, 14 * 60, 30 * time.Minute,
			[]string{"2026-03-08 13:00 -0400", "2026-03-08 13:30 -0400"}},
		{"New York spring gap skips 02:00-03:00", "America/New_York", "2026-03-08", 60, 4 * 60, 30 * time.Minute,
			[]string{"2026-03-08 01:00 -0500", "2026-03-08 01:30 -0500", "2026-03-08 03:00 -0400", "2026-03-08 03:30 -0400"}},
		{"New York spring gap with 45-minute slots never overlaps", "America/New_York", "2026-03-08", 60, 5 * 60, 45 * time.Minute,
			// 01:45 EST ends at 03:30 EDT, so 03:15 is dropped.
			[]string{"2026-03-08 01:00 -0500", "2026-03-08 01:45 -0500", "2026-03-08 04:00 -0400"}},
		{"New York spring block overrun is dropped", "America/New_York", "2026-03-08", 60, 3 * 60, time.Hour,
			// 01:00 EST + 1h = 03:00 EDT, the block's end; 02:00 does not exist.
			[]string{"2026-03-08 01:00 -0500"}},
		{"New York autumn back keeps 13:00 local", "America/New_York", "2026-11-01", 13 * 60, 14 * 60, 30 * time.Minute,
			[]string{"2026-11-01 13:00 -0500", "2026-11-01 13:30 -0500"}},
		{"New York autumn repeated hour once", "America/New_York", "2026-11-01", 0, 3 * 60, 30 * time.Minute,
			[]string{"2026-11-01 00:00 -0400", "2026-11-01 00:30 -0400", "2026-11-01 01:00 -0400", "2026-11-01 01:30 -0400",
				"2026-11-01 02:00 -0500", "2026-11-01 02:30 -0500"}},
		{"London after clocks go forward", "Europe/London", "2026-03-29", 13 * 60, 15 * 60, time.Hour,
			[]string{"2026-03-29 13:00 +0100", "2026-03-29 14:00 +0100"}},
		{"London after clocks go back", "Europe/London", "2026-10-25", 16 * 60, 17 * 60, 20 * time.Minute,
			[]string{"2026-10-25 16:00 +0000", "2026-10-25 16:20 +0000", "2026-10-25 16:40 +0000"}},
		{"London repeated hour at its first occurrence", "Europe/London", "2026-10-25", 60, 2*60 + 30, 30 * time.Minute,
			[]string{"2026-10-25 01:00 +0100", "2026-10-25 01:30 +0100", "2026-10-25 02:00 +0000"}},
		{"Adelaide half-hour offset, DST start", "Australia/Adelaide", "2026-10-04", 13*60 + 30, 15 * 60, 45 * time.Minute,
			[]string{"2026-10-04 13:30 +1030", "2026-10-04 14:15 +1030"}},
		{"Adelaide half-hour offset, DST end", "Australia/Adelaide", "2026-04-05", 13 * 60, 14 * 60, 30 * time.Minute,
			[]string{"2026-04-05 13:00 +0930", "2026-04-05 13:30 +0930"}},
		{"Adelaide repeated hour at its first occurrence", "Australia/Adelaide", "2026-04-05", 2 * 60, 4 * 60, time.Hour,
			// time.Date alone would put 02:00 at +0930, the second occurrence.
			[]string{"2026-04-05 02:00 +1030", "2026-04-05 03:00 +0930"}},
		{"Adelaide spring gap", "Australia/Adelaide", "2026-10-04", 60, 4 * 60, time.Hour,
			[]string{"2026-10-04 01:00 +0930", "2026-10-04 03:00 +1030"}},
		{"block to midnight", "Europe/London", "2026-06-15", 22 * 60, 24 * 60, time.Hour,
			[]string{"2026-06-15 22:00 +0100", "2026-06-15 23:00 +0100"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			loc := mustZone(t, c.zone)
			d, err := time.ParseInLocation("2006-01-02", c.day, loc)
			if err != nil {
				t.Fatal(err)
			}
			a := Availability{Zone: loc, SlotLength: c.length, Weekly: []WeeklyHours{{Weekday: d.Weekday(), Start: c.start, End: c.end}}}
			slots := Slots(a, d, d.AddDate(0, 0, 1), time.Time{}, nil)
			if got := localStarts(slots, loc); !slices.Equal(got, c.want) {
				t.Fatalf("got  %v\nwant %v", got, c.want)
			}
			checkInvariants(t, a, slots)
		})
	}
}

// TestSlotsWeekAcrossDST asks for a week spanning a change: the local
// times stay put while the UTC instants move by the hour.
func TestSlotsWeekAcrossDST(t *testing.T) {
	cases := []struct {
		zone       string
		from       string // local date; a week from it is asked for
		wantLocal  string
		wantBefore string // UTC of the first slot
		wantAfter  string // UTC of the last slot
	}{
		{"America/New_York", "2026-03-05", "13:00", "2026-03-05T18:00:00Z", "2026-03-11T17:00:00Z"},
		{"America/New_York", "2026-10-29", "13:00", "2026-10-29T17:00:00Z", "2026-11-04T18:00:00Z"},
		{"Europe/London", "2026-03-26", "13:00", "2026-03-26T13:00:00Z", "2026-04-01T12:00:00Z"},
		{"Australia/Adelaide", "2026-04-02", "13:00", "2026-04-02T02:30:00Z", "2026-04-08T03:30:00Z"},
	}
	for _, c := range cases {
		t.Run(c.zone+" "+c.from, func(t *testing.T) {
			loc := mustZone(t, c.zone)
			from, _ := time.ParseInLocation("2006-01-02", c.from, loc)
			var weekly []WeeklyHours
			for d := time.Sunday; d <= time.Saturday; d++ {
				weekly = append(weekly, WeeklyHours{Weekday: d, Start: 13 * 60, End: 14 * 60})
			}
			a := Availability{Zone: loc, SlotLength: time.Hour, Weekly: weekly}
			slots := Slots(a, from, from.AddDate(0, 0, 7), time.Time{}, nil)
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
			checkInvariants(t, a, slots)
		})
	}
}

func TestSlotsBusyAndNow(t *testing.T) {
	loc := mustZone(t, "Europe/Berlin")
	day := time.Date(2026, 6, 15, 0, 0, 0, 0, loc) // a Monday
	at := func(h, m int) time.Time { return time.Date(2026, 6, 15, h, m, 0, 0, loc) }
	a := Availability{Zone: loc, SlotLength: 30 * time.Minute, Weekly: []WeeklyHours{{Weekday: time.Monday, Start: 9 * 60, End: 12 * 60}}}
	type want struct {
		at   string
		free bool
	}
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
			got := Slots(a, day, day.AddDate(0, 0, 1), c.now, c.busy)
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %d slots", localStarts(got, loc), len(c.want))
			}
			for i, w := range c.want {
				if at := got[i].Start.In(loc).Format("15:04"); at != w.at || got[i].Free != w.free {
					t.Errorf("slot %d: %s free=%v, want %s free=%v", i, at, got[i].Free, w.at, w.free)
				}
			}
			checkInvariants(t, a, got)
		})
	}
}

func TestSlotsRangeEdges(t *testing.T) {
	loc := mustZone(t, "America/New_York")
	a := Availability{Zone: loc, SlotLength: time.Hour, Weekly: []WeeklyHours{
		{Weekday: time.Monday, Start: 9 * 60, End: 12 * 60},
		{Weekday: time.Monday, Start: 10 * 60, End: 11 * 60}, // overlaps the first: no duplicates
		{Weekday: time.Tuesday, Start: 0, End: 60},
	}}
	mon := time.Date(2026, 6, 15, 0, 0, 0, 0, loc)
	// from inclusive, to exclusive, both mid-block.
	got := localStarts(Slots(a, mon.Add(10*time.Hour), mon.Add(11*time.Hour+time.Minute), time.Time{}, nil), loc)
	if want := []string{"2026-06-15 10:00 -0400", "2026-06-15 11:00 -0400"}; !slices.Equal(got, want) {
		t.Errorf("mid-block range: %v, want %v", got, want)
	}
	// A range given in another zone, just after local midnight on Tuesday.
	tue := time.Date(2026, 6, 16, 4, 0, 0, 0, time.UTC) // 00:00 in New York
	got = localStarts(Slots(a, tue, tue.Add(time.Hour), time.Time{}, nil), loc)
	if want := []string{"2026-06-16 00:00 -0400"}; !slices.Equal(got, want) {
		t.Errorf("range in UTC: %v, want %v", got, want)
	}
	for _, bad := range []Availability{{}, {Zone: loc, Weekly: a.Weekly}, {Zone: loc, SlotLength: time.Hour}} {
		if got := Slots(bad, mon, mon.AddDate(0, 0, 7), time.Time{}, nil); got != nil {
			t.Errorf("Slots(%+v) = %v, want none", bad, got)
		}
	}
	if got := Slots(a, mon.AddDate(0, 0, 7), mon, time.Time{}, nil); got != nil {
		t.Errorf("reversed range gave %v", got)
	}
}

func TestContains(t *testing.T) {
	loc := mustZone(t, "Australia/Adelaide")
	a := Availability{Zone: loc, SlotLength: 30 * time.Minute, Weekly: []WeeklyHours{{Weekday: time.Monday, Start: 13 * 60, End: 15 * 60}}}
	s := time.Date(2026, 6, 15, 13, 30, 0, 0, loc) // a Monday
	cases := []struct {
		name       string
		start, end time.Time
		want       bool
	}{
		{"a slot", s, s.Add(30 * time.Minute), true},
		{"a slot given in UTC", s.UTC(), s.Add(30 * time.Minute).UTC(), true},
		{"a slot a year (52 weeks) ago", s.AddDate(0, 0, -364), s.AddDate(0, 0, -364).Add(30 * time.Minute), true},
		{"off the grid", s.Add(5 * time.Minute), s.Add(35 * time.Minute), false},
		{"double length", s, s.Add(time.Hour), false},
		{"too short", s, s.Add(15 * time.Minute), false},
		{"past the block's end", s.Add(90 * time.Minute), s.Add(2 * time.Hour), false},
		{"another weekday", s.AddDate(0, 0, 1), s.AddDate(0, 0, 1).Add(30 * time.Minute), false},
	}
	for _, c := range cases {
		if got := a.Contains(c.start, c.end); got != c.want {
			t.Errorf("%s: Contains = %v, want %v", c.name, got, c.want)
		}
	}
}

func BenchmarkSlotsMonth(b *testing.B) {
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
	b.ReportAllocs()
	for b.Loop() {
		Slots(a, from, from.AddDate(0, 1, 0), time.Time{}, busy)
	}
}
