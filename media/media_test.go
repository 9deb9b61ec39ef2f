package media

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/turnserver"
)

// offer is one subscribe offer as the Signaler saw it.
type offer struct {
	sdp    string
	tracks []TrackInfo
}

// recorder is a Signaler that keeps what it is asked to send.
type recorder struct {
	offers     chan offer
	answers    chan string
	candidates chan webrtc.ICECandidateInit
}

func newRecorder() *recorder {
	return &recorder{offers: make(chan offer, 16), answers: make(chan string, 16), candidates: make(chan webrtc.ICECandidateInit, 64)}
}

func (r *recorder) PublishAnswer(sdp string) { r.answers <- sdp }

func (r *recorder) SubscribeOffer(sdp string, tracks []TrackInfo) {
	r.offers <- offer{sdp, tracks}
}

func (r *recorder) Candidate(_ string, c webrtc.ICECandidateInit) {
	select {
	case r.candidates <- c:
	default:
	}
}

// next returns the offer sent so far; negotiation is synchronous, so it is
// already there or was never sent.
func (r *recorder) next(t *testing.T) offer {
	t.Helper()
	select {
	case o := <-r.offers:
		return o
	default:
		t.Fatal("no subscribe offer was sent")
		return offer{}
	}
}

func (r *recorder) none(t *testing.T) {
	t.Helper()
	select {
	case o := <-r.offers:
		t.Fatalf("unexpected subscribe offer with %d tracks", len(o.tracks))
	default:
	}
}

