// Package mono reads the monotonic clock alone. time.Now reads the wall
// clock too, which on a virtual machine costs about as much again; code
// that reads the clock on every message and needs only the time between
// two readings on this node (rates, flush intervals, commit slots, a
// history's ages) reads it here.
package mono

import "time"

// base is where the readings count from.
var base = time.Now()

// Since is the monotonic time elapsed since the process started, plus one
// nanosecond, so that a reading is never 0 and 0 can stand for "never".
func Since() time.Duration { return time.Since(base) + 1 }

// Now is the wall clock as of the process's start plus the monotonic time
// elapsed since: a time.Time for spans measured on this node, not for
// comparing with other machines' clocks.
func Now() time.Time { return base.Add(time.Since(base)) }
