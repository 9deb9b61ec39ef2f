package signaling_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
)

const appt = 42

// call is a physician and an admitted patient who publishes numbered VP8
// and Opus packets until the test ends.
type call struct {
	s            *testServer
	phys, pat    *sigclient.Client
	video, audio *webrtc.TrackLocalStaticRTP
}

var payloadSize = map[string]int{"video": 900, "audio": 80}

func startCall(t *testing.T) *call {
	t.Helper()
	return startCallOn(t, newTestServer(t))
}

// startCallOn is startCall on the server s.
func startCallOn(t *testing.T, s *testServer) *call {
	t.Helper()
	c := &call{s: s}
	var err error
	c.video, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "patient")
	if err != nil {
		t.Fatal(err)
	}
	c.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "patient")
	if err != nil {
		t.Fatal(err)
	}

	c.phys = s.dial(t, "u1", "Dr Ada", signaling.RolePhysician, appt)
	if w := await(t, c.phys, signaling.TypeWelcome); w.State != signaling.StateAdmitted || w.Role != signaling.RolePhysician || w.Participant != "u1" {
		t.Fatalf("physician welcome %+v, want admitted physician u1", w)
	}
	awaitLobby(t, c.phys) // empty

	c.pat = s.dial(t, "u2", "Pat Lee", signaling.RolePatient, appt, c.video, c.audio)
	if w := await(t, c.pat, signaling.TypeWelcome); w.State != signaling.StateWaiting {
		t.Fatalf("patient welcome state %q, want waiting", w.State)
	}
	awaitLobby(t, c.phys, "u2")
	if got := peerIDs(s.hub.Waiting(appt)); got != "u2" {
		t.Fatalf("Waiting = %q, want u2", got)
	}
	if got := peerIDs(s.hub.InCall(appt)); got != "u1" {
		t.Fatalf("InCall = %q, want u1", got)
	}

	if err := c.phys.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: "u2"}); err != nil {
		t.Fatal(err)
	}
	await(t, c.pat, signaling.TypeAdmitted)
	awaitLobby(t, c.phys) // empty again
	if got := peerIDs(s.hub.InCall(appt)); got != "u1,u2" {
		t.Fatalf("InCall = %q, want u1,u2", got)
	}

	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for n := uint32(0); ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			// Every frame is one packet; every 30th is a keyframe.
			_ = c.video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 3000, Marker: true}, Payload: sigclient.VP8Payload(n, 'f', n%30 == 0, payloadSize["video"])})
			_ = c.audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 240}, Payload: sigclient.NumberedPayload(n, payloadSize["audio"])})
		}
	}()
	return c
}

// received waits for the physician to be offered and to receive both of the
// patient's tracks, and returns them by kind.
func (c *call) received(t *testing.T) map[string]*webrtc.TrackRemote {
	t.Helper()
	for {
		m := await(t, c.phys, signaling.TypeSubscribeOffer)
		if len(m.Tracks) < 2 {
			continue // the second track comes in a re-offer
		}
		kinds := map[string]bool{}
		for _, tr := range m.Tracks {
			if tr.Participant != "u2" || tr.Name != "Pat Lee" {
				t.Fatalf("offered track %+v, want one of u2, Pat Lee", tr)
			}
			kinds[tr.Kind] = true
		}
		if len(m.Tracks) != 2 || !kinds["audio"] || !kinds["video"] {
			t.Fatalf("offered tracks %+v, want audio and video", m.Tracks)
		}
		break
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	got := map[string]*webrtc.TrackRemote{}
	for len(got) < 2 {
		tr, err := c.phys.NextTrack(ctx)
		if err != nil {
			t.Fatalf("physician received %d of 2 tracks: %v (client error: %v)", len(got), err, c.phys.Err())
		}
		got[tr.Kind().String()] = tr
	}
	return got
}

// readInOrder reads n packets of tr in a goroutine (ReadRTP has no
// deadline) and checks that they are consecutive and intact.
func readInOrder(t *testing.T, kind string, tr *webrtc.TrackRemote, n int) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		var prev uint32
		for i := range n {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				errc <- err
				return
			}
			if len(pkt.Payload) < 4 {
				errc <- errors.New("short payload")
				return
			}
			k := sigclient.PayloadNumber(pkt.Payload)
			if kind == "video" {
				var key bool
				if k, _, key, err = sigclient.ParseVP8Payload(pkt.Payload); err != nil {
					errc <- err
					return
				}
				if i == 0 && !key {
					errc <- errors.New("the first video packet forwarded is not a keyframe: " + itoa(k) + " seq " + strconv.Itoa(int(pkt.SequenceNumber)))
					return
				}
			} else if !bytes.Equal(pkt.Payload, sigclient.NumberedPayload(k, payloadSize[kind])) {
				errc <- errors.New("payload of packet " + itoa(k) + " altered")
				return
			}
			if i > 0 && k != prev+1 {
				errc <- errors.New("lost or reordered packets: counter " + itoa(k) + " after " + itoa(prev))
				return
			}
			prev = k
		}
		errc <- nil
	}()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
	case <-time.After(timeout):
		t.Fatalf("%s: %d packets not received in %v", kind, n, timeout)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// awaitKeyframeRequest waits for the publisher to be asked for a keyframe of