func newSFU(t *testing.T) *SFU {
	t.Helper()
	s, err := New(Config{AllowLoopback: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func join(t *testing.T, s *SFU, appointment int64, id string) (*Participant, *recorder) {
	t.Helper()
	r := newRecorder()
	p, err := s.Join(appointment, id, "Name of "+id, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, r
}

// fakeTrack is a track published by p without a publish connection.
func fakeTrack(t *testing.T, p *Participant, kind webrtc.RTPCodecType) *publishedTrack {
	t.Helper()
	c := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	if kind == webrtc.RTPCodecTypeVideo {
		c = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	}
	return newPublishedTrack(p, p.id+"-"+kind.String(), kind, c)
}

// answerer is the client side of a subscribe connection.
type answerer struct{ pc *webrtc.PeerConnection }

func newAnswerer(t *testing.T) *answerer {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return &answerer{pc}
}

func (a *answerer) answer(t *testing.T, o offer) string {
	t.Helper()
	if err := a.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: o.sdp}); err != nil {
		t.Fatal(err)
	}
	ans, err := a.pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.pc.SetLocalDescription(ans); err != nil {
		t.Fatal(err)
	}
	return a.pc.LocalDescription().SDP
}

func trackIDs(ts []TrackInfo) string {
	var ids []string
	for _, t := range ts {
		ids = append(ids, t.ID)
	}
	return strings.Join(ids, ",")
}

func TestRenegotiationWaitsForTheAnswer(t *testing.T) {
	s := newSFU(t)
	a, ra := join(t, s, 1, "a")
	b, _ := join(t, s, 1, "b")
	client := newAnswerer(t)

	video, audio := fakeTrack(t, b, webrtc.RTPCodecTypeVideo), fakeTrack(t, b, webrtc.RTPCodecTypeAudio)
	if !a.room.addTrack(video) {
		t.Fatal("addTrack refused a present participant's track")
	}
	o := ra.next(t)
	if got := trackIDs(o.tracks); got != "b-video" {
		t.Fatalf("first offer carries %q, want b-video", got)
	}
	if o.tracks[0] != (TrackInfo{ID: "b-video", Kind: "video", Participant: "b", Name: "Name of b"}) {
		t.Fatalf("track info %+v", o.tracks[0])
	}
	// A change while the offer is outstanding waits for its answer.
	a.room.addTrack(audio)
	ra.none(t)
	if err := a.AnswerSubscribe(client.answer(t, o)); err != nil {
		t.Fatal(err)
	}
	o = ra.next(t)
	if got := trackIDs(o.tracks); got != "b-audio,b-video" {
		t.Fatalf("re-offer carries %q, want b-audio,b-video", got)
	}
	if strings.Count(o.sdp, "m=") != 2 {
		t.Fatalf("re-offer has %d media sections, want 2", strings.Count(o.sdp, "m="))
	}
	if err := a.AnswerSubscribe(client.answer(t, o)); err != nil {
		t.Fatal(err)
	}
	ra.none(t)

	// b leaving withdraws both tracks in one offer.
	b.Close()
	o = ra.next(t)
	if len(o.tracks) != 0 {
		t.Fatalf("after b left, the offer carries %q", trackIDs(o.tracks))
	}
	ra.none(t)
	if err := a.AnswerSubscribe(client.answer(t, o)); err != nil {
		t.Fatal(err)
	}
	if s.Rooms() != 1 {
		t.Fatalf("%d rooms, want 1", s.Rooms())
	}
	a.Close()
	if s.Rooms() != 0 {
		t.Fatalf("%d rooms after everyone left, want 0", s.Rooms())
	}
	if err := a.AnswerSubscribe("v=0"); !errors.Is(err, ErrClosed) {
		t.Fatalf("answer after Close: %v, want ErrClosed", err)
	}
}

func TestJoinerIsOfferedExistingTracks(t *testing.T) {
	s := newSFU(t)
	b, _ := join(t, s, 1, "b")
	b.room.addTrack(fakeTrack(t, b, webrtc.RTPCodecTypeVideo))
	_, ra := join(t, s, 1, "a")
	if got := trackIDs(ra.next(t).tracks); got != "b-video" {
		t.Fatalf("newcomer offered %q, want b-video", got)
	}
	// Rooms are per appointment.
	_, rc := join(t, s, 2, "c")
	rc.none(t)
}

func TestBadAnswerKeepsTheOfferOutstanding(t *testing.T) {
	s := newSFU(t)
	a, ra := join(t, s, 1, "a")
	b, _ := join(t, s, 1, "b")
	if err := a.AnswerSubscribe("v=0"); err == nil {
		t.Fatal("answer without an offer accepted")
	}
	a.room.addTrack(fakeTrack(t, b, webrtc.RTPCodecTypeVideo))
	o := ra.next(t)
	if err := a.AnswerSubscribe("this is not SDP"); err == nil {
		t.Fatal("malformed answer accepted")
	}
	if err := a.AnswerSubscribe(newAnswerer(t).answer(t, o)); err != nil {
		t.Fatalf("good answer after a bad one: %v", err)
	}
}

func TestJoinRefusesDuplicates(t *testing.T) {
	s := newSFU(t)
	join(t, s, 1, "a")
	if _, err := s.Join(1, "a", "again", newRecorder()); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second join: %v, want ErrDuplicate", err)
	}
}

func TestPublishRefusesBadOffers(t *testing.T) {
	s := newSFU(t)
	a, ra := join(t, s, 1, "a")
	for _, sdp := range []string{"", "v=0 this is not SDP"} {
		if err := a.Publish(sdp); err == nil || !strings.Contains(err.Error(), "publish offer") {
			t.Fatalf("Publish(%q) = %v, want a publish offer error", sdp, err)
		}
	}
	// A real offer is answered through the Signaler.
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	o, err := pc.CreateOffer(nil)
	if err == nil {
		err = pc.SetLocalDescription(o)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(o.SDP); err != nil {
		t.Fatal(err)
	}
	select {
	case ans := <-ra.answers:
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans}); err != nil {
			t.Fatalf("server answer: %v", err)
		}
	default:
		t.Fatal("no publish answer sent")
	}
}

