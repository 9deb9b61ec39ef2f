package alert

import (
	"math"
	"time"
)

// Persistence is how long a condition must hold before it counts: at
// least Readings consecutive readings, spanning at least For from the
// first of them to the last. Readings below 1 count as 1.
type Persistence struct {
	Readings int
	For      time.Duration
}

// met reports whether a run of n readings spanning d is long enough.
func (p Persistence) met(n int, d time.Duration) bool {
	return n >= max(p.Readings, 1) && d >= p.For
}

// Transition is what one reading did to a condition.
type Transition int

// The transitions.
const (
	None    Transition = iota // nothing changed
	Raise                     // the condition became active
	Release                   // the condition cleared
)

// Hysteresis tracks one alert condition over a stream of readings. It
// raises only when the breach persists, and releases only when the value
// has been back inside by the margin (the deadband) for as long: a value
// oscillating between the limit and the margin neither clears an active
// condition nor raises a cleared one twice. The zero value, with Persist
// set, is inactive.
//
// A reading whose value is doubtful is not fed to Update at all: it
// neither advances nor interrupts a run, so doubtful readings can never
// raise or clear on their own.
//
// A patient's monitor holds one for each NEWS2 parameter and two for each
// threshold, for as long as the patient is watched, so its state is kept
// small: the run's start as nanoseconds since 1970 (unixNano), not a
// time.Time.
type Hysteresis struct {
	Persist Persistence
	active  bool
	run     int32 // consecutive readings toward the other state
	since   int64 // time of the run's first reading (unixNano)
}

// Active reports whether the condition is raised.
func (h *Hysteresis) Active() bool { return h.active }

// Update feeds one reading taken at t. breach says the value is beyond the
// limit; recovered says it is back inside by the margin. A value in the
// deadband (neither) interrupts a run toward clearing; any value that does
// not breach interrupts a run toward raising.
func (h *Hysteresis) Update(t time.Time, breach, recovered bool) Transition {
	toward := breach
	if h.active {
		toward = recovered
	}
	if !toward {
		h.run = 0
		return None
	}
	at := unixNano(t)
	if h.run == 0 {
		h.since = at
	}
	if h.run < math.MaxInt32 {
		h.run++
	}
	if !h.Persist.met(int(h.run), SubNanos(at, h.since)) {
		return None
	}
	h.active, h.run = !h.active, 0
	if h.active {
		return Raise
	}
	return Release
}

// Reset forgets the condition's state: inactive, no run.
func (h *Hysteresis) Reset() { h.active, h.run = false, 0 }

// unixNano is t in nanoseconds since 1970 UTC, clamped to what an int64
// holds (the years 1678 to 2262).
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// SubNanos is a-b, two times in nanoseconds since 1970, as a Duration,
// saturating as time.Time's Sub does.
func SubNanos(a, b int64) time.Duration {
	d := a - b
	switch {
	case b < 0 && d < a:
		return math.MaxInt64
	case b > 0 && d > a:
		return math.MinInt64
	}
	return time.Duration(d)
}
