package signaling_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
)

// levelAPI is a loopback client API that offers the audio level header
// extension (RFC 6464), as browsers do.
func levelAPI(t *testing.T) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// speaker is a publisher of Opus whose packets carry an audio level that
// the test changes.
type speaker struct {
	c     *sigclient.Client
	track *webrtc.TrackLocalStaticRTP
	level atomic.Uint32 // -dBov, 0 loudest, 127 silence
}

// speak sends 20 ms Opus packets at the current level until stop; the
// publish connection must have negotiated the extension.
func (s *speaker) speak(t *testing.T, stop <-chan struct{}) {
	t.Helper()
	var id uint8
	for _, tr := range s.c.Publisher().GetTransceivers() {
		for _, e := range tr.Sender().GetParameters().HeaderExtensions {
			if e.URI == sdp.AudioLevelURI {
				id = uint8(e.ID)
			}
		}
	}
	if id == 0 {
		t.Fatal("the server did not negotiate the audio level extension")
	}
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for n := uint32(0); ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			p := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 960}, Payload: sigclient.NumberedPayload(n, 80)}
			_ = p.Header.SetExtension(id, []byte{0x80 | byte(s.level.Load())})
			_ = s.track.WriteRTP(p)
		}
	}()
}

// awaitSpeaker waits for c to be told that id is the dominant speaker.
func awaitSpeaker(t *testing.T, c *sigclient.Client, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		m, err := c.Await(ctx, signaling.TypeSpeaker)
		if err != nil {
			t.Fatalf("%v, want %s as the speaker (client error: %v)", err, id, c.Err())
		}
		if m.Participant == id {
			return
		}
	}
}

// TestSpeakerFollowsTheLouderPublisher has two Pion publishers send audio
// whose level extension says one talks (-25 dBov) and the other is quiet
// (-70 dBov), then swaps them: both participants are told the talker is
// the dominant speaker each time, and a third who joins then is told at
// once.
func TestSpeakerFollowsTheLouderPublisher(t *testing.T) {
	s := newTestServer(t)
	opus := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	newSpeaker := func(id, name, role string, level uint32) *speaker {
		tr, err := webrtc.NewTrackLocalStaticRTP(opus, "audio", id)
		if err != nil {
			t.Fatal(err)
		}
		sp := &speaker{track: tr}
		sp.level.Store(level)
		sp.c = s.dialWith(t, id, name, role, appt, sigclient.Options{API: levelAPI(t), Tracks: []webrtc.TrackLocal{tr}})
		return sp
	}
	doc := newSpeaker("doc", "Dr Ada", signaling.RolePhysician, 25)
	await(t, doc.c, signaling.TypePublishAnswer)
	pat := newSpeaker("pat", "Pat Lee", signaling.RolePatient, 70)
	await(t, pat.c, signaling.TypeWelcome)
	if err := doc.c.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: "pat"}); err != nil {
		t.Fatal(err)
	}
	await(t, pat.c, signaling.TypePublishAnswer)
	stop := make(chan struct{})
	defer close(stop)
	doc.speak(t, stop)
	pat.speak(t, stop)

	start := time.Now()
	awaitSpeaker(t, pat.c, "doc")
	awaitSpeaker(t, doc.c, "doc")
	t.Logf("the physician was named the speaker after %v", time.Since(start).Round(10*time.Millisecond))

	doc.level.Store(70)
	pat.level.Store(25)
	start = time.Now()
	awaitSpeaker(t, doc.c, "pat")
	awaitSpeaker(t, pat.c, "pat")
	t.Logf("the patient took over after %v", time.Since(start).Round(10*time.Millisecond))

	// Someone joining now is told who speaks without waiting for a change.
	fam := s.dial(t, "fam", "Sam Lee", signaling.RolePatient, appt)
	await(t, fam, signaling.TypeWelcome)
	if err := doc.c.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: "fam"}); err != nil {
		t.Fatal(err)
	}
	await(t, fam, signaling.TypeAdmitted)
	awaitSpeaker(t, fam, "pat")
}
