package scheduling

import (
	"sort"
	"time"
)

// Slot is one bookable span, as instants.
type Slot struct {
	Start time.Time
	End   time.Time
	Free  bool
}

// Slots returns a's slots starting in [from, to) and not before now, in order.
// Each slot starts at a wall-clock time in a.Zone (so a 13:00 slot stays at
// 13:00 local across daylight-saving changes); a wall time that does not exist
// on a spring-forward day is skipped, and a repeated autumn hour yields each
// slot once. A slot overlapping any busy interval is not Free.
func Slots(a Availability, from, to, now time.Time, busy []Interval) []Slot {
	if a.Zone == nil || a.SlotLength <= 0 || !from.Before(to) {
		return nil
	}
	step := int(a.SlotLength / time.Minute)
	if step <= 0 {
		return nil
	}
	var out []Slot
	lf := from.In(a.Zone)
	// Start a day early so a block that began yesterday local time is seen.
	day := time.Date(lf.Year(), lf.Month(), lf.Day()-1, 12, 0, 0, 0, a.Zone)
	for ; day.Before(to.Add(48 * time.Hour)); day = day.AddDate(0, 0, 1) {
		for _, h := range a.Weekly {
			if h.Weekday != day.Weekday() {
				continue
			}
			for m := h.Start; m+step <= h.End; m += step {
				start := time.Date(day.Year(), day.Month(), day.Day(), m/60, m%60, 0, 0, a.Zone)
				if start.Hour()*60+start.Minute() != m%(24*60) {
					continue // this wall time does not exist today (spring forward)
				}
				if start.Before(from) || !start.Before(to) || start.Before(now) {
					continue
				}
				s := Slot{Start: start.UTC(), End: start.Add(a.SlotLength).UTC(), Free: true}
				iv := Interval{s.Start, s.End}
				for _, b := range busy {
					if iv.Overlaps(b) {
						s.Free = false
						break
					}
				}
				out = append(out, s)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return dedupe(out)
}

// dedupe drops slots with the same start (overlapping weekly blocks).
func dedupe(s []Slot) []Slot {
	out := s[:0]
	for i, x := range s {
		if i > 0 && x.Start.Equal(out[len(out)-1].Start) {
			continue
		}
		out = append(out, x)
	}
	return out
}

// Contains reports whether [start, end) is exactly one of a's slots.
func (a Availability) Contains(start, end time.Time) bool {
	for _, s := range Slots(a, start.Add(-time.Minute), start.Add(time.Minute), time.Time{}, nil) {
		if s.Start.Equal(start) && s.End.Equal(end) {
			return true
		}
	}
	return false
}
