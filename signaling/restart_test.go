package signaling_test

import (
	"context"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
)

// recoveryBound is the product's promise: media flows again within 3 s of
// the network's return.
const recoveryBound = 3 * time.Second

// Two addresses of the moving patient: its Wi-Fi and its mobile network.
const (
	wifiIP   = "192.0.2.20"
	mobileIP = "192.0.2.21"
)

var ufragLine = regexp.MustCompile(`a=ice-ufrag:(\S+)`)

func ufrag(sdp string) string {
	if m := ufragLine.FindStringSubmatch(sdp); m != nil {
		return m[1]
	}
	return ""
}

// numbered is an Opus track whose packets carry a counter; it remembers
// when each left.
type numbered struct {
	track  *webrtc.TrackLocalStaticRTP
	mu     sync.Mutex
	sentAt map[uint32]time.Time
}

func (s *numbered) run(stop <-chan struct{}) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for n := uint32(0); ; n++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		s.sentAt[n] = time.Now()
		s.mu.Unlock()
		_ = s.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 960}, Payload: sigclient.NumberedPayload(n, 100)})
	}
}

func (s *numbered) sent(n uint32) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sentAt[n]
}

// firstSentSince returns when the first packet of got sent at or after t0
// arrived, or the zero time.
func firstSentSince(got []arrival, sent func(uint32) time.Time, t0 time.Time) time.Time {
	for _, a := range got {
		if s := sent(a.n); !s.IsZero() && !s.Before(t0) {
			return a.at
		}
	}
	return time.Time{}
}

func TestICERestartAfterAddressChange(t *testing.T) {
	n := newTestNet(t, 0, 0)
	st := newStream(t, "f")
	c := newVCall(t, n, st.options("f"))
	stop := make(chan struct{})
	defer close(stop)
	st.run(t, c.pub, map[byte]layerRate{'f': {pps: 30, size: 300}}, stop)

	// The patient has Wi-Fi and a mobile network that does not work yet.
	n.setLoss(mobileIP, 1, true)
	vn, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{wifiIP, mobileIP}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.router.AddNet(vn); err != nil {
		t.Fatal(err)
	}
	mic, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "pat")
	if err != nil {
		t.Fatal(err)
	}
	voice := &numbered{track: mic, sentAt: map[uint32]time.Time{}}
	go voice.run(stop)
	pat := c.s.dialWith(t, "pat", "Pat Lee", signaling.RolePatient, appt, sigclient.Options{API: clientAPI(t, vn), Tracks: []webrtc.TrackLocal{mic}})
	await(t, pat, signaling.TypeWelcome)
	if err := c.pub.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: "pat"}); err != nil {
		t.Fatal(err)
	}
	await(t, pat, signaling.TypeAdmitted)
	pubUfrag := ufrag(await(t, pat, signaling.TypePublishAnswer).SDP)
	subUfrag := ufrag(await(t, pat, signaling.TypeSubscribeOffer).SDP)

	// Media flows both ways: the physician's video to the patient, the
	// patient's voice to the physician.
	seen := record(t, pat)
	seen.awaitPackets(t, "video", 10)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var heard *recorder
	for heard == nil {
		tr, err := c.pub.NextTrack(ctx)
		if err != nil {
			t.Fatalf("the physician got no track of the patient: %v", err)
		}
		if tr.StreamID() == "pat" {
			heard = &recorder{got: map[string][]arrival{}, stop: make(chan struct{})}
			go heard.read(tr)
		}
	}
	heard.awaitPackets(t, "audio", 10)

	// The patient walks out of Wi-Fi range onto the mobile network: the
	// Wi-Fi address is gone, and the signaling socket with it.
	n.setLoss(wifiIP, 1, true)
	pat.Drop()
	t0 := time.Now()
	n.setLoss(mobileIP, 0, true)
	// The browser hears of the change (online, navigator.connection):
	// it resumes the signaling and restarts ICE.
	if err := pat.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	await(t, pat, signaling.TypeResumed)
	if err := pat.RestartICE(); err != nil {
		t.Fatal(err)
	}
	// Both connections renegotiate with new ICE credentials, in either
	// order.
	for answered, offered := false, false; !answered || !offered; {
		m, err := pat.Next(ctx)
		if err != nil {
			t.Fatalf("awaiting the restart's offer and answer: %v (client error %v)", err, pat.Err())
		}
		switch m.Type {
		case signaling.TypePublishAnswer:
			if ufrag(m.SDP) == pubUfrag {
				t.Fatal("the publish answer kept its ICE credentials: no restart")
			}
			answered = true
		case signaling.TypeSubscribeOffer:
			if ufrag(m.SDP) == subUfrag {
				t.Fatal("the subscribe offer kept its ICE credentials: no restart")
			}
			offered = true
		}
	}

	// Media resumes both ways; each recovery is measured from the
	// network's return to the arrival of the first packet sent after it.
	var down, up time.Time
	for deadline := time.Now().Add(timeout); down.IsZero() || up.IsZero(); {
		if time.Now().After(deadline) {
			t.Fatalf("media did not resume: to the patient %v, from the patient %v", !down.IsZero(), !up.IsZero())
		}
		time.Sleep(20 * time.Millisecond) // polling the recorders
		if down.IsZero() {
			down = firstSentSince(seen.snapshot("video"), st.sentTime, t0)
		}
		if up.IsZero() {
			up = firstSentSince(heard.snapshot("audio"), voice.sent, t0)
		}
	}
	t.Logf("media back %v (to the patient) and %v (from the patient) after the network returned", down.Sub(t0).Round(time.Millisecond), up.Sub(t0).Round(time.Millisecond))
	// The race detector slows Pion several times over (seconds, on a busy
	// machine): the bound is the product's, so it is checked on a normal
	// build, which CI runs for this test too (.ci/run).
	for what, d := range map[string]time.Duration{"to the patient": down.Sub(t0), "from the patient": up.Sub(t0)} {
		if d > recoveryBound && !raceEnabled {
			t.Errorf("media %s back after %v, want within %v", what, d, recoveryBound)
		}
	}
	if got := peerIDs(c.s.hub.InCall(appt)); got != "doc,pat" {
		t.Fatalf("InCall = %q, want doc,pat", got)
	}
}
