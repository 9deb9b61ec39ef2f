package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
)

// dialCall joins the visit's call as a Go participant publishing tracks.
func dialCall(t *testing.T, url string, h http.Header, tracks ...webrtc.TrackLocal) *sigclient.Client {
	t.Helper()
	api, err := sigclient.NewAPI(true)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sigclient.Dial(t.Context(), url, sigclient.Options{Header: h, Tracks: tracks, API: api})
	if err != nil {
		t.Fatalf("dial call: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// await returns c's next message of type typ, failing the test after 10s.
func await(t *testing.T, c *sigclient.Client, typ string) signaling.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	m, err := c.Await(ctx, typ)
	if err != nil {
		t.Fatalf("waiting for %s: %v", typ, err)
	}
	return m
}

func TestCallForwardsMediaThroughTheSFU(t *testing.T) {
	f := newFixture(t)
	url := f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID))
	doctor := dialCall(t, url, f.cookieHeader(f.signIn(t, "doc@example.org")))
	if w := await(t, doctor, signaling.TypeWelcome); w.State != signaling.StateAdmitted {
		t.Fatalf("physician welcome state %q, want admitted", w.State)
	}

	video, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "patient")
	audio, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "patient")
	patient := dialCall(t, url, f.cookieHeader(f.joinClient(t, f.visit)), video, audio)
	if w := await(t, patient, signaling.TypeWelcome); w.State != signaling.StateWaiting {
		t.Fatalf("patient welcome state %q, want waiting", w.State)
	}
	wantID := fmt.Sprintf("u%d", f.pat.ID)
	for {
		l := await(t, doctor, signaling.TypeLobby)
		if l.Waiting != nil && len(*l.Waiting) == 1 && (*l.Waiting)[0].Participant == wantID {
			break
		}
	}
	doctor.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: wantID})
	await(t, patient, signaling.TypeAdmitted)

	// The patient streams numbered packets until the test ends.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for n := uint32(0); ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			// Every frame is one packet; every 30th is a keyframe.
			_ = video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 3000, Marker: true}, Payload: sigclient.VP8Payload(n, 'f', n%30 == 0, 900)})
			_ = audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 240}, Payload: sigclient.NumberedPayload(n, 80)})
		}
	}()

	got := map[string]*webrtc.TrackRemote{}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	for len(got) < 2 {
		tr, err := doctor.NextTrack(ctx)
		if err != nil {
			t.Fatalf("physician received %d of 2 tracks: %v", len(got), err)
		}
		got[tr.Kind().String()] = tr
	}
	if mt := got["video"].Codec().MimeType; mt != webrtc.MimeTypeVP8 {
		t.Fatalf("video codec %s, want VP8", mt)
	}
	if mt := got["audio"].Codec().MimeType; mt != webrtc.MimeTypeOpus {
		t.Fatalf("audio codec %s, want Opus", mt)
	}
	for kind, size := range map[string]int{"video": 900, "audio": 80} {
		tr := got[kind]
		var prev uint32
		for i := 0; i < 150; i++ {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				t.Fatalf("%s read: %v", kind, err)
			}
			n := sigclient.PayloadNumber(pkt.Payload)
			if kind == "video" {
				var key bool
				if n, _, key, err = sigclient.ParseVP8Payload(pkt.Payload); err != nil {
					t.Fatal(err)
				}
				if i == 0 && !key {
					t.Fatalf("first video packet %d is not a keyframe", n)
				}
			} else if string(pkt.Payload) != string(sigclient.NumberedPayload(n, size)) {
				t.Fatalf("%s packet %d payload altered", kind, n)
			}
			if i > 0 && n != prev+1 {
				t.Fatalf("%s packet %d carries counter %d after %d: lost or reordered", kind, i, n, prev)
			}
			prev = n
		}
	}
	// The SFU asked the publisher for a keyframe when the physician subscribed.
	select {
	case <-patient.KeyframeRequests():
	case <-time.After(5 * time.Second):
		t.Fatal("the publisher got no keyframe request")
	}

	// When the patient leaves, the physician hears of it and is re-offered
	// a subscription without the patient's tracks.
	patient.Send(signaling.Message{Type: signaling.TypeLeave})
	if m := await(t, doctor, signaling.TypePeerLeft); m.Participant != wantID {
		t.Fatalf("peer-left for %q, want %q", m.Participant, wantID)
	}
	if m := await(t, doctor, signaling.TypeSubscribeOffer); len(m.Tracks) != 0 {
		t.Fatalf("after the patient left, the offer still carries %d tracks", len(m.Tracks))
	}
}

func TestCallBadMessagesGetErrors(t *testing.T) {
	f := newFixture(t)
	c := dialCall(t, f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.signIn(t, "doc@example.org")))
	await(t, c, signaling.TypeWelcome)
	_ = c.SendRaw([]byte(`{"type":`))
	if m := await(t, c, signaling.TypeError); m.Error == "" {
		t.Fatal("malformed JSON: empty error")
	}
	c.Send(signaling.Message{Type: signaling.TypePublishOffer, SDP: "v=0 this is not SDP"})
	if m := await(t, c, signaling.TypeError); m.Error == "" {
		t.Fatal("bad SDP: empty error")
	}
	c.Send(signaling.Message{Type: "dance"})
	m := await(t, c, signaling.TypeError)
	b, _ := json.Marshal(m)
	if len(m.Error) == 0 {
		t.Fatalf("unknown type: %s", b)
	}
	// The connection still answers: admitting someone not waiting is refused.
	c.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: "u999"})
	if m := await(t, c, signaling.TypeError); m.Error == "" {
		t.Fatal("admitting nobody: empty error")
	}
}
