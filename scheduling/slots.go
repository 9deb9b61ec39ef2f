package scheduling

import (
	"iter"
	"slices"
	"time"
)

// Slot is one bookable span, as instants in UTC.
type Slot struct {
	Start time.Time
	End   time.Time
	Free  bool
}

// Query asks Slots for one physician's slots of one visit type.
type Query struct {
	// From is the earliest start wanted (inclusive).
	From time.Time
	// To is the start at which to stop (exclusive).
	To time.Time
	// Now is the current time; slots inside the physician's MinNotice of it
	// or beyond their Horizon from it are left out. Zero leaves out nothing.
	Now time.Time
	// VisitType is the code of one of the physician's VisitTypes, which
	// sets how long each visit lasts; "" means visits of SlotLength.
	VisitType string
	// Busy is the physician's booked time, in any order, possibly
	// overlapping: a slot within Buffer of any of it is not Free.
	Busy []Interval
}

// Slots returns a's slots for visits of type q.VisitType that start in
// [q.From, q.To), in order of start. It returns nil for an unknown visit
// type.
//
// Each local date's hours are the blocks of its Override, if a has one for
// that date (the first, should there be several; no blocks is a day off),
// or else the WeeklyHours of its weekday. Slots are laid out on the wall
// clock of a.Zone, so that a 13:00 slot stays at 13:00 local across
// daylight-saving changes: one is tried every a.SlotLength from the start
// of each block, as long as the visit, which lasts
// a.VisitLength(q.VisitType), would end by the block's end on the wall
// clock. On the day the clocks change:
//   - a wall time that does not exist (the spring-forward gap) has no slot;
//   - a wall time that happens twice (the autumn repeated hour) has one slot,
//     at its first occurrence;
//   - a slot that would start less than SlotLength after the previous one
//     kept in its block, or end after its block does, is dropped, so the
//     starts of a block are always at least one step apart in real time.
//
// A visit longer than SlotLength may start at every grid point from which
// it fits (a 60-minute visit on a 30-minute grid from 09:00 to 12:00 gives
// 09:00, 09:30 ... 11:00), so its slots overlap: they are alternatives, of
// which one is booked. The grid does not move for anything else: a slot
// that overlaps any of a.TimeOff is left out, as are, when q.Now is not
// zero, slots starting before q.Now+a.MinNotice and (when a.Horizon > 0)
// after q.Now+a.Horizon.
//
// A slot is returned with Free false if any busy interval overlaps
// [Start-a.Buffer, End+a.Buffer).
func Slots(a Availability, q Query) []Slot {
	g, ok := newGrid(a, q.VisitType)
	if !ok {
		return nil
	}
	from, to := bookable(a, q.From, q.To, q.Now)
	if !from.Before(to) {
		return nil
	}
	taken := cursor{spans: merge(q.Busy)}
	away := cursor{spans: merge(a.TimeOff)}
	buffer := max(a.Buffer, 0)
	out := make([]Slot, 0, g.estimate(from, to))
	for start, end := range g.visits(from, to) {
		if away.overlaps(Interval{start, end}) {
			continue
		}
		free := !taken.overlaps(Interval{start.Add(-buffer), end.Add(buffer)})
		out = append(out, Slot{Start: start.UTC(), End: end.UTC(), Free: free})
	}
	if len(out) == 0 {
		return nil
	}
	byStart := func(x, y Slot) int { return x.Start.Compare(y.Start) }
	if !slices.IsSortedFunc(out, byStart) {
		slices.SortFunc(out, byStart)
	}
	// Overlapping blocks on one day may give the same slot twice.
	return slices.CompactFunc(out, func(x, y Slot) bool { return x.Start.Equal(y.Start) })
}

// bookable narrows [from, to) to the starts that MinNotice and Horizon
// allow at now; a zero now leaves it as it is.
func bookable(a Availability, from, to, now time.Time) (time.Time, time.Time) {
	if now.IsZero() {
		return from, to
	}
	now = now.Round(0) // compare wall clocks only
	if earliest := now.Add(max(a.MinNotice, 0)); from.Before(earliest) {
		from = earliest
	}
	if a.Horizon > 0 {
		// A slot starting exactly at the horizon is still offered.
		if limit := now.Add(a.Horizon).Add(time.Nanosecond); limit.Before(to) {
			to = limit
		}
	}
	return from, to
}

// grid lays out the visits of one length on an Availability's hours,
// before time off, notice, horizon and busy time are taken into account.
type grid struct {
	zone      *time.Location
	weekly    []WeeklyHours
	overrides []Override
	step      int           // minutes from one start to the next
	length    time.Duration // how long a visit lasts
	lengthMin int           // length in whole minutes, rounded up
}

// newGrid returns the grid of visitType on a's hours, or false if a has no
// zone or slot length or no such visit type.
func newGrid(a Availability, visitType string) (grid, bool) {
	if a.Zone == nil || a.SlotLength < time.Minute {
		return grid{}, false
	}
	length, ok := a.VisitLength(visitType)
	if !ok {
		return grid{}, false
	}
	return grid{
		zone:      a.Zone,
		weekly:    a.Weekly,
		overrides: a.Overrides,
		step:      int(a.SlotLength / time.Minute),
		length:    length,
		lengthMin: int((length + time.Minute - 1) / time.Minute),
	}, true
}

