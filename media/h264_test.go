package media

import (
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

func TestH264Keyframe(t *testing.T) {
	for _, c := range []struct {
		name string
		p    []byte
		want bool
	}{
		{"empty", nil, false},
		{"IDR slice", []byte{0x65, 0x88, 0x84}, true},
		{"SPS", []byte{0x67, 0x42, 0xe0, 0x1f}, true},
		{"PPS alone", []byte{0x68, 0xce, 0x3c, 0x80}, false},
		{"non-IDR slice", []byte{0x41, 0x9a, 0x02}, false},
		{"SEI", []byte{0x06, 0x05, 0x01}, false},
		{"forbidden bit", []byte{0xe5, 0x88}, false},
		{"STAP-A with SPS, PPS", []byte{0x78, 0x00, 0x04, 0x67, 0x42, 0xe0, 0x1f, 0x00, 0x02, 0x68, 0xce}, true},
		{"STAP-A with IDR second", []byte{0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x65, 0x88}, true},
		{"STAP-A of non-IDR", []byte{0x78, 0x00, 0x02, 0x41, 0x9a, 0x00, 0x02, 0x41, 0x9b}, false},
		{"STAP-A truncated", []byte{0x78, 0x00, 0x09, 0x67, 0x42}, false},
		{"STAP-A zero length", []byte{0x78, 0x00, 0x00, 0x67, 0x42}, false},
		{"STAP-A header only", []byte{0x78, 0x00}, false},
		{"FU-A IDR start", []byte{0x7c, 0x85, 0x88, 0x84}, true},
		{"FU-A IDR middle", []byte{0x7c, 0x05, 0x11}, false},
		{"FU-A IDR end", []byte{0x7c, 0x45, 0x11}, false},
		{"FU-A non-IDR start", []byte{0x5c, 0x81, 0x9a}, false},
		{"FU-A header only", []byte{0x7c}, false},
		{"FU-B", []byte{0x7d, 0x85, 0x00, 0x01}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := h264Keyframe(c.p); got != c.want {
				t.Errorf("h264Keyframe(% x) = %v, want %v", c.p, got, c.want)
			}
		})
	}
}

// FuzzH264Keyframe: any payload a publisher sends is classified without a
// panic or a read past its end, and only payloads whose first NAL unit
// header is well formed count as keyframes.
func FuzzH264Keyframe(f *testing.F) {
	for _, s := range [][]byte{
		{0x65, 0x88}, {0x67, 0x42, 0xe0, 0x1f},
		{0x78, 0x00, 0x04, 0x67, 0x42, 0xe0, 0x1f, 0x00, 0x02, 0x68, 0xce},
		{0x7c, 0x85, 0x88}, {0x78, 0xff, 0xff}, {},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		// Slicing to the length leaves no spare capacity to read into.
		if h264Keyframe(p[:len(p):len(p)]) && p[0]&0x80 != 0 {
			t.Fatalf("% x: a payload with the forbidden bit set is taken as a keyframe", p)
		}
	})
}

