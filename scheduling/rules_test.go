package scheduling

import (
	"slices"
	"testing"
	"time"
)

func TestSlotsBuffer(t *testing.T) {
	loc := mustZone(t, "Europe/Berlin")
	day := time.Date(2026, 6, 15, 0, 0, 0, 0, loc) // a Monday
	at := func(h, m int) time.Time { return time.Date(2026, 6, 15, h, m, 0, 0, loc) }
	a := Availability{Zone: loc, SlotLength: 30 * time.Minute, Weekly: []WeeklyHours{{Weekday: time.Monday, Start: 9 * 60, End: 12 * 60}},
		VisitTypes: []VisitType{{Code: "long", Duration: time.Hour}}}
	cases := []struct {
		name      string
		buffer    time.Duration
		visitType string
		busy      []Interval
		want      []want
	}{
		{"no buffer: only the busy slot", 0, "", []Interval{{at(10, 0), at(10, 30)}},
			[]want{{"09:00", true}, {"09:30", true}, {"10:00", false}, {"10:30", true}, {"11:00", true}, {"11:30", true}}},
		{"10 minutes: the slots just before and after are not free", 10 * time.Minute, "", []Interval{{at(10, 0), at(10, 30)}},
			[]want{{"09:00", true}, {"09:30", false}, {"10:00", false}, {"10:30", false}, {"11:00", true}, {"11:30", true}}},
		{"30 minutes reaches the slots beyond without overlapping them", 30 * time.Minute, "", []Interval{{at(10, 0), at(10, 30)}},
			[]want{{"09:00", true}, {"09:30", false}, {"10:00", false}, {"10:30", false}, {"11:00", true}, {"11:30", true}}},
		{"31 minutes reaches one slot further", 31 * time.Minute, "", []Interval{{at(10, 0), at(10, 30)}},
			[]want{{"09:00", false}, {"09:30", false}, {"10:00", false}, {"10:30", false}, {"11:00", false}, {"11:30", true}}},
		{"a buffer with no busy time changes nothing", time.Hour, "", nil,
			[]want{{"09:00", true}, {"09:30", true}, {"10:00", true}, {"10:30", true}, {"11:00", true}, {"11:30", true}}},
		{"a busy visit inside the day's first buffer", 10 * time.Minute, "", []Interval{{at(8, 45), at(8, 55)}},
			[]want{{"09:00", false}, {"09:30", true}, {"10:00", true}, {"10:30", true}, {"11:00", true}, {"11:30", true}}},
		// An hour-long visit may start at every half hour from which it
		// fits: 09:00 to 11:00.
		{"long visits: the start after a busy hour is free, the one inside it not", 0, "long", []Interval{{at(9, 0), at(10, 0)}},
			// 09:30-10:30 overlaps the busy hour; 10:00-11:00 just touches it.
			[]want{{"09:00", false}, {"09:30", false}, {"10:00", true}, {"10:30", true}, {"11:00", true}}},
		{"long visits: a buffer just touching busy time leaves them free", 10 * time.Minute, "long", []Interval{{at(10, 10), at(10, 50)}},
			// 09:00-10:00 plus 10 minutes ends at 10:10; 11:00-12:00 less 10
			// starts at 10:50; 09:30, 10:00 and 10:30 overlap the busy time.
			[]want{{"09:00", true}, {"09:30", false}, {"10:00", false}, {"10:30", false}, {"11:00", true}}},
		{"long visits: a minute more and they are not", 11 * time.Minute, "long", []Interval{{at(10, 10), at(10, 50)}},
			[]want{{"09:00", false}, {"09:30", false}, {"10:00", false}, {"10:30", false}, {"11:00", false}}},
		{"long visits: ending 5 minutes before a busy visit is not free with a 10-minute buffer", 10 * time.Minute, "long", []Interval{{at(11, 5), at(11, 35)}},
			// 10:00-11:00 ends 5 minutes before 11:05; 09:30-10:30 ends 35 before.
			[]want{{"09:00", true}, {"09:30", true}, {"10:00", false}, {"10:30", false}, {"11:00", false}}},
		{"long visits: ending 5 minutes before a busy visit is free with a 5-minute buffer", 5 * time.Minute, "long", []Interval{{at(11, 5), at(11, 35)}},
			[]want{{"09:00", true}, {"09:30", true}, {"10:00", true}, {"10:30", false}, {"11:00", false}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := a
			a.Buffer = c.buffer
			q := Query{From: day, To: day.AddDate(0, 0, 1), VisitType: c.visitType, Busy: c.busy}
			got := Slots(a, q)
			checkSlots(t, got, loc, "15:04", c.want)
			checkInvariants(t, a, q, got)
		})
	}
}

