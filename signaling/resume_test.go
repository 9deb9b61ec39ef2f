package signaling_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
)

// probe sends c a message the server refuses and returns every message c
// received before the refusal: the server handles a connection's messages
// in order, so whatever it sent c before has arrived by then.
func probe(t *testing.T, c *sigclient.Client) []signaling.Message {
	t.Helper()
	if err := c.Send(signaling.Message{Type: "probe"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []signaling.Message
	for {
		m, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("probe: %v (client error: %v)", err, c.Err())
		}
		if m.Type == signaling.TypeError && m.Error == `unknown message type "probe"` {
			return got
		}
		got = append(got, m)
	}
}

func types(ms []signaling.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Type)
	}
	return out
}

func TestResumeKeepsTheParticipant(t *testing.T) {
	c := startCall(t)
	got := c.received(t)
	readInOrder(t, "video", got["video"], 20)
	probe(t, c.pat) // drains the patient's messages so far
	token := c.phys.Token()
	if len(token) < 40 {
		t.Fatalf("resume token %q: want 32 random bytes", token)
	}

	// The physician's network drops; meanwhile a patient enters the
	// waiting room, which the physician must hear of.
	c.phys.Drop()
	u3 := c.s.dial(t, "u3", "Sam Roe", signaling.RolePatient, appt)
	await(t, u3, signaling.TypeWelcome)
	probe(t, u3) // u3's Serve has told the physicians by now

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.phys.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	r := await(t, c.phys, signaling.TypeResumed)
	if r.Resume == "" || r.Resume == token {
		t.Fatal("resumed carries no fresh token")
	}
	// The missed lobby comes next, once.
	m, err := c.phys.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != signaling.TypeLobby || m.Waiting == nil || len(*m.Waiting) != 1 || (*m.Waiting)[0].Participant != "u3" {
		t.Fatalf("after resumed got %+v, want the lobby listing u3", m)
	}
	if more := probe(t, c.phys); slices.Contains(types(more), signaling.TypeLobby) || slices.Contains(types(more), signaling.TypeWelcome) {
		t.Fatalf("after the missed lobby the physician got %v", types(more))
	}
	if n := c.phys.Duplicates(); n != 0 {
		t.Fatalf("%d messages delivered twice", n)
	}
	if err := c.phys.Err(); err != nil {
		t.Fatal(err) // a gap in the numbering
	}

	// The same participant: the same peer connection keeps receiving the
	// same tracks, and the patient saw nobody leave or come.
	readInOrder(t, "audio", got["audio"], 20)
	if got := peerIDs(c.s.hub.InCall(appt)); got != "u1,u2" {
		t.Fatalf("InCall = %q, want u1,u2", got)
	}
	for _, m := range probe(t, c.pat) {
		switch m.Type {
		case signaling.TypePeerLeft, signaling.TypeSubscribeOffer:
			t.Fatalf("the patient got %s %+v: the physician's resume showed", m.Type, m)
		}
	}
	// The session still works both ways.
	if err := c.phys.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: "u3"}); err != nil {
		t.Fatal(err)
	}
	await(t, u3, signaling.TypeAdmitted)
}

