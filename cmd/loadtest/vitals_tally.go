package main

import (
	"strconv"
	"strings"
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
	tenth     byTenth         // the measurements by where in the wall clock's tenth of a second they were sent
}

// tenthSteps is how many steps of 5 ms a tenth of a second is cut into.
const tenthSteps = 20

// byTenth counts measurements, and those more than 5 ms late, by the
// 5 ms step of the wall clock's tenth of a second their scheduled send
// fell in. The server commits its devices' readings in slots that start
// on the clock's tenths, so work that follows its commits shows there.
type byTenth [tenthSteps]struct{ n, late int64 }

// add counts a measurement scheduled at sched that came lat after it.
func (b *byTenth) add(sched time.Time, lat time.Duration) {
	i := sched.UnixNano() % int64(100*time.Millisecond) / int64(5*time.Millisecond)
	b[i].n++
	if lat > 5*time.Millisecond {
		b[i].late++
	}
}

// merge adds o's counts to b's.
func (b *byTenth) merge(o *byTenth) {
	for i := range b {
		b[i].n += o[i].n
		b[i].late += o[i].late
	}
}

// String is the percentage over 5 ms late in each step, from the one
// starting on the tenth; "-" for a step with none.
func (b *byTenth) String() string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = "-"
		if c.n > 0 {
			parts[i] = strconv.FormatFloat(100*float64(c.late)/float64(c.n), 'f', 2, 64)
		}
	}
	return strings.Join(parts, " ")
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
		t.tenth.add(sched, received.Sub(sched))
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