func TestCandidates(t *testing.T) {
	s := newSFU(t)
	a, _ := join(t, s, 1, "a")
	c := webrtc.ICECandidateInit{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"}
	if err := a.AddCandidate("sideways", c); err == nil {
		t.Fatal("unknown target accepted")
	}
	// Held until the descriptions arrive, within a bound.
	for i := range maxPendingCandidates {
		if err := a.AddCandidate(TargetPublish, c); err != nil {
			t.Fatalf("candidate %d: %v", i, err)
		}
	}
	if err := a.AddCandidate(TargetPublish, c); err == nil {
		t.Fatal("unbounded candidates held")
	}
	if err := a.AddCandidate(TargetSubscribe, c); err != nil {
		t.Fatal(err)
	}
}

func TestKeyframeThrottle(t *testing.T) {
	var th throttle
	t0 := time.Now()
	steps := []struct {
		at   time.Duration
		want bool
	}{{0, true}, {100 * time.Millisecond, false}, {499 * time.Millisecond, false}, {500 * time.Millisecond, true}, {600 * time.Millisecond, false}, {time.Second, true}}
	for _, s := range steps {
		if got := th.allow(t0.Add(s.at)); got != s.want {
			t.Fatalf("allow at %v = %v, want %v", s.at, got, s.want)
		}
	}
}

func TestNewRefusesBadNetworkSettings(t *testing.T) {
	for name, cfg := range map[string]Config{
		"udp port out of range": {UDPAddr: ":70000"},
		"udp address no port":   {UDPAddr: "127.0.0.1"},
		"udp wildcard host":     {UDPAddr: "0.0.0.0:0"},
		"tcp port out of range": {TCPAddr: ":70000"},
		"nat address":           {NAT1To1IPs: []string{"not-an-ip"}},
		"turn without secret":   {TURN: TURNConfig{UDPAddr: "127.0.0.1:0"}},
	} {
		if s, err := New(cfg, nil); err == nil {
			s.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	s, err := New(Config{NAT1To1IPs: []string{"203.0.113.7"}, UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestSFUUsesTheConfiguredNetwork: with Config.Net set to a virtual
// network, the SFU's candidates are that network's addresses.
func TestSFUUsesTheConfiguredNetwork(t *testing.T) {
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "1.2.3.0/24", LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	nw, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"1.2.3.4"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := wan.AddNet(nw); err != nil {
		t.Fatal(err)
	}
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wan.Stop() })
	s, err := New(Config{Net: nw}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, ra := join(t, s, 1, "a")
	pc := newAnswerer(t).pc
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	o, err := pc.CreateOffer(nil)
	if err == nil {
		err = pc.SetLocalDescription(o)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(o.SDP); err != nil {
		t.Fatal(err)
	}
	<-ra.answers
	deadline := time.After(5 * time.Second)
	for {
		select {
		case c := <-ra.candidates:
			if strings.Contains(c.Candidate, " 1.2.3.4 ") {
				return
			}
			t.Fatalf("candidate %q is not on the virtual network", c.Candidate)
		case <-deadline:
			t.Fatal("no candidate gathered")
		}
	}
}

// TestNAT1To1AppliesToUDPAndTCP: behind a 1:1 NAT, every host candidate,
// on the UDP and the TCP port alike, carries the public address.
func TestNAT1To1AppliesToUDPAndTCP(t *testing.T) {
	s, err := New(Config{AllowLoopback: true, UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", NAT1To1IPs: []string{"203.0.113.7"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	a, ra := join(t, s, 1, "a")
	pc := newAnswerer(t).pc
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	o, err := pc.CreateOffer(nil)
	if err == nil {
		err = pc.SetLocalDescription(o)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(o.SDP); err != nil {
		t.Fatal(err)
	}
	var cands []string
	for _, line := range strings.Split(<-ra.answers, "\n") {
		if c, ok := strings.CutPrefix(strings.TrimSpace(line), "a="); ok && strings.HasPrefix(c, "candidate:") {
			cands = append(cands, c)
		}
	}
	seen := map[string]bool{}
	deadline := time.After(5 * time.Second)
	for {
		for _, c := range cands {
			f := strings.Fields(c)
			if len(f) < 8 {
				t.Fatalf("candidate %q", c)
			}
			if f[4] != "203.0.113.7" {
				t.Fatalf("candidate %q does not carry the public address", c)
			}
			seen[strings.ToLower(f[2])] = true
			if strings.ToLower(f[2]) == "tcp" && !strings.Contains(c, "tcptype passive") {
				t.Fatalf("TCP candidate %q is not passive", c)
			}
		}
		cands = cands[:0]
		if seen["udp"] && seen["tcp"] {
			return
		}
		select {
		case c := <-ra.candidates:
			cands = append(cands, c.Candidate)
		case <-deadline:
			t.Fatalf("candidates seen: %v; want UDP and TCP", seen)
		}
	}
}

// TestICEServersMintPerParticipant: configured servers pass through, TURN
// servers without credentials and the embedded relay get credentials
// minted for the participant, and the relay is named as configured or by
// the host the client used.
func TestICEServersMintPerParticipant(t *testing.T) {
	secret := []byte("a shared secret of some length")
	s, err := New(Config{AllowLoopback: true, UDPAddr: "127.0.0.1:0", TURNSecret: secret,
		TURN: TURNConfig{UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0"},
		ICEServers: []webrtc.ICEServer{
			{URLs: []string{"stun:stun.example.org:3478"}},
			{URLs: []string{"turn:turn.example.org:3478"}},
			{URLs: []string{"turns:fixed.example.org:5349"}, Username: "bob", Credential: "pw"},
		}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	now := time.Now()
	creds := turnserver.Credentials{Secret: secret}
	udp, tcp := s.TURNAddrs()
	for _, tc := range []struct {
		host, want string
	}{
		{"clinic.example:8443", "clinic.example"},
		{"[2001:db8::1]:443", "[2001:db8::1]"},
		{"localhost", "localhost"},
	} {
		got := s.ICEServers("v42-u7", tc.host)
		if len(got) != 4 {
			t.Fatalf("%d servers, want 4: %+v", len(got), got)
		}
		if got[0].Username != "" || got[0].URLs[0] != "stun:stun.example.org:3478" {
			t.Errorf("STUN server changed: %+v", got[0])
		}
		if got[2].Username != "bob" || got[2].Credential != "pw" {
			t.Errorf("fixed credentials changed: %+v", got[2])
		}
		for _, srv := range []webrtc.ICEServer{got[1], got[3]} {
			pass, _ := srv.Credential.(string)
			if !strings.HasSuffix(srv.Username, ":v42-u7") || creds.Check(srv.Username, pass, now) != nil {
				t.Errorf("%v: credentials %q/%q do not check out for v42-u7", srv.URLs, srv.Username, pass)
			}
		}
		wantURLs := []string{
			fmt.Sprintf("turn:%s:%d?transport=udp", tc.want, udp.(*net.UDPAddr).Port),
			fmt.Sprintf("turn:%s:%d?transport=tcp", tc.want, tcp.(*net.TCPAddr).Port),
		}
		if strings.Join(got[3].URLs, " ") != strings.Join(wantURLs, " ") {
			t.Errorf("relay URLs %v, want %v", got[3].URLs, wantURLs)
		}
	}
	// A configured relay host wins over the client's.
	s.net.cfg.TURN.Host = "turn.clinic.example"
	if got := s.ICEServers("v42-u7", "other.example"); !strings.HasPrefix(got[3].URLs[0], "turn:turn.clinic.example:") {
		t.Errorf("relay named %v, want turn.clinic.example", got[3].URLs)
	}
	// Each call mints afresh; without a secret nothing is minted.
	plain, err := New(Config{UDPAddr: "127.0.0.1:0", ICEServers: []webrtc.ICEServer{{URLs: []string{"turn:turn.example.org:3478"}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plain.Close)
	if got := plain.ICEServers("v1-u1", "x"); len(got) != 1 || got[0].Username != "" {
		t.Errorf("without a secret: %+v", got)
	}
}
