package scheduling

import (
	"slices"
	"time"
)

// Slot is one bookable span, as instants in UTC.
type Slot struct {
	Start time.Time
	End   time.Time
	Free  bool
}

// Slots returns a's slots that start in [from, to) and not before now, in
// order of start. A zero now cuts nothing off.
//
// Slots are laid out on the wall clock of a.Zone: each WeeklyHours block on
// each local date is cut into a.SlotLength steps from its start, so a 13:00
// slot stays at 13:00 local across daylight-saving changes. On the day the
// clocks change:
//   - a wall time that does not exist (the spring-forward gap) has no slot;
//   - a wall time that happens twice (the autumn repeated hour) has one slot,
//     at its first occurrence;
//   - a slot that would start before the previous one in its block ends, or
//     end after its block does, is dropped, so slots never overlap.
//
// A slot that overlaps any busy interval is returned with Free false.
func Slots(a Availability, from, to, now time.Time, busy []Interval) []Slot {
	if a.Zone == nil || a.SlotLength < time.Minute || len(a.Weekly) == 0 {
		return nil
	}
	if from.Before(now) {
		from = now
	}
	if !from.Before(to) {
		return nil
	}
	step := int(a.SlotLength / time.Minute)
	taken := merge(busy)
	var out []Slot
	lf := from.In(a.Zone)
	// Start a day early: a block of yesterday's local date may reach into
	// [from, to) when from is just after local midnight.
	for day := time.Date(lf.Year(), lf.Month(), lf.Day()-1, 0, 0, 0, 0, time.UTC); ; day = day.AddDate(0, 0, 1) {
		if first, _ := wallTime(day, 0, a.Zone); !first.Before(to) {
			break
		}
		for _, h := range a.Weekly {
			if h.Weekday != day.Weekday() {
				continue
			}
			out = appendBlock(out, a, day, h, step, from, to, taken)
		}
	}
	slices.SortFunc(out, func(x, y Slot) int { return x.Start.Compare(y.Start) })
	// Overlapping weekly blocks on one day may give the same slot twice.
	return slices.CompactFunc(out, func(x, y Slot) bool { return x.Start.Equal(y.Start) })
}

// appendBlock appends the slots of block h on the local date day (a date at
// midnight UTC, standing for that date in a.Zone) that start in [from, to);
// taken is the busy time as merge returns it.
func appendBlock(out []Slot, a Availability, day time.Time, h WeeklyHours, step int, from, to time.Time, taken []Interval) []Slot {
	blockEnd, ok := wallTime(day, h.End, a.Zone)
	if !ok { // the block ends in a spring-forward gap: normalise forward
		blockEnd = time.Date(day.Year(), day.Month(), day.Day(), 0, h.End, 0, 0, a.Zone)
	}
	var prevEnd time.Time
	for m := h.Start; m+step <= h.End; m += step {
		start, ok := wallTime(day, m, a.Zone)
		if !ok {
			continue // this wall time does not exist today (spring forward)
		}
		end := start.Add(a.SlotLength)
		if start.Before(prevEnd) || end.After(blockEnd) {
			continue // the clocks moved: this slot would overlap or overrun
		}
		prevEnd = end
		if start.Before(from) || !start.Before(to) {
			continue
		}
		out = append(out, Slot{Start: start.UTC(), End: end.UTC(), Free: !overlapsAny(taken, Interval{start, end})})
	}
	return out
}

// merge returns the union of the non-empty busy intervals as disjoint
// intervals in order, so that both starts and ends ascend.
func merge(busy []Interval) []Interval {
	out := make([]Interval, 0, len(busy))
	for _, b := range busy {
		if b.Start.Before(b.End) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(x, y Interval) int { return x.Start.Compare(y.Start) })
	n := 0
	for _, b := range out {
		if n > 0 && !b.Start.After(out[n-1].End) {
			if b.End.After(out[n-1].End) {
				out[n-1].End = b.End
			}
			continue
		}
		out[n] = b
		n++
	}
	return out[:n]
}

// overlapsAny reports whether iv overlaps any of the disjoint, ordered
// intervals in taken.
func overlapsAny(taken []Interval, iv Interval) bool {
	// The first interval ending after iv starts is the only candidate.
	i, _ := slices.BinarySearchFunc(taken, iv.Start, func(b Interval, t time.Time) int {
		if b.End.After(t) {
			return 1
		}
		return -1
	})
	return i < len(taken) && taken[i].Overlaps(iv)
}

// wallTime is the earliest instant at which the clock in loc shows minute
// (0 to 1440, 1440 being the next midnight) on the local date of day (whose
// year, month and day are used). It reports false if that wall time does not
// exist on that date.
func wallTime(day time.Time, minute int, loc *time.Location) (time.Time, bool) {
	y, mo, d := day.Date()
	t := time.Date(y, mo, d, 0, minute, 0, 0, loc)
	wy, wmo, wd := time.Date(y, mo, d, 0, minute, 0, 0, time.UTC).Date()
	if ty, tmo, td := t.Date(); ty != wy || tmo != wmo || td != wd || t.Hour()*60+t.Minute() != minute%(24*60) {
		return t, false // normalised out of a gap
	}
	// In a repeated hour time.Date may pick either occurrence; the earlier
	// one, if any, is at the offset in force a few hours before.
	_, off := t.Zone()
	if _, before := t.Add(-3 * time.Hour).Zone(); before != off {
		if e := t.Add(time.Duration(off-before) * time.Second); e.Before(t) && sameWall(e, t) {
			return e, true
		}
	}
	return t, true
}

// sameWall reports whether two instants show the same local date and minute.
func sameWall(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd && a.Hour() == b.Hour() && a.Minute() == b.Minute()
}

// Contains reports whether [start, end) is exactly one of a's slots, free or
// not and whenever it is: use it to check that a requested booking falls on
// the physician's slot grid.
func (a Availability) Contains(start, end time.Time) bool {
	for _, s := range Slots(a, start, start.Add(time.Nanosecond), time.Time{}, nil) {
		if s.Start.Equal(start) && s.End.Equal(end) {
			return true
		}
	}
	return false
}
