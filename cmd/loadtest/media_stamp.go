package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Every media packet the load test sends carries a stamp at the start of
// its body (after the VP8 payload descriptor and frame header, or first in
// an Opus payload): the stream id, the packet's counter in that stream and
// the time it was handed to the publisher's peer connection, so that the
// receiver can tell loss, duplicates, reordering and the time the path took
// from the bytes alone. The rest of the body is filler up to the packet's
// size.
const stampLen = 16

// stamp is what a packet body starts with.
type stamp struct {
	stream  uint32
	counter uint32
	sent    time.Time
}

// putStamp writes s at the start of b, which holds at least stampLen bytes.
func putStamp(b []byte, s stamp) {
	binary.BigEndian.PutUint32(b[0:4], s.stream)
	binary.BigEndian.PutUint32(b[4:8], s.counter)
	binary.BigEndian.PutUint64(b[8:16], uint64(s.sent.UnixNano()))
}

// parseStamp reads the stamp at the start of a packet body.
func parseStamp(b []byte) (stamp, error) {
	if len(b) < stampLen {
		return stamp{}, fmt.Errorf("stamp: %d bytes, want at least %d", len(b), stampLen)
	}
	ns := int64(binary.BigEndian.Uint64(b[8:16]))
	if ns <= 0 {
		return stamp{}, fmt.Errorf("stamp: send time %d is not a time", ns)
	}
	return stamp{stream: binary.BigEndian.Uint32(b[0:4]), counter: binary.BigEndian.Uint32(b[4:8]), sent: time.Unix(0, ns)}, nil
}

// VP8 packets carry a payload descriptor with a 15-bit picture id (RFC 7741
// 4.2); the first packet of a frame then carries the frame header (3 bytes,
// 10 for a keyframe, which adds the start code and the picture size), so
// that an SFU that inspects VP8 treats them as a camera's.
const (
	vp8DescLen   = 4
	vp8InterHead = 3
	vp8KeyHead   = 10
)

// vp8Head writes into b the VP8 descriptor and, on a frame's first packet,
// its frame header, and returns how many bytes it wrote.
func vp8Head(b []byte, picture uint16, first, keyframe bool) int {
	b[0] = 0x80 // X: extension byte follows; partition 0
	if first {
		b[0] |= 0x10 // S: start of the frame
	}
	b[1] = 0x80 // I: a picture id follows
	binary.BigEndian.PutUint16(b[2:4], 0x8000|picture&0x7fff)
	if !first {
		return vp8DescLen
	}
	h := b[vp8DescLen:]
	if !keyframe {
		h[0], h[1], h[2] = 0x11, 0x02, 0x00 // P=1 (inter frame), shown
		return vp8DescLen + vp8InterHead
	}
	h[0], h[1], h[2] = 0x10, 0x02, 0x00
	h[3], h[4], h[5] = 0x9d, 0x01, 0x2a // start code
	binary.LittleEndian.PutUint16(h[6:8], 1280)
	binary.LittleEndian.PutUint16(h[8:10], 720)
	return vp8DescLen + vp8KeyHead
}

// vp8Body returns the body of a VP8 payload: what follows the payload
// descriptor and, on a frame's first packet, the frame header.
func vp8Body(p []byte) ([]byte, error) {
	if len(p) < 1 {
		return nil, errors.New("vp8: empty payload")
	}
	i := 1
	if p[0]&0x80 != 0 { // X
		if len(p) < 2 {
			return nil, errors.New("vp8: descriptor cut after its first byte")
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 { // I: picture id, 7 or 15 bits
			if len(p) <= i {
				return nil, errors.New("vp8: descriptor cut before its picture id")
			}
			if p[i]&0x80 != 0 {
				i++
			}
			i++
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K: one byte for both
			i++
		}
	}
	if p[0]&0x10 != 0 && p[0]&0x07 == 0 { // S, partition 0: a frame header
		if len(p) < i+vp8InterHead {
			return nil, errors.New("vp8: payload cut in its frame header")
		}
		if p[i]&0x01 == 0 { // P=0: keyframe
			i += vp8KeyHead
		} else {
			i += vp8InterHead
		}
	}
	if len(p) < i {
		return nil, fmt.Errorf("vp8: payload of %d bytes cut in its %d-byte header", len(p), i)
	}
	return p[i:], nil
}

// streamTally records what one receiver got of one stream: each counter's
// latency, so that the measured window, known only once sending stops, can
// be tallied afterwards. One goroutine reads a stream; the lock guards
// against the final tally.
type streamTally struct {
	mu sync.Mutex
	// lat[c] is counter c's latency in microseconds plus one; 0 if c has
	// not arrived.
	lat       []int32
	dups      int
	reordered int // arrived after a higher counter
	highest   uint32
	any       bool
}

// maxCounter bounds the counters a tally keeps (about three hours of video
// at 200 packets a second), so that a corrupt counter cannot exhaust memory.
const maxCounter = 1 << 21

// take records the arrival of counter c after latency d.
func (t *streamTally) take(c uint32, d time.Duration) error {
	if c >= maxCounter {
		return fmt.Errorf("counter %d beyond %d", c, maxCounter)
	}
	us := max(int64(d/time.Microsecond), 0)
	t.mu.Lock()
	defer t.mu.Unlock()
	if int(c) >= len(t.lat) {
		t.lat = append(t.lat, make([]int32, int(c)+1-len(t.lat)+1024)...)
	}
	if t.lat[c] != 0 {
		t.dups++
		return nil
	}
	t.lat[c] = int32(min(us, 1<<30)) + 1
	if t.any && c < t.highest {
		t.reordered++
	}
	if !t.any || c > t.highest {
		t.highest, t.any = c, true
	}
	return nil
}

// window tallies the counters lo to hi-1: how many arrived, the longest
// run of them missing, and their latencies appended to lats.
func (t *streamTally) window(lo, hi uint32, lats []time.Duration) (got, longestGap int, _ []time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	gap := 0
	for c := lo; c < hi; c++ {
		if int(c) < len(t.lat) && t.lat[c] != 0 {
			got++
			gap = 0
			lats = append(lats, time.Duration(t.lat[c]-1)*time.Microsecond)
		} else {
			gap++
			longestGap = max(longestGap, gap)
		}
	}
	return got, longestGap, lats
}
