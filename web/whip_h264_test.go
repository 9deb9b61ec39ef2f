package web

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/signaling"
)

// newCodecPC is a Pion peer connection on loopback that knows only the
// given video codecs (and Opus), as a WHIP tool or a limited viewer would,
// closed with the test.
func newCodecPC(t *testing.T, video ...webrtc.RTPCodecParameters) *webrtc.PeerConnection {
	t.Helper()
	m := &webrtc.MediaEngine{}
	for _, c := range video {
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
		PayloadType:        111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)).
		NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

var (
	h264Codec = webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}},
		PayloadType: 125,
	}
	vp8Codec = webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000,
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}},
		PayloadType: 96,
	}
)

// Test H.264 packets (RFC 6184) carry a packet counter: a keyframe is a
// STAP-A of SPS, PPS and an SEI holding the counter, then an IDR slice in
// three FU-A fragments; other frames are one non-IDR slice.
func h264Packets(n uint32, key bool) [][]byte {
	ctr := func(c uint32) []byte { return binary.BigEndian.AppendUint32(nil, c) }
	fill := make([]byte, 600)
	if !key {
		return [][]byte{append(append([]byte{0x41}, ctr(n)...), fill...)}
	}
	stap := []byte{0x78, 0x00, 0x04, 0x67, 0x42, 0xe0, 0x1f, 0x00, 0x02, 0x68, 0xce, 0x00, 0x05, 0x06}
	stap = append(stap, ctr(n)...)
	return [][]byte{
		stap,
		append(append([]byte{0x7c, 0x85}, ctr(n+1)...), fill...),
		append(append([]byte{0x7c, 0x05}, ctr(n+2)...), fill...),
		append(append([]byte{0x7c, 0x45}, ctr(n+3)...), fill...),
	}
}

// h264Counter reads a test packet's counter and whether it starts a
// keyframe.
func h264Counter(p []byte) (n uint32, key bool, err error) {
	switch {
	case len(p) >= 18 && p[0] == 0x78 && p[3]&0x1f == 7:
		return binary.BigEndian.Uint32(p[14:18]), true, nil
	case len(p) >= 6 && p[0] == 0x7c:
		return binary.BigEndian.Uint32(p[2:6]), false, nil
	case len(p) >= 5 && p[0] == 0x41:
		return binary.BigEndian.Uint32(p[1:5]), false, nil
	}
	return 0, false, fmt.Errorf("not a test H.264 packet: % x", p[:min(len(p), 8)])
}

// h264Camera is an exam camera publishing H.264 by WHIP, sending a
// keyframe only first and when asked (PLI), and counting the requests.
type h264Camera struct {
	*whipClient
	plis atomic.Int64
}

func (f *fixture) publishH264(t *testing.T, visit int64, token string) *h264Camera {
	t.Helper()
	pc := newCodecPC(t, h264Codec)
	video, err := webrtc.NewTrackLocalStaticRTP(h264Codec.RTPCodecCapability, "otoscope", "camera")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := pc.AddTransceiverFromTrack(video, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	audio, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "camera")
	if _, err := pc.AddTransceiverFromTrack(audio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	cam := &h264Camera{whipClient: f.negotiate(t, fmt.Sprintf("/whip/%d", visit), token, pc)}
	if !strings.Contains(strings.ToUpper(pc.RemoteDescription().SDP), "H264/90000") {
		t.Fatalf("the answer to an H.264-only offer does not take H.264:\n%s", pc.RemoteDescription().SDP)
	}
	wantKey := make(chan struct{}, 1)
	go func() {
		for {
			pkts, _, err := tr.Sender().ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				if _, ok := p.(*rtcp.PictureLossIndication); ok {
					cam.plis.Add(1)
					select {
					case wantKey <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var n, seq uint32
		for frame := uint32(0); ; frame++ {
			select {
			case <-t.Context().Done():
				return
			case <-tick.C:
			}
			if pc.ConnectionState() == webrtc.PeerConnectionStateClosed {
				return
			}
			key := frame == 0
			select {
			case <-wantKey:
				key = true
			default:
			}
			pkts := h264Packets(n, key)
			for i, p := range pkts {
				_ = video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(seq), Timestamp: frame * 3000, Marker: i == len(pkts)-1}, Payload: p})
				seq++
			}
			n += uint32(len(pkts))
		}
	}()
	return cam
}

// readH264 reads n packets of the H.264 camera from tr and checks that it
// arrives as H.264, starting at a keyframe, with no packet missing. It
// returns how long the first packet took.
func readH264(t *testing.T, who string, tr *webrtc.TrackRemote, n int) time.Duration {
	t.Helper()
	start := time.Now()
	// A request that never reaches the camera fails here, not by hanging.
	_ = tr.SetReadDeadline(start.Add(10 * time.Second))
	var first time.Duration
	if !strings.EqualFold(tr.Codec().MimeType, webrtc.MimeTypeH264) {
		t.Fatalf("%s: the camera arrives as %s, want H.264", who, tr.Codec().MimeType)
	}
	var prev uint32
	for i := range n {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			t.Fatalf("%s: read: %v", who, err)
		}
		got, key, err := h264Counter(pkt.Payload)
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		if i == 0 {
			first = time.Since(start)
			if !key {
				t.Fatalf("%s: the first packet %d does not start a keyframe", who, got)
			}
		}
		if i > 0 && got != prev+1 {
			t.Fatalf("%s: packet %d after %d: lost or reordered", who, got, prev)
		}
		prev = got
	}
	return first
}

