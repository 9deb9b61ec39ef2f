package scheduling

import (
	"fmt"
	"slices"
	"time"
)

// Check returns the end of a visit of type visitType starting at start if
// [start, end) is one of a's slots, free or not, when it is now: use it to
// check a requested booking. Busy time is not checked (the store does that
// when it books).
//
// The error wraps, in the order they are checked, ErrOutsideHours (an
// unknown visit type, a day off, or a start that is not one of the day's
// grid points, every SlotLength from the start of a block, from which the
// visit ends by the block's end, as Slots lays them out), ErrTimeOff (the
// visit overlaps the physician's time off), ErrTooSoon (it starts in the
// past or inside MinNotice of now) or ErrTooFar (it starts more than
// Horizon after now). A zero now skips the last two checks.
func (a Availability) Check(start time.Time, visitType string, now time.Time) (end time.Time, err error) {
	if a.Zone == nil || a.SlotLength < time.Minute {
		return time.Time{}, fmt.Errorf("%w: no working hours are set", ErrOutsideHours)
	}
	g, ok := newGrid(a, visitType)
	if !ok {
		return time.Time{}, fmt.Errorf("%w: there is no visit type %q", ErrOutsideHours, visitType)
	}
	local := start.In(a.Zone)
	if o, ok := findOverride(a.Overrides, DateOf(local)); ok && len(o.Blocks) == 0 {
		return time.Time{}, fmt.Errorf("%w: %s is a day off", ErrOutsideHours, DateOf(local))
	}
	for s, e := range g.visits(start, start.Add(time.Nanosecond)) {
		if s.Equal(start) {
			end = e
			break
		}
	}
	if end.IsZero() {
		return time.Time{}, fmt.Errorf("%w: no %s visit starts at %s", ErrOutsideHours, g.length, local.Format("2006-01-02 15:04 -0700"))
	}
	visit := Interval{start, end}
	for _, off := range a.TimeOff {
		if off.Overlaps(visit) {
			return time.Time{}, fmt.Errorf("%w: from %s to %s", ErrTimeOff,
				off.Start.In(a.Zone).Format("2006-01-02 15:04"), off.End.In(a.Zone).Format("2006-01-02 15:04"))
		}
	}
	if !now.IsZero() {
		now = now.Round(0)
		if earliest := now.Add(max(a.MinNotice, 0)); start.Before(earliest) {
			return time.Time{}, fmt.Errorf("%w: the earliest start is %s", ErrTooSoon, earliest.In(a.Zone).Format("2006-01-02 15:04"))
		}
		if latest := now.Add(a.Horizon); a.Horizon > 0 && start.After(latest) {
			return time.Time{}, fmt.Errorf("%w: the latest start is %s", ErrTooFar, latest.In(a.Zone).Format("2006-01-02 15:04"))
		}
	}
	return end.UTC(), nil
}

// Alternatives returns up to n of the free slots whose starts are nearest to
// want, ties going to the earlier, in order of start: the offer to make when
// the slot at want was just taken. slots need not be in order.
func Alternatives(slots []Slot, want time.Time, n int) []Slot {
	if n <= 0 {
		return nil
	}
	free := make([]Slot, 0, len(slots))
	for _, s := range slots {
		if s.Free {
			free = append(free, s)
		}
	}
	byStart := func(x, y Slot) int { return x.Start.Compare(y.Start) }
	if !slices.IsSortedFunc(free, byStart) {
		slices.SortStableFunc(free, byStart)
	}
	if n >= len(free) {
		return free
	}
	// The nearest n are a run of the ordered slots: grow it from want,
	// taking the nearer neighbour each time and the earlier on a tie.
	hi, _ := slices.BinarySearchFunc(free, want, func(s Slot, t time.Time) int { return s.Start.Compare(t) })
	lo := hi
	for hi-lo < n {
		switch {
		case lo == 0:
			hi++
		case hi == len(free):
			lo--
		case want.Sub(free[lo-1].Start) <= free[hi].Start.Sub(want):
			lo--
		default:
			hi++
		}
	}
	return free[lo:hi:hi]
}
