package live

import (
	"fmt"
	"testing"
)

// TestRingGrowsAndKeepsTheNewest pushes past each growth of the buffer and
// past both bounds, checking every time that the ring holds exactly the
// newest entries in order.
func TestRingGrowsAndKeepsTheNewest(t *testing.T) {
	for _, c := range []struct {
		maxMsgs, maxBytes, push int
	}{
		{maxMsgs: 100, maxBytes: 1 << 20, push: 250}, // bounded by count: 4, 8, 16, 32, 64, 100
		{maxMsgs: 3, maxBytes: 1 << 20, push: 12},    // smaller than the starting buffer
		{maxMsgs: 2400, maxBytes: 300, push: 90},     // bounded by bytes (10 bytes each)
	} {
		t.Run(fmt.Sprintf("%d-messages-%d-bytes", c.maxMsgs, c.maxBytes), func(t *testing.T) {
			r := newRing(c.maxMsgs, c.maxBytes)
			if len(r.buf) != 0 {
				t.Fatalf("a new ring allocates %d entries, want none until its first push", len(r.buf))
			}
			keep := min(c.maxMsgs, c.maxBytes/10)
			for off := int64(1); off <= int64(c.push); off++ {
				r.push(Entry{Offset: off, Msg: []byte("0123456789")})
				want := min(off, int64(keep))
				if int64(r.n) != want || r.bytes != int(want)*10 {
					t.Fatalf("after %d: %d entries of %d bytes, want %d", off, r.n, r.bytes, want)
				}
				for i := range r.n {
					if got := r.at(i).Offset; got != off-want+1+int64(i) {
						t.Fatalf("after %d: entry %d is offset %d, want %d", off, i, got, off-want+1+int64(i))
					}
				}
				if r.first() != off-want+1 || r.index(off) != r.n-1 || r.index(off-want) != -1 {
					t.Fatalf("after %d: first %d, index of newest %d, of evicted %d", off, r.first(), r.index(off), r.index(off-want))
				}
			}
			if len(r.buf) > c.maxMsgs {
				t.Errorf("buffer of %d entries, more than the %d allowed", len(r.buf), c.maxMsgs)
			}
		})
	}
}