// its video track.
func awaitKeyframeRequest(t *testing.T, c *sigclient.Client, send func()) {
	t.Helper()
	deadline := time.After(timeout)
	retry := time.NewTicker(200 * time.Millisecond)
	defer retry.Stop()
	if send != nil {
		send()
	}
	for {
		select {
		case id := <-c.KeyframeRequests():
			if id == "video" {
				return
			}
		case <-retry.C:
			// The SFU forwards at most two requests a second per track;
			// ask again until one gets through.
			if send != nil {
				send()
			}
		case <-deadline:
			t.Fatal("the publisher got no keyframe request")
		}
	}
}

func TestCallForwardsMediaAndKeyframeRequests(t *testing.T) {
	c := startCall(t)
	got := c.received(t)
	if mt := got["video"].Codec().MimeType; mt != webrtc.MimeTypeVP8 {
		t.Fatalf("video codec %s, want VP8", mt)
	}
	if mt := got["audio"].Codec().MimeType; mt != webrtc.MimeTypeOpus {
		t.Fatalf("audio codec %s, want Opus", mt)
	}
	if sid := got["video"].StreamID(); sid != "u2" {
		t.Fatalf("video stream id %q, want the publisher's id u2", sid)
	}
	// The SFU asked the publisher for a keyframe when the physician
	// subscribed.
	awaitKeyframeRequest(t, c.pat, nil)
	readInOrder(t, "video", got["video"], 150)
	readInOrder(t, "audio", got["audio"], 150)

	// A subscriber's PLI reaches the publisher.
	for len(c.pat.KeyframeRequests()) > 0 {
		<-c.pat.KeyframeRequests()
	}
	ssrc := uint32(got["video"].SSRC())
	awaitKeyframeRequest(t, c.pat, func() {
		if err := c.phys.Subscriber().WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
			t.Error(err)
		}
	})
	for _, cl := range []*sigclient.Client{c.phys, c.pat} {
		if err := cl.Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLeaveWithdrawsTracks(t *testing.T) {
	c := startCall(t)
	got := c.received(t)
	readInOrder(t, "video", got["video"], 20)

	if err := c.pat.Send(signaling.Message{Type: signaling.TypeLeave}); err != nil {
		t.Fatal(err)
	}
	// peer-left comes first, then the re-offer without the patient's tracks.
	var m signaling.Message
	for m.Type != signaling.TypePeerLeft {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		var err error
		m, err = c.phys.Next(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if m.Type == signaling.TypeSubscribeOffer && len(m.Tracks) == 0 {
			t.Fatal("tracks withdrawn before peer-left")
		}
	}
	if m.Participant != "u2" {
		t.Fatalf("peer-left for %q, want u2", m.Participant)
	}
	if m := await(t, c.phys, signaling.TypeSubscribeOffer); len(m.Tracks) != 0 {
		t.Fatalf("after the patient left, the offer still carries %+v", m.Tracks)
	}
	select {
	case <-c.pat.Done():
	case <-time.After(timeout):
		t.Fatal("the server kept the patient's connection open after leave")
	}
	if err := c.s.awaitServed(t, "u2"); err != nil {
		t.Fatalf("Serve after leave: %v", err)
	}
	if got := peerIDs(c.s.hub.InCall(appt)); got != "u1" {
		t.Fatalf("InCall = %q, want u1", got)
	}
	if n := c.s.sfu.Rooms(); n != 1 {
		t.Fatalf("%d rooms open, want 1", n)
	}

	// The last to go closes the room.
	_ = c.phys.Close()
	if err := c.s.awaitServed(t, "u1"); err != nil {
		t.Fatalf("Serve after close: %v", err)
	}
	if n := c.s.sfu.Rooms(); n != 0 {
		t.Fatalf("%d rooms open after everyone left, want 0", n)
	}
	if got := peerIDs(c.s.hub.InCall(appt)); got != "" {
		t.Fatalf("InCall = %q after everyone left", got)
	}
}

func TestReconnectReplacesConnection(t *testing.T) {
	s := newTestServer(t)
	phys := s.dial(t, "u1", "Dr Ada", signaling.RolePhysician, appt)
	await(t, phys, signaling.TypeWelcome)
	pat := s.dial(t, "u2", "Pat Lee", signaling.RolePatient, appt)
	await(t, pat, signaling.TypeWelcome)
	awaitLobby(t, phys, "u2")
	if err := phys.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: "u2"}); err != nil {
		t.Fatal(err)
	}
	await(t, pat, signaling.TypeAdmitted)

	// A reload: the same patient connects again and stays admitted.
	again := s.dial(t, "u2", "Pat Lee", signaling.RolePatient, appt)
	if w := await(t, again, signaling.TypeWelcome); w.State != signaling.StateAdmitted {
		t.Fatalf("reconnected patient state %q, want admitted", w.State)
	}
	select {
	case <-pat.Done():
	case <-time.After(timeout):
		t.Fatal("the older connection was not closed")
	}
	if err := s.awaitServed(t, "u2"); !errors.Is(err, signaling.ErrReplaced) {
		t.Fatalf("older Serve returned %v, want ErrReplaced", err)
	}
	if got := peerIDs(s.hub.InCall(appt)); got != "u1,u2" {
		t.Fatalf("InCall = %q, want u1,u2", got)
	}
}