// watchWHEP opens a WHEP viewer that receives video in the given codecs and
// returns its first track.
func (f *fixture) watchWHEP(t *testing.T, ctx context.Context, token string, codecs ...webrtc.RTPCodecParameters) (*whipClient, *webrtc.TrackRemote) {
	t.Helper()
	viewer := newCodecPC(t, codecs...)
	if _, err := viewer.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	tracks := make(chan *webrtc.TrackRemote, 1)
	viewer.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { tracks <- tr })
	c := f.negotiate(t, fmt.Sprintf("/whep/%d", f.visit.ID), token, viewer)
	select {
	case tr := <-tracks:
		return c, tr
	case <-ctx.Done():
		t.Fatal("the WHEP viewer received no track")
	}
	return nil, nil
}

// TestWHIPPublishesH264: a WHIP tool offering only H.264 and Opus (as OBS,
// GStreamer and ffmpeg do) is accepted; its video reaches the physician in
// the call and WHEP viewers as H.264, each starting at a keyframe with no
// packet lost. The camera sends keyframes only when asked, so a late
// viewer's picture starting within a second shows its request reached the
// camera; the camera is asked at most about twice a second however many
// subscribers ask. A viewer that cannot receive H.264 is told so (406).
func TestWHIPPublishesH264(t *testing.T) {
	f := newFixture(t)
	began := time.Now()
	doctor := dialCall(t, f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.signIn(t, "doc@example.org")))
	if w := await(t, doctor, signaling.TypeWelcome); w.State != signaling.StateAdmitted {
		t.Fatalf("physician welcome state %q", w.State)
	}
	docToken := f.apiToken(t, f.doc.ID)
	camera := f.publishH264(t, f.visit.ID, docToken)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for found := false; !found; {
		m := await(t, doctor, signaling.TypeSubscribeOffer)
		for _, tr := range m.Tracks {
			found = found || tr.Name == signaling.ExamCameraName && tr.Kind == "video"
		}
	}
	for {
		tr, err := doctor.NextTrack(ctx)
		if err != nil {
			t.Fatalf("the physician received no camera video: %v", err)
		}
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			readH264(t, "physician", tr, 100)
			break
		}
	}

	viewToken := f.apiToken(t, f.doc.ID) // a patient watches only once admitted
	_, tr := f.watchWHEP(t, ctx, viewToken, h264Codec)
	readH264(t, "WHEP viewer", tr, 100)

	// The camera sends no keyframe unless asked: a late viewer starts at
	// once only if its request went through.
	_, late := f.watchWHEP(t, ctx, viewToken, vp8Codec, h264Codec)
	if d := readH264(t, "late WHEP viewer", late, 50); d > time.Second {
		t.Errorf("the late viewer's first keyframe took %v, want under a second", d)
	}
	elapsed := time.Since(began)
	if n, most := camera.plis.Load(), int64(elapsed/(500*time.Millisecond))+1; n > most {
		t.Errorf("the camera was asked for %d keyframes in %v, want at most %d (two a second)", n, elapsed, most)
	}

	// A viewer that knows only VP8 cannot show the camera.
	resp, body := f.streamRequest(t, http.MethodPost, fmt.Sprintf("/whep/%d", f.visit.ID), viewToken, "application/sdp", recvOffer(t, vp8Codec))
	if resp.StatusCode != http.StatusNotAcceptable || !strings.Contains(body, "H.264") {
		t.Errorf("a VP8-only viewer of an H.264 camera: %d %q, want 406 naming H.264", resp.StatusCode, body)
	}
}

// recvOffer is a receive-only video offer in the given codecs.
func recvOffer(t *testing.T, codecs ...webrtc.RTPCodecParameters) string {
	t.Helper()
	pc := newCodecPC(t, codecs...)
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return o.SDP
}
