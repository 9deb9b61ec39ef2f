package media

import (
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// longRun is more packets than half the sequence space, so that a
// mapping's start left where it began would look newer than the packets.
const longRun = 70000

// TestVideoKeepsFlowingPastHalfTheSequenceSpace: one layer, no switch, no
// keyframe after the first, some padding early on (so the offset ranges
// have a history): every packet reaches the subscriber, numbered without
// a hole, well past 32,768 and the publisher's wrap.
func TestVideoKeepsFlowingPastHalfTheSequenceSpace(t *testing.T) {
	s := newSFU(t)
	b, _ := join(t, s, 1, "b")
	src := fakeTrack(t, b, webrtc.RTPCodecTypeVideo)
	f := &feeder{t: src, l: src.addLayer(0, "", nil), seq: 100}
	w := newCapture(false)
	_ = bound(t, src, w, false)
	f.send(true, 'a')
	last := w.next(t).hdr.SequenceNumber
	for i := 1; i < longRun; i++ {
		if i < 50 && i%5 == 0 {
			f.pad()
		}
		f.send(false, 'b')
		select {
		case p := <-w.out:
			if p.hdr.SequenceNumber != last+1 {
				t.Fatalf("packet %d sent as %d after %d: a hole", i, p.hdr.SequenceNumber, last)
			}
			last = p.hdr.SequenceNumber
		case <-time.After(5 * time.Second):
			t.Fatalf("packet %d (publisher's %d) was not forwarded", i, f.seq)
		}
	}
	// A packet far older than the newest is dropped, not misnumbered.
	var h rtp.Header
	old := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: f.seq - maxLate - 10, Timestamp: f.ts, SSRC: 1}, Payload: []byte{0x10, 0, 0, 0, 'z'}}
	raw, _ := old.Marshal()
	src.handle(f.l, raw, &h, time.Now())
	f.send(false, 'c')
	if p := w.next(t); p.payload[len(p.payload)-1] != 'c' || p.hdr.SequenceNumber != last+1 {
		t.Fatalf("after a stale packet: %q as %d, want 'c' as %d", p.payload[len(p.payload)-1], p.hdr.SequenceNumber, last+1)
	}
}

// TestAudioKeepsFlowingPastHalfTheSequenceSpace: 70,000 Opus packets,
// about 23 minutes of a call, all forwarded in order.
func TestAudioKeepsFlowingPastHalfTheSequenceSpace(t *testing.T) {
	s := newSFU(t)
	b, _ := join(t, s, 1, "b")
	src := fakeTrack(t, b, webrtc.RTPCodecTypeAudio)
	l := src.addLayer(0, "", nil)
	w := newCapture(false)
	_ = bound(t, src, w, false)
	var h rtp.Header
	var last uint16
	for i := range longRun {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(100 + i), Timestamp: uint32(960 * i), SSRC: 7}, Payload: []byte{1, 2, 3}}
		raw, _ := p.Marshal()
		src.handle(l, raw, &h, time.Now())
		select {
		case got := <-w.out:
			if i > 0 && got.hdr.SequenceNumber != last+1 {
				t.Fatalf("audio packet %d sent as %d after %d", i, got.hdr.SequenceNumber, last)
			}
			last = got.hdr.SequenceNumber
		case <-time.After(5 * time.Second):
			t.Fatalf("audio packet %d not forwarded", i)
		}
	}
}