// workWeek is Monday to Friday 09:00-12:00 in Berlin, 30-minute slots,
// and the Monday 2026-06-15 it is asked about from.
func workWeek(t *testing.T) (Availability, time.Time) {
	loc := mustZone(t, "Europe/Berlin")
	var weekly []WeeklyHours
	for d := time.Monday; d <= time.Friday; d++ {
		weekly = append(weekly, WeeklyHours{Weekday: d, Start: 9 * 60, End: 12 * 60})
	}
	a := Availability{Zone: loc, SlotLength: 30 * time.Minute, Weekly: weekly,
		VisitTypes: []VisitType{{Code: "long", Duration: time.Hour}}}
	return a, time.Date(2026, 6, 15, 0, 0, 0, 0, loc)
}

func TestSlotsNoticeAndHorizon(t *testing.T) {
	a, mon := workWeek(t)
	at := func(day, h, m int) time.Time { return time.Date(2026, 6, 15+day, h, m, 0, 0, a.Zone) }
	monday := []want{{"Mon 09:00", true}, {"Mon 09:30", true}, {"Mon 10:00", true}, {"Mon 10:30", true}, {"Mon 11:00", true}, {"Mon 11:30", true}}
	cases := []struct {
		name            string
		notice, horizon time.Duration
		now             time.Time
		from, to        time.Time
		want            []want
	}{
		{"zero now ignores notice and horizon", 2 * time.Hour, time.Hour, time.Time{}, mon, mon.AddDate(0, 0, 1), monday},
		{"notice: a slot starting exactly at now+notice is kept", 90 * time.Minute, 0, at(0, 8, 0), mon, mon.AddDate(0, 0, 1),
			[]want{{"Mon 09:30", true}, {"Mon 10:00", true}, {"Mon 10:30", true}, {"Mon 11:00", true}, {"Mon 11:30", true}}},
		{"notice: one minute more drops it", 91 * time.Minute, 0, at(0, 8, 0), mon, mon.AddDate(0, 0, 1),
			[]want{{"Mon 10:00", true}, {"Mon 10:30", true}, {"Mon 11:00", true}, {"Mon 11:30", true}}},
		{"notice reaching into the next day", 24 * time.Hour, 0, at(0, 11, 15), mon, mon.AddDate(0, 0, 2),
			[]want{{"Tue 11:30", true}}},
		{"horizon: a slot starting exactly at now+horizon is kept", 0, 26 * time.Hour, at(0, 8, 0), at(1, 0, 0), mon.AddDate(0, 0, 7),
			[]want{{"Tue 09:00", true}, {"Tue 09:30", true}, {"Tue 10:00", true}}},
		{"horizon: one minute less drops it", 0, 26*time.Hour - time.Minute, at(0, 8, 0), at(1, 0, 0), mon.AddDate(0, 0, 7),
			[]want{{"Tue 09:00", true}, {"Tue 09:30", true}}},
		{"notice and horizon together", 2 * time.Hour, 3 * time.Hour, at(0, 8, 30), mon, mon.AddDate(0, 0, 7),
			[]want{{"Mon 10:30", true}, {"Mon 11:00", true}, {"Mon 11:30", true}}},
		{"horizon before the range", 0, time.Hour, at(0, 8, 0), at(1, 0, 0), mon.AddDate(0, 0, 7), nil},
		{"now, with a monotonic reading, after the range", 0, 0, time.Now().AddDate(0, 0, 10000), mon, mon.AddDate(0, 0, 7), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := a
			a.MinNotice, a.Horizon = c.notice, c.horizon
			q := Query{From: c.from, To: c.to, Now: c.now}
			got := Slots(a, q)
			checkSlots(t, got, a.Zone, "Mon 15:04", c.want)
			checkInvariants(t, a, q, got)
		})
	}
}

