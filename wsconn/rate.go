package wsconn

import (
	"math"
	"sync/atomic"
)

// Rate is a token bucket for messages read: a steady PerSecond with bursts
// of up to Burst, full to begin with. It is safe for concurrent use, so one
// Rate may limit a sender across its connections.
//
// It is checked on every message a connection reads, so it is kept to one
// atomic load and one compare-and-swap of one number, read against the
// monotonic clock alone (golang.org/x/time/rate's Limiter takes a lock,
// computes with time.Time and floating point, and returns a reservation on
// every call). It keeps the bucket as the time at which it will be full
// again, as the generic cell rate algorithm does: a message is allowed
// if that time is at most Burst-1 intervals ahead of now, and moves it
// one interval on.
type Rate struct {
	interval int64        // nanoseconds per message
	span     int64        // how far ahead of now full may be: (Burst-1) intervals
	full     atomic.Int64 // when the bucket is full again (clock nanoseconds)
}

// NewRate returns a bucket of burst messages refilled at perSecond (0:
// never refilled; +Inf: no limit). A burst below 1 allows nothing.
func NewRate(perSecond float64, burst int) *Rate {
	r := &Rate{}
	// The interval is capped so that Burst+1 intervals stay under 2^61
	// nanoseconds (73 years) and never overflow: a rate slower than that
	// refills a whole burst in 73 years (a burst of 2,000, one message
	// every 13 days at the slowest).
	limit := float64(math.MaxInt64 / 4 / (int64(max(burst, 1)) + 1))
	switch {
	case math.IsInf(perSecond, 1):
		r.interval = 0
	case perSecond <= 0 || 1e9/perSecond > limit:
		r.interval = int64(limit)
	default:
		r.interval = int64(1e9 / perSecond)
	}
	r.span = int64(burst-1) * r.interval
	if burst < 1 {
		r.span = -1
	}
	return r
}

// allow takes one message's token at now (nanoseconds on the monotonic
// clock, from mono.Since), and reports whether there was one.
func (r *Rate) allow(now int64) bool {
	for {
		full := r.full.Load()
		from := max(full, now)
		if from-now > r.span {
			return false
		}
		if r.full.CompareAndSwap(full, from+r.interval) {
			return true
		}
	}
}
