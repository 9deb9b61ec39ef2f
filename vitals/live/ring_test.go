package live

import (
	"bytes"
	"fmt"
	"strings"
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
			if len(r.recs) != 0 {
				t.Fatalf("a new ring allocates %d entries, want none until its first push", len(r.recs))
			}
			keep := min(c.maxMsgs, c.maxBytes/10)
			for off := int64(1); off <= int64(c.push); off++ {
				r.push(Entry{Offset: off, Msg: []byte("0123456789")})
				want := min(off, int64(keep))
				if int64(r.n) != want || r.bytes != int(want)*10 {
					t.Fatalf("after %d: %d entries of %d bytes, want %d", off, r.n, r.bytes, want)
				}
				for i := range r.n {
					if got := r.at(i).offset; got != off-want+1+int64(i) {
						t.Fatalf("after %d: entry %d is offset %d, want %d", off, i, got, off-want+1+int64(i))
					}
				}
				if r.first() != off-want+1 || r.index(off) != r.n-1 || r.index(off-want) != -1 {
					t.Fatalf("after %d: first %d, index of newest %d, of evicted %d", off, r.first(), r.index(off), r.index(off-want))
				}
			}
			if len(r.recs) > c.maxMsgs {
				t.Errorf("buffer of %d entries, more than the %d allowed", len(r.recs), c.maxMsgs)
			}
		})
	}
}

// TestRingMessagesOutliveTheirBlocks holds on to every message the ring
// returns, as a slow viewer's queue does, while the ring goes on taking
// messages and dropping the oldest: each must keep its bytes.
func TestRingMessagesOutliveTheirBlocks(t *testing.T) {
	r := newRing(50, 4000)
	var got [][]byte
	var want []string
	for off := int64(1); off <= 2000; off++ {
		body := fmt.Sprintf(`{"type":"reading","n":%d,"pad":"%s"}`, off, strings.Repeat("x", int(off%97)))
		var m []byte
		if off%3 == 0 {
			m = r.push(Entry{Offset: off, Msg: Encode(7, off, []byte(body))})
		} else {
			m = r.pushEncoded(7, off, 0, false, []byte(body))
		}
		got = append(got, m)
		want = append(want, string(Encode(7, off, []byte(body))))
		if cap(m) != len(m) {
			t.Fatalf("message %d has room to grow into the ring (len %d, cap %d)", off, len(m), cap(m))
		}
	}
	for i := range got {
		if string(got[i]) != want[i] {
			t.Fatalf("message %d changed after the ring moved on:\n got %s\nwant %s", i+1, got[i], want[i])
		}
	}
	for i := range r.n {
		e := r.entry(i)
		if off := e.Offset; string(e.Msg) != want[off-1] {
			t.Fatalf("history entry %d: %s, want %s", off, e.Msg, want[off-1])
		}
	}
}

// TestRingBlocksAreBounded checks that the ring drops the blocks its
// records no longer need: what it holds stays within its byte bound plus
// a block, however long a stream runs.
func TestRingBlocksAreBounded(t *testing.T) {
	r := newRing(2400, 1<<20)
	msg := bytes.Repeat([]byte("e"), 230) // about an ECG chunk
	held := func() (n int) {
		for _, b := range r.blocks {
			n += cap(b)
		}
		return n
	}
	for off := int64(1); off <= 20000; off++ {
		r.push(Entry{Offset: off, Msg: msg})
		if h := held(); h > r.bytes+2*blockMax {
			t.Fatalf("after %d messages: blocks of %d bytes for %d bytes of messages", off, h, r.bytes)
		}
	}
	if r.n != 2400 || len(r.blocks) > 2400*230/blockMax+2 {
		t.Fatalf("%d messages in %d blocks", r.n, len(r.blocks))
	}
	r.reset()
	if r.n != 0 || r.bytes != 0 || len(r.blocks) != 0 {
		t.Fatalf("after reset: %d messages, %d bytes, %d blocks", r.n, r.bytes, len(r.blocks))
	}
	if m := r.push(Entry{Offset: 1, Msg: msg}); string(m) != string(msg) || r.first() != 1 {
		t.Fatalf("after reset the ring holds %q from %d", m, r.first())
	}
}

// TestRingPushAllocatesPerBlockNotPerMessage: a full ring taking a steady
// stream allocates only its blocks, some 70 messages apiece, so there is
// no object per message for the garbage collector.
func TestRingPushAllocatesPerBlockNotPerMessage(t *testing.T) {
	r := newRing(2400, 1<<20)
	body := []byte(`{"type":"waveform","code":"131330","data":[12,15,18,22,30,45,80,120,80,30,12,8,6,5,5,6,7,8,9,10,10,11,11,12,12]}`)
	off := int64(0)
	for range 5000 {
		off++
		r.pushEncoded(1, off, 0, true, body)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		off++
		r.pushEncoded(1, off, 0, true, body)
	})
	if allocs > 0.05 {
		t.Fatalf("%.3f allocations per message, want one per block (under 0.05)", allocs)
	}
}

// TestRingIdlePatientHoldsOneBlock: what an idle patient's stream holds
// (its device's connection event, one reading and the NEWS2 score that
// followed it, 1.1 KB encoded) sits in one block about its size, not in
// blocks of 256, 512 and 1,024 bytes (docs/benchmarks.md, "History,
// stacks and readers of an idle connection"); the messages handed out
// before keep their bytes.
func TestRingIdlePatientHoldsOneBlock(t *testing.T) {
	r := newRing(2400, 1<<20)
	bodies := []string{
		`{"type":"device","event":"connected","device":"Load hub","time":"2026-12-06T11:58:38.239198246Z"}`,
		`{"type":"reading","code":"8867-4","value":72,"unit":"/min","time":"2026-12-06T11:58:38.239137102Z","device":"Load hub"}`,
		`{"type":"news2","time":"2026-12-06T11:58:38.245725567Z","score":0,"band":"low","complete":false,"scale":1,"params":[` +
			strings.Repeat(`{"param":"respiration-rate","score":0,"source":"missing","code":"9279-1"},`, 9) +
			`{"param":"pulse","score":0,"source":"measured","code":"8867-4"}]}`,
	}
	var got [][]byte
	for i, body := range bodies {
		got = append(got, r.pushEncoded(1234, int64(i+1), 0, false, []byte(body)))
	}
	held := 0
	for _, b := range r.blocks {
		held += cap(b)
	}
	if len(r.blocks) != 1 || held > r.bytes+encodeRoom {
		t.Errorf("%d bytes of messages in %d blocks of %d bytes, want one block of at most %d", r.bytes, len(r.blocks), held, r.bytes+encodeRoom)
	}
	for i, body := range bodies {
		want := string(Encode(1234, int64(i+1), []byte(body)))
		if string(got[i]) != want || string(r.entry(i).Msg) != want {
			t.Errorf("message %d: handed out %s, held %s, want %s", i+1, got[i], r.entry(i).Msg, want)
		}
	}
}
