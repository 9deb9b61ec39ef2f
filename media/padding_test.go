package media

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// paddingPacket is a whole RTP packet with no payload, only n bytes of
// padding: what a browser sends to probe its bandwidth.
func paddingPacket(seq uint16, ts uint32, n byte) []byte {
	p := make([]byte, 12+int(n))
	p[0] = 0xa0 // version 2, padding
	p[1] = 96
	binary.BigEndian.PutUint16(p[2:], seq)
	binary.BigEndian.PutUint32(p[4:], ts)
	binary.BigEndian.PutUint32(p[8:], 5)
	p[len(p)-1] = n
	return p
}

// pad sends a padding-only packet in the layer's sequence.
func (f *feeder) pad() uint16 {
	f.seq++
	f.t.handle(f.l, paddingPacket(f.seq, f.ts, 200), &f.h, time.Now())
	return f.seq
}

// TestPaddingLeavesNoHoleForTheSubscriber: the publisher's padding-only
// packets are not forwarded, and the subscriber's sequence numbers run on
// without a hole (a hole is what its receiver reports as loss and NACKs).
// A packet from before a padding burst that arrives after it takes its own
// place, and NACKs for packets sent before and after padding are answered
// with the right packet.
func TestPaddingLeavesNoHoleForTheSubscriber(t *testing.T) {
	s := newSFU(t)
	b, _ := join(t, s, 1, "b")
	src := fakeTrack(t, b, webrtc.RTPCodecTypeVideo)
	// Across the wrap of the publisher's numbering.
	f := &feeder{t: src, l: src.addLayer(0, "", nil), seq: 65530}
	w := newCapture(false)
	d := bound(t, src, w, false)

	var got []sent
	body := func(p sent) byte { return p.payload[len(p.payload)-1] }
	f.pad() // before the first keyframe: nothing to close over
	f.send(true, 'a')
	got = append(got, w.next(t))
	f.pad()
	f.pad()
	f.pad()
	f.send(false, 'b')
	got = append(got, w.next(t))
	f.pad()
	f.send(false, 'c')
	got = append(got, w.next(t))

	// 'e' is held up on the way; padding and 'f' overtake it.
	f.seq++
	late := vp8Packet(f.seq, f.ts+3000, f.pic+1, f.tl0+1, false, 'e')
	f.pic++
	f.tl0++
	f.ts += 3000
	f.pad()
	f.pad()
	f.send(false, 'f')
	fp := w.next(t)
	f.t.handle(f.l, late, &f.h, time.Now())
	ep := w.next(t)
	got = append(got, ep, fp)
	f.send(false, 'g')
	got = append(got, w.next(t))
	w.none(t)

	for i, want := range []byte("abcefg") {
		p := got[i]
		if body(p) != want {
			t.Fatalf("packet %d carries %q, want %q", i, body(p), want)
		}
		if p.hdr.SequenceNumber != got[0].hdr.SequenceNumber+uint16(i) {
			t.Fatalf("%q sent as %d; 'a' was %d: the padding left a hole", want, p.hdr.SequenceNumber, got[0].hdr.SequenceNumber)
		}
	}

	// NACKs: each number is answered with the packet it was sent with.
	now := time.Now()
	for i, p := range got {
		d.retransmit(p.hdr.SequenceNumber, now)
		re := w.next(t)
		if re.hdr.SequenceNumber != p.hdr.SequenceNumber || string(re.payload) != string(p.payload) {
			t.Fatalf("NACK of %d (packet %d) answered with %d %q", p.hdr.SequenceNumber, i, re.hdr.SequenceNumber, body(re))
		}
	}
	next := got[len(got)-1].hdr.SequenceNumber + 1
	d.retransmit(next, now)
	w.none(t)
	if n := d.stats.nacked.Load(); n != 1 {
		t.Fatalf("%d unanswered NACKs, want 1 (the number not yet sent)", n)
	}
	// Padding at the end of one layer leaves no hole at the next either.
	f.pad()
	f.send(true, 'h')
	if p := w.next(t); p.hdr.SequenceNumber != next || body(p) != 'h' {
		t.Fatalf("%q sent as %d, want %d", body(p), p.hdr.SequenceNumber, next)
	}
}

// TestSeqMapForgetsOldRangesSafely: past seqRanges padding gaps, packets
// from before the oldest remembered offset are dropped, not misnumbered.
func TestSeqMapForgetsOldRangesSafely(t *testing.T) {
	var m seqMap
	var first uint16 = 100
	m.reset(100)
	off := uint16(0)
	seq := uint16(100)
	out := map[uint16]uint16{}
	for range seqRanges + 3 {
		o, ok := m.offset(seq, off)
		if !ok {
			t.Fatalf("in-order %d refused", seq)
		}
		out[seq] = seq - o
		seq++
		off = m.skip(seq, off, &first)
		seq++
	}
	if first == 100 {
		t.Fatal("first not raised when ranges were forgotten")
	}
	// Every remembered packet maps back to the number it was sent as;
	// every forgotten one is refused.
	for s, want := range out {
		o, ok := m.offset(s, off)
		if int16(s-first) < 0 {
			continue // the caller drops these before asking
		}
		if !ok || s-o != want {
			t.Fatalf("%d maps to %d (ok %v), was sent as %d", s, s-o, ok, want)
		}
	}
	if _, ok := m.offset(first-1, off); ok {
		t.Fatalf("%d, before every remembered range, was given an offset", first-1)
	}
}