// TestReconnectFromAnotherBrowserWaits: the same participant connecting
// from another browser (a forwarded guest link, a join link someone else
// opened) while admitted is not admitted on the old one's say-so: it
// replaces the old connection but waits in the lobby, where the physician
// sees it, until admitted again.
func TestReconnectFromAnotherBrowserWaits(t *testing.T) {
	s := newTestServer(t)
	phys := s.dial(t, "u1", "Dr Ada", signaling.RolePhysician, appt)
	await(t, phys, signaling.TypeWelcome)
	pat := s.dial(t, "u2", "Pat Lee", signaling.RolePatient, appt)
	await(t, pat, signaling.TypeWelcome)
	awaitLobby(t, phys, "u2")
	if err := phys.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: "u2"}); err != nil {
		t.Fatal(err)
	}
	await(t, pat, signaling.TypeAdmitted)
	awaitLobby(t, phys)

	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	other, err := sigclient.Dial(ctx, s.url("u2", "Pat Lee", signaling.RolePatient, appt)+"&browser=elsewhere", sigclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if w := await(t, other, signaling.TypeWelcome); w.State != signaling.StateWaiting {
		t.Fatalf("the same participant from another browser: welcome state %q, want waiting", w.State)
	}
	select {
	case <-pat.Done():
	case <-time.After(timeout):
		t.Fatal("the older connection was not closed")
	}
	if m := await(t, phys, signaling.TypePeerLeft); m.Participant != "u2" {
		t.Fatalf("peer-left for %q, want u2", m.Participant)
	}
	awaitLobby(t, phys, "u2")
	if got := peerIDs(s.hub.InCall(appt)); got != "u1" {
		t.Fatalf("InCall = %q, want the physician alone until they admit again", got)
	}
	if err := phys.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: "u2"}); err != nil {
		t.Fatal(err)
	}
	await(t, other, signaling.TypeAdmitted)
}