func TestResumeMissedOfferIsAnswered(t *testing.T) {
	c := startCall(t)
	c.received(t)
	// The patient is offered a newcomer's tracks while disconnected: the
	// replayed offer is answered after the resume and media flows.
	c.pat.Drop()
	v, a := newTracks(t, "u3")
	u3 := c.s.dial(t, "u3", "Sam Roe", signaling.RolePatient, appt, v, a)
	await(t, u3, signaling.TypeWelcome)
	awaitLobby(t, c.phys, "u3")
	if err := c.phys.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: "u3"}); err != nil {
		t.Fatal(err)
	}
	await(t, u3, signaling.TypeAdmitted)
	stop := sendNumbered(v, a)
	defer stop()
	// The physician is offered u3's tracks; the patient's offer goes out
	// at the same time, to nobody.
	for {
		m := await(t, c.phys, signaling.TypeSubscribeOffer)
		if len(m.Tracks) == 4 {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.pat.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	await(t, c.pat, signaling.TypeResumed)
	for {
		tr, err := c.pat.NextTrack(ctx)
		if err != nil {
			t.Fatalf("no track of u3 after the resume: %v (client error %v)", err, c.pat.Err())
		}
		if tr.StreamID() == "u3" && tr.Kind().String() == "audio" {
			readInOrder(t, "audio", tr, 20)
			break
		}
	}
	if n := c.pat.Duplicates(); n != 0 {
		t.Fatalf("%d messages delivered twice", n)
	}
	if err := c.pat.Err(); err != nil {
		t.Fatal(err)
	}
}

// newTracks returns a VP8 and an Opus track of stream.
func newTracks(t *testing.T, stream string) (video, audio *webrtc.TrackLocalStaticRTP) {
	t.Helper()
	var err error
	if video, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", stream); err != nil {
		t.Fatal(err)
	}
	if audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", stream); err != nil {
		t.Fatal(err)
	}
	return video, audio
}

// sendNumbered sends numbered packets on video and audio, as startCall's
// patient does, until the returned function is called.
func sendNumbered(video, audio *webrtc.TrackLocalStaticRTP) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for n := uint32(0); ; n++ {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			_ = video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 3000, Marker: true}, Payload: sigclient.VP8Payload(n, 'f', n%30 == 0, payloadSize["video"])})
			_ = audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 240}, Payload: sigclient.NumberedPayload(n, payloadSize["audio"])})
		}
	}()
	return func() { close(quit); <-done }
}

func TestResumeRefusals(t *testing.T) {
	s := newTestServer(t)
	c := startCallOn(t, s)
	c.received(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stolen := c.pat.Token()

	t.Run("another participant's token", func(t *testing.T) {
		thief := s.dialWith(t, "u3", "Sam Roe", signaling.RolePatient, appt, sigclient.Options{})
		_ = thief // the honest connection of u3, so u3 has a session
		await(t, thief, signaling.TypeWelcome)
		evil, err := sigclient.Dial(ctx, s.url("u3", "Sam Roe", signaling.RolePatient, appt)+"&last=0&resume="+stolen, sigclient.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = evil.Close() })
		f := await(t, evil, signaling.TypeResumeFailed)
		if f.Error == "" {
			t.Fatal("resume-failed without a reason")
		}
		if w := await(t, evil, signaling.TypeWelcome); w.Participant != "u3" || w.State != signaling.StateWaiting {
			t.Fatalf("after resume-failed, welcome %+v, want u3 waiting", w)
		}
		if got := peerIDs(s.hub.InCall(appt)); got != "u1,u2" {
			t.Fatalf("InCall = %q, want u1,u2", got)
		}
	})

	t.Run("a token used once already", func(t *testing.T) {
		c.pat.Drop()
		if err := c.pat.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		await(t, c.pat, signaling.TypeResumed)
		c.pat.Drop()
		if err := c.pat.ResumeWith(ctx, stolen); err != nil {
			t.Fatal(err)
		}
		await(t, c.pat, signaling.TypeResumeFailed)
		// Joined anew: the physician sees the old participant leave.
		await(t, c.phys, signaling.TypePeerLeft)
		if w := await(t, c.pat, signaling.TypeWelcome); w.State != signaling.StateAdmitted {
			t.Fatalf("rejoined with state %q, want admitted", w.State)
		}
	})

	t.Run("expired", func(t *testing.T) {
		s.hub.SetResumeGrace(time.Millisecond)
		token := c.pat.Token()
		c.pat.Drop()
		// Removed when the grace period ends.
		if m := await(t, c.phys, signaling.TypePeerLeft); m.Participant != "u2" {
			t.Fatalf("peer-left for %q, want u2", m.Participant)
		}
		if err := c.pat.ResumeWith(ctx, token); err != nil {
			t.Fatal(err)
		}
		await(t, c.pat, signaling.TypeResumeFailed)
		if w := await(t, c.pat, signaling.TypeWelcome); w.State != signaling.StateWaiting {
			t.Fatalf("rejoined with state %q, want waiting", w.State)
		}
	})
}
