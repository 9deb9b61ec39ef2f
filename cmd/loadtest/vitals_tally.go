package main

import (
	"sync/atomic"
	"time"
)

// tally accounts for one patient's stream as one viewer receives it: which
// offsets came, how often, and how late. Offsets are the server's stream
// offsets, or the device's sequence numbers through the relay. One
// goroutine writes it; delivered may be read by others.
type tally struct {
	base      int64   // the first offset the measurement expects; 0 until placed
	counts    []uint8 // times offset base+i was received, saturating
	dups      int
	delivered atomic.Int64    // distinct measurements (readings, waveforms) received
	before    int             // messages below base (replayed history), not counted
	epochs    int             // stream restarts seen after placement
	gapMsgs   int             // gap markers the server sent
	lat       []time.Duration // from the scheduled send to the reader's clock
	wire      []time.Duration // from the scheduled send to the kernel's receipt, where known
}

// place starts the count at offset base.
func (t *tally) place(base int64) {
	if t.base != 0 && base != t.base {
		t.epochs++
	}
	t.base, t.counts = base, t.counts[:0]
}

// take records one received message at offset; measured says whether it
// is a measurement (reading or waveform) whose scheduled time is sched.
// The reader read it at received; it reached the machine at arrived, if
// that is not zero.
func (t *tally) take(offset int64, measured bool, sched, received, arrived time.Time) {
	if t.base == 0 || offset < t.base {
		t.before++
		return
	}
	i := offset - t.base
	for int64(len(t.counts)) <= i {
		t.counts = append(t.counts, 0)
	}
	if t.counts[i] > 0 {
		t.dups++
		if t.counts[i] < 255 {
			t.counts[i]++
		}
		return
	}
	t.counts[i] = 1
	if measured {
		t.delivered.Add(1)
		t.lat = append(t.lat, received.Sub(sched))
		if !arrived.IsZero() {
			t.wire = append(t.wire, arrived.Sub(sched))
		}
	}
}

// holes counts the offsets from base up to the highest received that never came.
func (t *tally) holes() int {
	n := 0
	for _, c := range t.counts {
		if c == 0 {
			n++
		}
	}
	return n
}
