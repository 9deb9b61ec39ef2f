package web

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
)

// publishTagged publishes numbered VP8 frames by WHIP, every 30th a
// keyframe, each carrying tag so that a viewer can tell whose they are.
func (f *fixture) publishTagged(t *testing.T, token string, tag byte) *whipClient {
	t.Helper()
	pc := newClientPC(t)
	video, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "camera-"+string(tag), "camera-"+string(tag))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(video, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	c := f.negotiate(t, fmt.Sprintf("/whip/%d", f.visit.ID), token, pc)
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		// Each camera numbers its packets from its own random start, as
		// a real one does.
		base := uint16(tag) * 1000
		for n := uint32(0); ; n++ {
			select {
			case <-t.Context().Done():
				return
			case <-tick.C:
			}
			if pc.ConnectionState() == webrtc.PeerConnectionStateClosed {
				return
			}
			_ = video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: base + uint16(n), Timestamp: uint32(base)*7 + n*3000, Marker: true},
				Payload: sigclient.VP8Payload(n, tag, n%30 == 0, 300)})
		}
	}()
	return c
}

// awaitVideoPublished waits until the SFU receives n video tracks: a
// camera is published with its first packet, some time after its WHIP
// answer.
func awaitVideoPublished(t *testing.T, sfu *media.SFU, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := 0
		for _, s := range sfu.TrackStats() {
			if s.Direction == media.DirectionUp && s.Kind == "video" {
				got++
			}
		}
		if got == n {
			return
		}
		if got > n || time.Now().After(deadline) {
			t.Fatalf("the SFU receives %d video tracks, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitConnected waits until pc has connected to the server.
func waitConnected(t *testing.T, who string, pc *webrtc.PeerConnection) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s := pc.ConnectionState(); s != webrtc.PeerConnectionStateConnected; s = pc.ConnectionState() {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed || time.Now().After(deadline) {
			t.Fatalf("%s is %s, want connected", who, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// slotPacket is one packet a viewer's slot received, as the viewer saw it.
type slotPacket struct {
	seq   uint16
	ts    uint32
	vp8   bool
	pic   uint16 // the VP8 picture id
	tag   byte   // whose camera: publishTagged's tag, 'H' for publishH264's
	frame uint32 // the camera's frame number (an H.264 camera's packet number)
	key   bool
	err   error
}

// readSlot reads the packets of a viewer's track into a channel until the
// track ends.
func readSlot(tr *webrtc.TrackRemote) <-chan slotPacket {
	out := make(chan slotPacket, 4096)
	go func() {
		defer close(out)
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			p := slotPacket{seq: pkt.SequenceNumber, ts: pkt.Timestamp}
			p.frame, p.tag, p.key, p.err = sigclient.ParseVP8Payload(pkt.Payload)
			if p.err == nil {
				p.vp8, p.pic = true, binary.BigEndian.Uint16(pkt.Payload[2:4])&0x7fff
			} else if n, key, err := h264Counter(pkt.Payload); err == nil {
				p.tag, p.frame, p.key, p.err = 'H', n, key, nil
			}
			select {
			case out <- p:
			default: // the test stopped reading this slot
			}
		}
	}()
	return out
}

// slotReader follows one slot of a viewer and checks that whatever camera
// it carries, the viewer sees one stream: sequence numbers, picture ids
// and timestamps go on without a break, and a camera's frames start at a
// keyframe and follow each other.
type slotReader struct {
	t    *testing.T
	name string
	in   <-chan slotPacket
	n    int
	last slotPacket
}

// until reads the slot until it has received want packets of camera tag,
// checking every packet on the way.
func (r *slotReader) until(tag byte, want int) {
	r.t.Helper()
	got := 0
	deadline := time.After(20 * time.Second)
	for got < want {
		var p slotPacket
		select {
		case p = <-r.in:
		case <-deadline:
			r.t.Fatalf("%s: %d packets of camera %c in 20 s, want %d (last from %c)", r.name, got, tag, want, r.last.tag)
		}
		if p.err != nil {
			r.t.Fatalf("%s: packet %d: %v", r.name, r.n, p.err)
		}
		if r.n > 0 {
			if p.seq != r.last.seq+1 {
				r.t.Fatalf("%s: sequence number %d after %d (camera %c after %c): the stream has a break", r.name, p.seq, r.last.seq, p.tag, r.last.tag)
			}
			if p.vp8 && r.last.vp8 && p.pic != (r.last.pic+1)&0x7fff {
				r.t.Fatalf("%s: picture id %d after %d (camera %c after %c): the stream has a break", r.name, p.pic, r.last.pic, p.tag, r.last.tag)
			}
			// A frame's packets share a timestamp; a new camera's first
			// frame comes later than the last one's.
			if d := int32(p.ts - r.last.ts); d < 0 || d == 0 && p.tag != r.last.tag {
				r.t.Fatalf("%s: timestamp %d after %d (camera %c after %c): time went back", r.name, p.ts, r.last.ts, p.tag, r.last.tag)
			}
		}
		switch {
		case r.n == 0 || p.tag != r.last.tag:
			if !p.key {
				r.t.Fatalf("%s: camera %c's first frame %d is not a keyframe", r.name, p.tag, p.frame)
			}
		case p.frame != r.last.frame+1:
			r.t.Fatalf("%s: camera %c's frame %d after %d: lost or reordered", r.name, p.tag, p.frame, r.last.frame)
		}
		if p.tag == tag {
			got++
		}
		r.last = p
		r.n++
	}
}

// TestWHEPSlotsFollowTheCall: a WHEP viewer's sections are slots that
// follow what the visit publishes, with no new session. A viewer with two
// video sections, connected while one camera publishes, gets that camera on
// one; a second camera published later comes on the other, from a
// keyframe. When the first camera leaves, its slot carries on with a
// third camera that was waiting for a free slot, and the viewer's stream
// on that slot has no break: sequence numbers, picture ids and timestamps
// go on, the third camera starting at a keyframe. When the second camera
// leaves with no other to take its place, its slot goes quiet and the
// other keeps playing.
func TestWHEPSlotsFollowTheCall(t *testing.T) {
	f := newFixture(t)
	docToken, patToken := f.apiToken(t, f.doc.ID), f.apiToken(t, f.pat.ID)
	viewToken := f.apiToken(t, f.doc.ID) // a patient watches only once admitted
	camA := f.publishTagged(t, docToken, 'a')

	viewer := newClientPC(t)
	for range 2 {
		if _, err := viewer.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	tracks := make(chan *webrtc.TrackRemote, 2)
	viewer.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { tracks <- tr })
	f.negotiate(t, fmt.Sprintf("/whep/%d", f.visit.ID), viewToken, viewer)
	next := func(what string) *slotReader {
		t.Helper()
		select {
		case tr := <-tracks:
			return &slotReader{t: t, name: what, in: readSlot(tr)}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: the viewer received no track", what)
		}
		return nil
	}
	first := next("the first slot")
	first.until('a', 60)

	// A camera published after the viewer connected fills the empty slot.
	camB := f.publishTagged(t, patToken, 'b')
	second := next("the second slot")
	second.until('b', 60)

	// A third camera finds no free slot and waits; when the first camera
	// leaves, the first slot switches to it.
	f.publishTagged(t, docToken, 'c')
	first.until('a', 30)
	if resp, body := f.streamRequest(t, http.MethodDelete, camA.location, docToken, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE the first camera: %d %s", resp.StatusCode, body)
	}
	first.until('c', 60)
	second.until('b', 30)

	// The second camera leaves with nobody to replace it: its slot goes
	// quiet, the first plays on, and the session stays up.
	if resp, body := f.streamRequest(t, http.MethodDelete, camB.location, patToken, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE the second camera: %d %s", resp.StatusCode, body)
	}
	first.until('c', 100)
	if s := viewer.ConnectionState(); s != webrtc.PeerConnectionStateConnected {
		t.Fatalf("the viewer's connection is %s after its cameras changed, want connected", s)
	}
}

// TestWHEPViewerWaitsForTheCall: a viewer that connects before anything is
// published is accepted with empty slots (as WHEP players that connect and
// wait expect) and starts receiving, from a keyframe, once a camera
// publishes.
func TestWHEPViewerWaitsForTheCall(t *testing.T) {
	f := newFixture(t)
	viewToken := f.apiToken(t, f.doc.ID) // a patient watches only once admitted
	viewer := newClientPC(t)
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := viewer.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	tracks := make(chan *webrtc.TrackRemote, 2)
	viewer.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { tracks <- tr })
	f.negotiate(t, fmt.Sprintf("/whep/%d", f.visit.ID), viewToken, viewer)

	f.publishTagged(t, f.apiToken(t, f.doc.ID), 'a')
	select {
	case tr := <-tracks:
		if tr.Kind() != webrtc.RTPCodecTypeVideo {
			t.Fatalf("the viewer received %s, want the camera's video", tr.Kind())
		}
		(&slotReader{t: t, name: "the waiting viewer", in: readSlot(tr)}).until('a', 60)
	case <-time.After(20 * time.Second):
		t.Fatal("the viewer connected before the camera received nothing once it published")
	}
}

// TestWHEPSlotSwitchKeepsToTheOfferCodecs: a slot only takes a camera in a
// codec its offer accepts. When the first camera (VP8) leaves, a VP8-only
// viewer's slot passes over the H.264 camera published next and takes the
// VP8 camera after it; a viewer that takes both codecs gets the H.264
// camera, which sends a keyframe only when asked, so its picture starting
// shows the switch asked for one.
func TestWHEPSlotSwitchKeepsToTheOfferCodecs(t *testing.T) {
	// Three cameras and two viewers, with the physician's and the
	// patient's places kept.
	var sfu *media.SFU
	f := newFixtureWith(t, func(d *Deps) {
		d.Calls.(*signaling.Hub).SetLimits(signaling.Limits{PerVisit: 7}, nil)
		sfu = d.Connectivity.(*media.SFU)
	})
	docToken, viewToken := f.apiToken(t, f.doc.ID), f.apiToken(t, f.doc.ID) // a patient watches only once admitted
	// A camera is published when its first packet reaches the SFU, not
	// when its WHIP answer comes back, so each waits for the one before:
	// otherwise a loaded machine may publish them out of order.
	camA := f.publishTagged(t, docToken, 'a')
	awaitVideoPublished(t, sfu, 1)
	f.publishH264(t, f.visit.ID, docToken)
	awaitVideoPublished(t, sfu, 2)

	watch := func(name string, codecs ...webrtc.RTPCodecParameters) *slotReader {
		t.Helper()
		viewer := newCodecPC(t, codecs...)
		if _, err := viewer.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
		tracks := make(chan *webrtc.TrackRemote, 1)
		viewer.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { tracks <- tr })
		f.negotiate(t, fmt.Sprintf("/whep/%d", f.visit.ID), viewToken, viewer)
		select {
		case tr := <-tracks:
			return &slotReader{t: t, name: name, in: readSlot(tr)}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s received no track", name)
		}
		return nil
	}
	vp8Only := watch("the VP8-only viewer", vp8Codec)
	both := watch("the VP8 and H.264 viewer", vp8Codec, h264Codec)
	vp8Only.until('a', 30)
	both.until('a', 30)

	f.publishTagged(t, docToken, 'c')
	awaitVideoPublished(t, sfu, 3)
	if resp, body := f.streamRequest(t, http.MethodDelete, camA.location, docToken, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE the first camera: %d %s", resp.StatusCode, body)
	}
	both.until('H', 60)
	vp8Only.until('c', 60)
}
