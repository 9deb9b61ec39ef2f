package scheduling

import (
	"errors"
	"fmt"
	"time"
)

// Validate reports everything wrong with a, one line per problem, or nil:
// use it before storing a physician's availability. Slots and Check do not
// need a valid Availability (they skip what they cannot use) but give what
// a physician expects only for one.
func (a Availability) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if a.Zone == nil {
		bad("no time zone")
	}
	if !wholeMinutes(a.SlotLength) || a.SlotLength <= 0 {
		bad("slot length %s is not a whole positive number of minutes", a.SlotLength)
	}
	for i, h := range a.Weekly {
		if h.Weekday < time.Sunday || h.Weekday > time.Saturday {
			bad("weekly hours %d: weekday %d is not 0 (Sunday) to 6 (Saturday)", i+1, int(h.Weekday))
		} else if err := checkBlock(Block{h.Start, h.End}); err != nil {
			bad("weekly hours %d (%s): %w", i+1, h.Weekday, err)
		}
	}
	seen := make(map[Date]bool, len(a.Overrides))
	for _, o := range a.Overrides {
		if !o.Date.valid() {
			bad("override for %s: there is no such date", o.Date)
		}
		if seen[o.Date] {
			bad("two overrides for %s", o.Date)
		}
		seen[o.Date] = true
		for j, b := range o.Blocks {
			if err := checkBlock(b); err != nil {
				bad("override for %s, block %d: %w", o.Date, j+1, err)
			}
		}
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"buffer", a.Buffer}, {"minimum notice", a.MinNotice}, {"horizon", a.Horizon}} {
		if d.d < 0 {
			bad("%s %s is negative", d.name, d.d)
		}
	}
	codes := make(map[string]bool, len(a.VisitTypes))
	for i, v := range a.VisitTypes {
		if v.Code == "" {
			bad("visit type %d (%q) has no code", i+1, v.Name)
		} else if codes[v.Code] {
			bad("two visit types with code %q", v.Code)
		}
		codes[v.Code] = true
		if v.Duration < 0 || !wholeMinutes(v.Duration) {
			bad("visit type %q: duration %s is not a whole number of minutes", v.Code, v.Duration)
		}
	}
	for i, off := range a.TimeOff {
		if !off.End.After(off.Start) {
			bad("time off %d (%s to %s): the end is not after the start", i+1,
				off.Start.Format(time.RFC3339), off.End.Format(time.RFC3339))
		}
	}
	return errors.Join(errs...)
}

// checkBlock says what is wrong with a block of hours, if anything.
func checkBlock(b Block) error {
	if b.Start < 0 || b.Start > 24*60 || b.End < 0 || b.End > 24*60 {
		return fmt.Errorf("start %d and end %d must be minutes from 0 to 1440", b.Start, b.End)
	}
	if b.Start >= b.End {
		return fmt.Errorf("start %s is not before end %s", clock(b.Start), clock(b.End))
	}
	return nil
}

// clock writes minutes after midnight as 15:04.
func clock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// wholeMinutes reports whether d is a whole number of minutes.
func wholeMinutes(d time.Duration) bool { return d%time.Minute == 0 }

// valid reports whether d is a date of the calendar (not, say, 30 February).
func (d Date) valid() bool {
	return DateOf(time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC)) == d
}

// before reports whether d is an earlier date than e.
func (d Date) before(e Date) bool {
	if d.Year != e.Year {
		return d.Year < e.Year
	}
	if d.Month != e.Month {
		return d.Month < e.Month
	}
	return d.Day < e.Day
}
