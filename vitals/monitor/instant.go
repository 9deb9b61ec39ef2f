package monitor

import (
	"math"
	"time"

	"github.com/bedside-health/bedside/vitals/alert"
)

// instant is a time as nanoseconds since 1970 UTC, a third of a
// time.Time's 24 bytes. A Monitor lives as long as its patient is watched
// and holds some thirty times, so it keeps them as instants
// (docs/benchmarks.md, "Memory per idle connection"). Times outside the
// years 1678 to 2262 are clamped to them. An instant has no monotonic
// reading: durations between instants are wall-clock durations, as they
// are between the readings' own times.
type instant int64

// never is the instant of a moment that has not come (atLeast, atMost).
const never instant = math.MinInt64

var (
	minTime = time.Unix(0, math.MinInt64+1)
	maxTime = time.Unix(0, math.MaxInt64)
)

// instantOf is t as an instant; never is kept for "not set".
func instantOf(t time.Time) instant {
	switch {
	case t.Before(minTime):
		return never + 1
	case t.After(maxTime):
		return math.MaxInt64
	}
	return instant(t.UnixNano())
}

// time is i as a UTC time.
func (i instant) time() time.Time { return time.Unix(0, int64(i)).UTC() }

// sub is i-j as a Duration, saturating as time.Time's Sub does.
func (i instant) sub(j instant) time.Duration { return alert.SubNanos(int64(i), int64(j)) }
