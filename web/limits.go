package web

import (
	"golang.org/x/time/rate"

	"github.com/bedside-health/bedside/wsconn"
)

// MessageRate bounds how fast one sender's WebSocket messages may come: a
// steady PerSecond with bursts of up to Burst. Zero fields take the default
// of where it is used.
type MessageRate struct {
	PerSecond float64
	Burst     int
}

// Default message rates. A device streams a few numerics and ten waveform
// chunks a second, and after a reconnect resends its unacknowledged
// backlog, hence the large burst; a call connection carries offers,
// answers and trickled candidates, a few dozen at the start of a call.
var (
	defaultDeviceRate = MessageRate{PerSecond: 200, Burst: 2000}
	defaultCallRate   = MessageRate{PerSecond: 50, Burst: 200}
	viewerRate        = MessageRate{PerSecond: 10, Burst: 50} // viewers send nothing we act on
)

// limiter returns a token bucket for r, with def's values where r has none.
func (r MessageRate) limiter(def MessageRate) *rate.Limiter {
	r = r.or(def)
	return rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst)
}

// socketRate is limiter for a socket's every message read (wsconn.Rate,
// cheaper per message).
func (r MessageRate) socketRate(def MessageRate) *wsconn.Rate {
	r = r.or(def)
	return wsconn.NewRate(r.PerSecond, r.Burst)
}

// or is r with def's values where r has none.
func (r MessageRate) or(def MessageRate) MessageRate {
	if r.PerSecond <= 0 {
		r.PerSecond = def.PerSecond
	}
	if r.Burst <= 0 {
		r.Burst = def.Burst
	}
	return r
}