func TestAcceptsVideo(t *testing.T) {
	for _, c := range []struct {
		enc, fmtp string
		want      bool
	}{
		{"VP8/90000", "", true},
		{"vp8/90000", "", true},
		{"H264/90000", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", true},
		{"H264/90000", "profile-level-id=42E028; packetization-mode=1", true}, // another level, spaces, upper case
		{"H264/90000", "packetization-mode=1;profile-level-id=42001f", true},
		{"H264/90000", "packetization-mode=1;profile-level-id=640c1f", true},
		{"H264/90000", "packetization-mode=1;profile-level-id=640028", true},
		{"H264/90000", "packetization-mode=0;profile-level-id=42e01f", false},
		{"H264/90000", "profile-level-id=42e01f", false},
		{"H264/90000", "packetization-mode=1;profile-level-id=4d001f", false}, // main: not registered
		{"H264/90000", "packetization-mode=1;profile-level-id=42e0", false},
		{"H264/90000", "", false},
		{"VP9/90000", "profile-id=0", false},
		{"VP8", "", false},
		{"VP8/48000", "", false},
		{"H264/9000", "packetization-mode=1;profile-level-id=42e01f", false},
		{"", "", false},
	} {
		if got := AcceptsVideo(c.enc, c.fmtp); got != c.want {
			t.Errorf("AcceptsVideo(%q, %q) = %v, want %v", c.enc, c.fmtp, got, c.want)
		}
	}
}

// vp8OnlyAnswerer is the client side of a subscribe connection that
// decodes VP8 and Opus but not H.264.
func vp8OnlyAnswerer(t *testing.T) *answerer {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return &answerer{pc}
}

// TestSubscriberWithoutH264IsNotGivenIt: a call participant whose answer
// takes no H.264 keeps its negotiation and its VP8 video, and the H.264
// camera is withdrawn from its offers rather than left as a black tile,
// including when the camera is published again later.
func TestSubscriberWithoutH264IsNotGivenIt(t *testing.T) {
	s := newSFU(t)
	a, ra := join(t, s, 1, "a")
	b, _ := join(t, s, 1, "b")
	camera, _ := join(t, s, 1, "cam")
	client := vp8OnlyAnswerer(t)
	h264 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: h264Fmtp("42e01f")}

	a.room.addTrack(newPublishedTrack(camera, "cam-video-1", webrtc.RTPCodecTypeVideo, h264))
	o := ra.next(t)
	if got := trackIDs(o.tracks); got != "cam-video-1" {
		t.Fatalf("first offer carries %q, want the camera (nothing is known of the client yet)", got)
	}
	if err := a.AnswerSubscribe(client.answer(t, o)); err != nil {
		t.Fatalf("an answer without H.264 was refused: %v", err)
	}
	o = ra.next(t)
	if got := trackIDs(o.tracks); got != "" {
		t.Fatalf("after an answer without H.264 the re-offer carries %q, want nothing", got)
	}
	if err := a.AnswerSubscribe(client.answer(t, o)); err != nil {
		t.Fatal(err)
	}
	a.room.addTrack(fakeTrack(t, b, webrtc.RTPCodecTypeVideo))
	o = ra.next(t)
	if got := trackIDs(o.tracks); got != "b-video" {
		t.Fatalf("VP8 video is offered as %q, want b-video", got)
	}
	if err := a.AnswerSubscribe(client.answer(t, o)); err != nil {
		t.Fatal(err)
	}
	ra.none(t)

	// Published again, the camera is not offered at all.
	a.room.addTrack(newPublishedTrack(camera, "cam-video-2", webrtc.RTPCodecTypeVideo, h264))
	ra.none(t)

	// A client that decodes H.264 gets it, bound to H.264.
	c, rc := join(t, s, 1, "c")
	o = rc.next(t)
	if got := trackIDs(o.tracks); got != "b-video,cam-video-1,cam-video-2" {
		t.Fatalf("an H.264-capable newcomer is offered %q", got)
	}
	if err := c.AnswerSubscribe(newAnswerer(t).answer(t, o)); err != nil {
		t.Fatal(err)
	}
	rc.none(t)
	for _, d := range c.downTracks() {
		d.mu.Lock()
		pt, unusable := d.pt, d.unusable
		d.mu.Unlock()
		if unusable || d.src.h264 && pt != 102 {
			t.Errorf("%s bound to payload type %d (unusable %v)", d.id, pt, unusable)
		}
	}
}

// TestBrowsersKeepVP8: a client offering VP8 first and H.264 too (as
// browsers do) is answered with VP8 first, so it keeps publishing VP8 with
// simulcast; and subscribers are offered VP8 first.
func TestBrowsersKeepVP8(t *testing.T) {
	s := newSFU(t)
	a, ra := join(t, s, 1, "a")
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{}) // default codecs: VP8, VP9, H.264, ...
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(o.SDP, "H264/90000") {
		t.Fatal("the client's offer has no H.264; the test proves nothing")
	}
	if err := a.Publish(o.SDP); err != nil {
		t.Fatal(err)
	}
	if got := firstVideoCodec(t, <-ra.answers); got != "VP8/90000" {
		t.Errorf("the publish answer prefers %s, want VP8", got)
	}
	b, _ := join(t, s, 1, "b")
	a.room.addTrack(fakeTrack(t, b, webrtc.RTPCodecTypeVideo))
	if got := firstVideoCodec(t, ra.next(t).sdp); got != "VP8/90000" {
		t.Errorf("the subscribe offer prefers %s, want VP8", got)
	}
}

// firstVideoCodec is the encoding of the first format of the first video
// section of an SDP.
func firstVideoCodec(t *testing.T, s string) string {
	t.Helper()
	var d sdp.SessionDescription
	if err := d.Unmarshal([]byte(s)); err != nil {
		t.Fatal(err)
	}
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "video" || len(m.MediaName.Formats) == 0 {
			continue
		}
		for _, a := range m.Attributes {
			if pt, enc, ok := strings.Cut(a.Value, " "); ok && a.Key == "rtpmap" && pt == m.MediaName.Formats[0] {
				return enc
			}
		}
	}
	t.Fatalf("no video format in\n%s", s)
	return ""
}
