package scheduling

import (
	"testing"
	"time"
)

func mustZone(t *testing.T, name string) *time.Location {
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

func TestSlotsAcrossTimeZonesAndDST(t *testing.T) {
	cases := []struct {
		name   string
		zone   string
		day    string // local date
		start  int    // minutes after midnight
		end    int
		length time.Duration
		want   []string
	}{
		{"New York spring forward keeps 13:00 local", "America/New_York", "2026-03-08", 13 * 60, 14 * 60, 30 * time.Minute,
			[]string{"2026-03-08 13:00 -0400", "2026-03-08 13:30 -0400"}},
		{"New York day before spring forward", "America/New_York", "2026-03-07", 13 * 60, 14 * 60, 30 * time.Minute,
			[]string{"2026-03-07 13:00 -0500", "2026-03-07 13:30 -0500"}},
		{"New York autumn back keeps 13:00 local", "America/New_York", "2026-11-01", 13 * 60, 14 * 60, 30 * time.Minute,
			[]string{"2026-11-01 13:00 -0500", "2026-11-01 13:30 -0500"}},
		{"New York spring gap skips 02:00-03:00", "America/New_York", "2026-03-08", 60, 4 * 60, 30 * time.Minute,
			[]string{"2026-03-08 01:00 -0500", "2026-03-08 01:30 -0500", "2026-03-08 03:00 -0400", "2026-03-08 03:30 -0400"}},
		{"London after clocks go forward", "Europe/London", "2026-03-29", 13 * 60, 15 * 60, time.Hour,
			[]string{"2026-03-29 13:00 +0100", "2026-03-29 14:00 +0100"}},
		{"London after clocks go back", "Europe/London", "2026-10-25", 16 * 60, 17 * 60, 20 * time.Minute,
			[]string{"2026-10-25 16:00 +0000", "2026-10-25 16:20 +0000", "2026-10-25 16:40 +0000"}},
		{"Adelaide half-hour offset, DST start", "Australia/Adelaide", "2026-10-04", 13*60 + 30, 15 * 60, 45 * time.Minute,
			[]string{"2026-10-04 13:30 +1030", "2026-10-04 14:15 +1030"}},
		{"Adelaide half-hour offset, DST end", "Australia/Adelaide", "2026-04-05", 13 * 60, 14 * 60, 30 * time.Minute,
			[]string{"2026-04-05 13:00 +0930", "2026-04-05 13:30 +0930"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			loc := mustZone(t, c.zone)
			d, _ := time.ParseInLocation("2006-01-02", c.day, loc)
			a := Availability{Zone: loc, SlotLength: c.length, Weekly: []WeeklyHours{{Weekday: d.Weekday(), Start: c.start, End: c.end}}}
			got := localStarts(Slots(a, d, d.AddDate(0, 0, 1), time.Time{}, nil), loc)
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("slot %d: got %s, want %s (all %v)", i, got[i], c.want[i], got)
				}
			}
		})
	}
}

func TestSlotsBusyNowAndContains(t *testing.T) {
	loc := mustZone(t, "Europe/Berlin")
	day := time.Date(2026, 6, 15, 0, 0, 0, 0, loc) // a Monday
	a := Availability{Zone: loc, SlotLength: 30 * time.Minute, Weekly: []WeeklyHours{{Weekday: time.Monday, Start: 9 * 60, End: 11 * 60}}}
	busy := []Interval{{Start: time.Date(2026, 6, 15, 9, 45, 0, 0, loc), End: time.Date(2026, 6, 15, 10, 15, 0, 0, loc)}}
	now := time.Date(2026, 6, 15, 9, 10, 0, 0, loc)
	got := Slots(a, day, day.AddDate(0, 0, 7), now, busy)
	want := []struct {
		at   string
		free bool
	}{{"09:30", false}, {"10:00", false}, {"10:30", true}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %d slots", localStarts(got, loc), len(want))
	}
	for i, w := range want {
		if at := got[i].Start.In(loc).Format("15:04"); at != w.at || got[i].Free != w.free {
			t.Errorf("slot %d: %s free=%v, want %s free=%v", i, at, got[i].Free, w.at, w.free)
		}
	}
	if !a.Contains(got[2].Start, got[2].End) {
		t.Error("Contains refused a generated slot")
	}
	if a.Contains(got[2].Start.Add(5*time.Minute), got[2].End.Add(5*time.Minute)) {
		t.Error("Contains accepted a time off the slot grid")
	}
	if a.Contains(got[2].Start, got[2].End.Add(30*time.Minute)) {
		t.Error("Contains accepted a double-length slot")
	}
}

func BenchmarkSlotsMonth(b *testing.B) {
	loc, _ := time.LoadLocation("America/New_York")
	var weekly []WeeklyHours
	for d := time.Monday; d <= time.Friday; d++ {
		weekly = append(weekly, WeeklyHours{Weekday: d, Start: 8 * 60, End: 18 * 60})
	}
	a := Availability{Zone: loc, SlotLength: 15 * time.Minute, Weekly: weekly}
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, loc)
	var busy []Interval
	for i := 0; i < 100; i++ {
		s := from.Add(time.Duration(i) * 7 * time.Hour)
		busy = append(busy, Interval{s, s.Add(30 * time.Minute)})
	}
	b.ReportAllocs()
	for b.Loop() {
		Slots(a, from, from.AddDate(0, 1, 0), time.Time{}, busy)
	}
}