func TestWaitingPatientLeavingUpdatesLobby(t *testing.T) {
	s := newTestServer(t)
	phys := s.dial(t, "u1", "Dr Ada", signaling.RolePhysician, appt)
	await(t, phys, signaling.TypeWelcome)
	pat := s.dial(t, "u2", "Pat Lee", signaling.RolePatient, appt)
	await(t, pat, signaling.TypeWelcome)
	awaitLobby(t, phys, "u2")
	_ = pat.Close()
	awaitLobby(t, phys)
	if err := s.awaitServed(t, "u2"); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if got := peerIDs(s.hub.Waiting(appt)); got != "" {
		t.Fatalf("Waiting = %q after the patient left", got)
	}
}

func TestBadMessagesGetErrors(t *testing.T) {
	s := newTestServer(t)
	phys := s.dial(t, "u1", "Dr Ada", signaling.RolePhysician, appt)
	await(t, phys, signaling.TypeWelcome)
	pat := s.dial(t, "u2", "Pat Lee", signaling.RolePatient, appt)
	await(t, pat, signaling.TypeWelcome)

	tests := []struct {
		name string
		from *sigclient.Client
		raw  string
		want string // in the error text
	}{
		{"truncated JSON", phys, `{"type":`, "not a JSON object"},
		{"JSON array", phys, `[1, 2]`, "not a JSON object"},
		{"no type", phys, `{"sdp": "x"}`, "no type"},
		{"unknown type", phys, `{"type": "dance"}`, `unknown message type "dance"`},
		{"bad publish SDP", phys, `{"type": "publish-offer", "sdp": "v=0 this is not SDP"}`, "publish-offer refused"},
		{"empty publish SDP", phys, `{"type": "publish-offer", "sdp": ""}`, "publish-offer refused"},
		{"answer without offer", phys, `{"type": "subscribe-answer", "sdp": "v=0"}`, "without an outstanding offer"},
		{"candidate target", phys, `{"type": "candidate", "target": "sideways", "candidate": {"candidate": "x"}}`, "candidate target"},
		{"admit nobody", phys, `{"type": "admit", "participant": "u999"}`, "not in the waiting room"},
		{"patient admits", pat, `{"type": "admit", "participant": "u2"}`, "only the physician"},
		{"publish while waiting", pat, `{"type": "publish-offer", "sdp": "v=0"}`, "before being admitted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.from.SendRaw([]byte(tt.raw)); err != nil {
				t.Fatal(err)
			}
			m := await(t, tt.from, signaling.TypeError)
			if !strings.Contains(m.Error, tt.want) {
				t.Fatalf("error %q, want it to mention %q", m.Error, tt.want)
			}
		})
	}
	// Both connections are still open and served.
	select {
	case r := <-s.served:
		t.Fatalf("Serve for %s returned %v after a bad message", r.peer, r.err)
	default:
	}
	if err := phys.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: "u2"}); err != nil {
		t.Fatal(err)
	}
	await(t, pat, signaling.TypeAdmitted)
}

func TestServeRefusesInvalidPeer(t *testing.T) {
	s := newTestServer(t)
	c := s.dial(t, "u3", "Someone", "visitor", appt)
	m := await(t, c, signaling.TypeError)
	if !strings.Contains(m.Error, "role") {
		t.Fatalf("error %q, want it to mention the role", m.Error)
	}
	if err := s.awaitServed(t, "u3"); err == nil {
		t.Fatal("Serve accepted a peer with an unknown role")
	}
}
