package media

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// TestSlotAudioContinuesThePreviousSource: when a viewer's audio slot
// changes source, the new down track goes on with the old one's sequence
// numbers and timestamps on the same SSRC, whatever numbering the new
// publisher uses, and keeps the new publisher's own spacing after that.
func TestSlotAudioContinuesThePreviousSource(t *testing.T) {
	s := newSFU(t)
	a, _ := join(t, s, 1, "a")
	b, _ := join(t, s, 1, "b")
	srcA, srcB := fakeTrack(t, a, webrtc.RTPCodecTypeAudio), fakeTrack(t, b, webrtc.RTPCodecTypeAudio)
	la, lb := srcA.addLayer(0, "", nil), srcB.addLayer(0, "", nil)
	w := newCapture(false)
	q := newSendQueue()
	t.Cleanup(q.close)
	live := &atomic.Bool{}
	live.Store(true)
	feed := func(src *publishedTrack, l *layer, seq uint16, ts uint32) {
		var h rtp.Header
		pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: ts}, Payload: []byte{1, 2, 3}}).Marshal()
		src.handle(l, pkt, &h, time.Now())
	}

	first := newDownTrack(srcA, q, live)
	if _, err := first.Bind(&bindCtx{w: w}); err != nil {
		t.Fatal(err)
	}
	srcA.addDown(first)
	for i := range 10 {
		feed(srcA, la, 65530+uint16(i), 4000000000+uint32(i)*960) // both wrap
	}
	var last sent
	for range 10 {
		last = w.next(t)
	}
	srcA.removeDown(first)
	first.retire()

	next := newDownTrack(srcB, q, live)
	next.continueFrom(first)
	if _, err := next.Bind(&bindCtx{w: w}); err != nil {
		t.Fatal(err)
	}
	srcB.addDown(next)
	feed(srcA, la, 4, 4000000000+10*960) // the old source is no longer forwarded
	for i := range 10 {
		feed(srcB, lb, 300+uint16(i), 777+uint32(i)*960)
	}
	for i := range 10 {
		p := w.next(t)
		if p.hdr.SSRC != last.hdr.SSRC {
			t.Fatalf("packet %d after the switch has SSRC %d, want the slot's %d", i, p.hdr.SSRC, last.hdr.SSRC)
		}
		if p.hdr.SequenceNumber != last.hdr.SequenceNumber+1 {
			t.Fatalf("packet %d after the switch: sequence number %d after %d", i, p.hdr.SequenceNumber, last.hdr.SequenceNumber)
		}
		step := p.hdr.Timestamp - last.hdr.Timestamp
		if i == 0 && (int32(step) <= 0 || step > 48000) {
			t.Fatalf("the new source's first timestamp is %d after %d: want a little later", p.hdr.Timestamp, last.hdr.Timestamp)
		}
		if i > 0 && step != 960 {
			t.Fatalf("packet %d after the switch: timestamp step %d, want the new source's 960", i, step)
		}
		last = p
	}
	w.none(t)
}