// estimate guesses how many visits start in [from, to), from the weekly
// hours alone, to size the slice they go in.
func (g *grid) estimate(from, to time.Time) int {
	perWeek := 0
	for _, h := range g.weekly {
		if span := h.End - h.Start; span >= g.lengthMin {
			perWeek += (span-g.lengthMin)/g.step + 1 // every step the visit fits from
		}
	}
	weeks := int(to.Sub(from)/(7*24*time.Hour)) + 1
	return min(perWeek*weeks, 4096)
}

// visits yields the start and end of every visit on the grid that starts in
// [from, to): date by date, within a date block by block, and within a
// block in order of start.
func (g *grid) visits(from, to time.Time) iter.Seq2[time.Time, time.Time] {
	return func(yield func(start, end time.Time) bool) {
		lf, lt := from.In(g.zone), to.In(g.zone)
		// Start a day early: a block of yesterday's local date may reach
		// into [from, to) when from is just after local midnight.
		first := time.Date(lf.Year(), lf.Month(), lf.Day()-1, 0, 0, 0, 0, time.UTC)
		// Keep only the overrides of the dates that can be reached.
		var buf [8]Override
		overrides := buf[:0]
		firstDate, lastDate := DateOf(first), DateOf(lt)
		for _, o := range g.overrides {
			if !o.Date.before(firstDate) && !lastDate.before(o.Date) {
				overrides = append(overrides, o)
			}
		}
		for day := first; ; day = day.AddDate(0, 0, 1) {
			if midnight, _ := wallTime(day, 0, g.zone); !midnight.Before(to) {
				return
			}
			if o, ok := findOverride(overrides, DateOf(day)); ok {
				for _, b := range o.Blocks {
					if !g.block(day, b, from, to, yield) {
						return
					}
				}
				continue
			}
			wd := day.Weekday()
			for _, h := range g.weekly {
				if h.Weekday == wd && !g.block(day, Block{h.Start, h.End}, from, to, yield) {
					return
				}
			}
		}
	}
}

// findOverride returns the first of overrides for date d.
func findOverride(overrides []Override, d Date) (Override, bool) {
	for _, o := range overrides {
		if o.Date == d {
			return o, true
		}
	}
	return Override{}, false
}

// block yields the visits of block b on the local date of day (a date at
// midnight UTC, standing for that date in g.zone) that start in [from, to).
// It returns false if yield did. A block outside 0..1440 minutes, or
// empty, has no visits.
func (g *grid) block(day time.Time, b Block, from, to time.Time, yield func(start, end time.Time) bool) bool {
	if b.Start < 0 || b.End > 24*60 || b.Start >= b.End {
		return true
	}
	blockEnd, ok := wallTime(day, b.End, g.zone)
	if !ok { // the block ends in a spring-forward gap: normalise forward
		blockEnd = time.Date(day.Year(), day.Month(), day.Day(), 0, b.End, 0, 0, g.zone)
	}
	if !blockEnd.After(from) {
		return true // every visit of the block starts before from
	}
	// Within one period of the zone's offset, the wall clock and the
	// instants move together: minute m is base plus m-b.Start minutes, with
	// no need to ask the zone again until the period ends.
	base, linear := wallTime(day, b.Start, g.zone)
	var periodEnd time.Time
	if linear {
		_, periodEnd = base.ZoneBounds()
	}
	var prevStart time.Time
	for m := b.Start; m+g.lengthMin <= b.End; m += g.step {
		var start time.Time
		ok := true
		if linear {
			start = base.Add(time.Duration(m-b.Start) * time.Minute)
			if !periodEnd.IsZero() && !start.Before(periodEnd) {
				linear = false
			}
		}
		if !linear {
			start, ok = wallTime(day, m, g.zone)
		}
		if !ok {
			continue // this wall time does not exist today (spring forward)
		}
		end := start.Add(g.length)
		if !prevStart.IsZero() && start.Before(prevStart.Add(time.Duration(g.step)*time.Minute)) || end.After(blockEnd) {
			continue // the clocks moved: it would crowd the previous start, or overrun
		}
		prevStart = start
		if start.Before(from) {
			continue
		}
		if !start.Before(to) {
			return true // the starts kept in a block ascend
		}
		if !yield(start, end) {
			return false
		}
	}
	return true
}

// merge returns the union of the non-empty intervals as disjoint intervals
// in order, so that both starts and ends ascend.
func merge(busy []Interval) []Interval {
	if len(busy) == 0 {
		return nil
	}
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

// cursor answers whether intervals overlap any of spans, which are
// disjoint and in order as merge returns them. It is quickest when asked
// about intervals in order of start.
type cursor struct {
	spans []Interval
	i     int       // spans before i end at or before last
	last  time.Time // the start last asked about
}

// overlaps reports whether iv overlaps any of c.spans.
func (c *cursor) overlaps(iv Interval) bool {
	if len(c.spans) == 0 {
		return false
	}
	if iv.Start.Before(c.last) {
		// Out of order: find the first span ending after iv starts.
		c.i, _ = slices.BinarySearchFunc(c.spans, iv.Start, func(b Interval, t time.Time) int {
			if b.End.After(t) {
				return 1
			}
			return -1
		})
	}
	c.last = iv.Start
	for c.i < len(c.spans) && !c.spans[c.i].End.After(iv.Start) {
		c.i++
	}
	// The first span ending after iv starts is the only candidate.
	return c.i < len(c.spans) && c.spans[c.i].Start.Before(iv.End)
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