func TestSlotsOverrides(t *testing.T) {
	a, mon := workWeek(t)
	date := func(s string) Date {
		d, err := ParseDate(s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	cases := []struct {
		name      string
		overrides []Override
		visitType string
		from, to  time.Time
		want      []want
	}{
		{"extra hours on a date replace its weekly hours", []Override{{Date: date("2026-06-16"), Blocks: []Block{{8 * 60, 9 * 60}, {14 * 60, 15 * 60}}}}, "",
			mon.AddDate(0, 0, 1), mon.AddDate(0, 0, 2),
			[]want{{"Tue 08:00", false}, {"Tue 08:30", true}, {"Tue 14:00", true}, {"Tue 14:30", false}}},
		{"blocks given out of order come out in order, busy time found in each", []Override{{Date: date("2026-06-16"), Blocks: []Block{{14 * 60, 15 * 60}, {8 * 60, 9 * 60}}}}, "",
			mon.AddDate(0, 0, 1), mon.AddDate(0, 0, 2),
			[]want{{"Tue 08:00", false}, {"Tue 08:30", true}, {"Tue 14:00", true}, {"Tue 14:30", false}}},
		{"overlapping blocks each keep their own grid, so starts may be closer than a step", []Override{{Date: date("2026-06-16"), Blocks: []Block{{9 * 60, 11 * 60}, {9*60 + 45, 10*60 + 45}}}}, "",
			mon.AddDate(0, 0, 1), mon.AddDate(0, 0, 2),
			[]want{{"Tue 09:00", true}, {"Tue 09:30", true}, {"Tue 09:45", true}, {"Tue 10:00", true}, {"Tue 10:15", true}, {"Tue 10:30", true}}},
		{"a day off", []Override{{Date: date("2026-06-16")}}, "",
			mon, mon.AddDate(0, 0, 3),
			[]want{{"Mon 09:00", true}, {"Mon 09:30", true}, {"Mon 10:00", true}, {"Mon 10:30", true}, {"Mon 11:00", true}, {"Mon 11:30", true},
				{"Wed 09:00", true}, {"Wed 09:30", true}, {"Wed 10:00", true}, {"Wed 10:30", true}, {"Wed 11:00", true}, {"Wed 11:30", true}}},
		{"hours on a Saturday, long visits", []Override{{Date: date("2026-06-20"), Blocks: []Block{{10 * 60, 13 * 60}}}}, "long",
			mon.AddDate(0, 0, 5), mon.AddDate(0, 0, 7),
			// Every half hour from which an hour-long visit ends by 13:00.
			[]want{{"Sat 10:00", true}, {"Sat 10:30", true}, {"Sat 11:00", true}, {"Sat 11:30", true}, {"Sat 12:00", true}}},
		{"overrides of other dates change nothing", []Override{{Date: date("2026-06-14")}, {Date: date("2026-06-17")}, {Date: date("2025-06-16")}}, "",
			mon.AddDate(0, 0, 1), mon.AddDate(0, 0, 2),
			[]want{{"Tue 09:00", true}, {"Tue 09:30", true}, {"Tue 10:00", true}, {"Tue 10:30", true}, {"Tue 11:00", true}, {"Tue 11:30", true}}},
		{"the first of two overrides for a date wins", []Override{{Date: date("2026-06-16"), Blocks: []Block{{16 * 60, 17 * 60}}}, {Date: date("2026-06-16")}}, "",
			mon.AddDate(0, 0, 1), mon.AddDate(0, 0, 2),
			[]want{{"Tue 16:00", true}, {"Tue 16:30", true}}},
		{"many overrides", manyDaysOff(date("2026-06-22"), 20, date("2026-06-16")), "",
			mon.AddDate(0, 0, 1), mon.AddDate(0, 0, 3),
			[]want{{"Wed 09:00", true}, {"Wed 09:30", true}, {"Wed 10:00", true}, {"Wed 10:30", true}, {"Wed 11:00", true}, {"Wed 11:30", true}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := a
			a.Overrides = c.overrides
			at := func(h, m int) time.Time { return time.Date(2026, 6, 16, h, m, 0, 0, a.Zone) }
			busy := []Interval{{at(8, 0), at(8, 30)}, {at(14, 30), at(15, 0)}} // Tuesday
			q := Query{From: c.from, To: c.to, VisitType: c.visitType, Busy: busy}
			got := Slots(a, q)
			checkSlots(t, got, a.Zone, "Mon 15:04", c.want)
			checkInvariants(t, a, q, got)
		})
	}
}

// manyDaysOff is n days off from first on, and also one on extra.
func manyDaysOff(first Date, n int, extra Date) []Override {
	var out []Override
	d := time.Date(first.Year, first.Month, first.Day, 0, 0, 0, 0, time.UTC)
	for i := range n {
		out = append(out, Override{Date: DateOf(d.AddDate(0, 0, i))})
	}
	return append(out, Override{Date: extra})
}

func TestSlotsOverrideOnDSTChange(t *testing.T) {
	loc := mustZone(t, "America/New_York")
	cases := []struct {
		name      string
		date      Date
		blocks    []Block
		visit     time.Duration
		weekdayOn bool // weekly hours on that weekday too
		want      []string
	}{
		{"spring forward, extra hours across the gap", Date{2026, time.March, 8}, []Block{{60, 4 * 60}}, 0, false,
			[]string{"2026-03-08 01:00 -0500", "2026-03-08 01:30 -0500", "2026-03-08 03:00 -0400", "2026-03-08 03:30 -0400"}},
		{"spring forward, long visits at 13:00 replacing weekly hours", Date{2026, time.March, 8}, []Block{{13 * 60, 15 * 60}}, time.Hour, true,
			[]string{"2026-03-08 13:00 -0400", "2026-03-08 13:30 -0400", "2026-03-08 14:00 -0400"}},
		{"autumn back, the repeated hour once", Date{2026, time.November, 1}, []Block{{60, 2*60 + 30}}, 0, false,
			[]string{"2026-11-01 01:00 -0400", "2026-11-01 01:30 -0400", "2026-11-01 02:00 -0500"}},
		{"autumn back, a day off", Date{2026, time.November, 1}, nil, 0, true, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			day := time.Date(c.date.Year, c.date.Month, c.date.Day, 0, 0, 0, 0, loc)
			a := Availability{Zone: loc, SlotLength: 30 * time.Minute, Overrides: []Override{{Date: c.date, Blocks: c.blocks}},
				VisitTypes: []VisitType{{Code: "v", Duration: c.visit}}}
			if c.weekdayOn {
				a.Weekly = []WeeklyHours{{Weekday: time.Sunday, Start: 9 * 60, End: 17 * 60}}
			}
			q := Query{From: day.AddDate(0, 0, -1), To: day.AddDate(0, 0, 2), VisitType: "v"}
			slots := Slots(a, q)
			checkInvariants(t, a, q, slots)
			checkNoOtherStarts(t, a, q, slots)
			if got := localStarts(slots, loc); !slices.Equal(got, c.want) {
				t.Fatalf("got  %v\nwant %v", got, c.want)
			}
		})
	}
}

func TestSlotsTimeOff(t *testing.T) {
	a, mon := workWeek(t)
	at := func(day, h, m int) time.Time { return time.Date(2026, 6, 15+day, h, m, 0, 0, a.Zone) }
	cases := []struct {
		name      string
		timeOff   []Interval
		visitType string
		busy      []Interval
		want      []want
	}{
		{"time off from Wednesday 10:45 to Friday 09:30", []Interval{{at(2, 10, 45), at(4, 9, 30)}}, "", nil,
			[]want{{"Wed 09:00", true}, {"Wed 09:30", true}, {"Wed 10:00", true},
				{"Fri 09:30", true}, {"Fri 10:00", true}, {"Fri 10:30", true}, {"Fri 11:00", true}, {"Fri 11:30", true}}},
		{"time off in any order, overlapping, empty ones ignored", []Interval{{at(4, 10, 0), at(4, 11, 0)}, {at(2, 0, 0), at(4, 9, 0)},
			{at(4, 10, 30), at(4, 11, 30)}, {at(4, 9, 0), at(4, 9, 0)}}, "", nil,
			[]want{{"Fri 09:00", true}, {"Fri 09:30", true}, {"Fri 11:30", true}}},
		{"the grid of long visits does not move after time off", []Interval{{at(2, 0, 0), at(4, 9, 40)}}, "long", nil,
			// 09:00 and 09:30 overlap the time off; no visit starts at 09:40.
			[]want{{"Fri 10:00", true}, {"Fri 10:30", true}, {"Fri 11:00", true}}},
		{"a long visit may start as time off ends, with no buffer", []Interval{{at(2, 0, 0), at(4, 9, 30)}}, "long", nil,
			// The buffer is kept around busy time only.
			[]want{{"Fri 09:30", true}, {"Fri 10:00", true}, {"Fri 10:30", true}, {"Fri 11:00", true}}},
		{"time off with busy time and a buffer", []Interval{{at(2, 0, 0), at(4, 10, 0)}}, "", []Interval{{at(4, 11, 0), at(4, 11, 30)}},
			[]want{{"Fri 10:00", true}, {"Fri 10:30", false}, {"Fri 11:00", false}, {"Fri 11:30", false}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := a
			a.TimeOff = c.timeOff
			a.Buffer = 5 * time.Minute
			q := Query{From: mon.AddDate(0, 0, 2), To: mon.AddDate(0, 0, 5), VisitType: c.visitType, Busy: c.busy}
			got := Slots(a, q)
			checkSlots(t, got, a.Zone, "Mon 15:04", c.want)
			checkInvariants(t, a, q, got)
		})
	}
}

func TestSlotsRangeEdges(t *testing.T) {
	loc := mustZone(t, "America/New_York")
	a := Availability{Zone: loc, SlotLength: time.Hour, Weekly: []WeeklyHours{
		{Weekday: time.Monday, Start: 9 * 60, End: 12 * 60},
		{Weekday: time.Monday, Start: 10 * 60, End: 11 * 60}, // overlaps the first: no duplicates
		{Weekday: time.Tuesday, Start: 0, End: 60},
		{Weekday: time.Wednesday, Start: 23 * 60, End: 25 * 60}, // out of range: ignored
		{Weekday: time.Wednesday, Start: 10 * 60, End: 9 * 60},  // empty: ignored
	}}
	mon := time.Date(2026, 6, 15, 0, 0, 0, 0, loc)
	// from inclusive, to exclusive, both mid-block.
	got := localStarts(Slots(a, Query{From: mon.Add(10 * time.Hour), To: mon.Add(11*time.Hour + time.Minute)}), loc)
	if want := []string{"2026-06-15 10:00 -0400", "2026-06-15 11:00 -0400"}; !slices.Equal(got, want) {
		t.Errorf("mid-block range: %v, want %v", got, want)
	}
	got = localStarts(Slots(a, Query{From: mon, To: mon.AddDate(0, 0, 7)}), loc)
	if want := []string{"2026-06-15 09:00 -0400", "2026-06-15 10:00 -0400", "2026-06-15 11:00 -0400", "2026-06-16 00:00 -0400"}; !slices.Equal(got, want) {
		t.Errorf("whole week: %v, want %v", got, want)
	}
	// A range given in another zone, just after local midnight on Tuesday.
	tue := time.Date(2026, 6, 16, 4, 0, 0, 0, time.UTC) // 00:00 in New York
	got = localStarts(Slots(a, Query{From: tue, To: tue.Add(time.Hour)}), loc)
	if want := []string{"2026-06-16 00:00 -0400"}; !slices.Equal(got, want) {
		t.Errorf("range in UTC: %v, want %v", got, want)
	}
	week := Query{From: mon, To: mon.AddDate(0, 0, 7)}
	for _, bad := range []Availability{{}, {Zone: loc, Weekly: a.Weekly}, {Zone: loc, SlotLength: time.Hour}, {Zone: loc, Weekly: a.Weekly, SlotLength: time.Second}} {
		if got := Slots(bad, week); got != nil {
			t.Errorf("Slots(%+v) = %v, want none", bad, got)
		}
	}
	if got := Slots(a, Query{From: mon.AddDate(0, 0, 7), To: mon}); got != nil {
		t.Errorf("reversed range gave %v", got)
	}
	if got := Slots(a, Query{From: mon, To: mon.AddDate(0, 0, 7), VisitType: "unknown"}); got != nil {
		t.Errorf("unknown visit type gave %v", got)
	}
	onlyOverride := Availability{Zone: loc, SlotLength: time.Hour, Overrides: []Override{{Date: Date{2026, time.June, 17}, Blocks: []Block{{9 * 60, 10 * 60}}}}}
	if got, want := localStarts(Slots(onlyOverride, week), loc), []string{"2026-06-17 09:00 -0400"}; !slices.Equal(got, want) {
		t.Errorf("hours from an override alone: %v, want %v", got, want)
	}
}
