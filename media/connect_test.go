package media_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtp"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
	"github.com/bedside-health/bedside/wsconn"
)

// wait bounds every wait in these tests.
const wait = 20 * time.Second

// callServer is an SFU and signaling hub behind a test upgrade handler that
// takes the participant from the query (the web layer authenticates).
type callServer struct {
	sfu *media.SFU
	srv *httptest.Server
}

func newCallServer(t *testing.T, cfg media.Config) *callServer {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	sfu, err := media.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sfu.Close)
	hub := signaling.NewHub(sfu, log)
	up := &websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		_ = hub.Serve(r.Context(), wsconn.New(ws, wsconn.Options{}),
			signaling.Peer{ID: q.Get("id"), Name: q.Get("id"), Role: q.Get("role"), Appointment: 1, Host: r.Host})
	}))
	t.Cleanup(srv.Close)
	return &callServer{sfu: sfu, srv: srv}
}

// clientAPI is a participant's WebRTC stack on nw: UDP, and TCP too when
// tcp is set (as browsers have), with loopback candidates on loopback.
func clientAPI(t *testing.T, nw transport.Net, tcp, loopback bool) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetNet(nw)
	se.SetIncludeLoopbackCandidate(loopback)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	types := []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	if tcp {
		types = append(types, webrtc.NetworkTypeTCP4)
	}
	se.SetNetworkTypes(types)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// participant is one side of a test call, streaming numbered video.
type participant struct {
	*sigclient.Client
	id string
}

func (s *callServer) dial(t *testing.T, id, role string, api *webrtc.API) *participant {
	t.Helper()
	video, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video-"+id, id)
	if err != nil {
		t.Fatal(err)
	}
	u := "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/?" + url.Values{"id": {id}, "role": {role}}.Encode()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	c, err := sigclient.Dial(ctx, u, sigclient.Options{API: api, Tracks: []webrtc.TrackLocal{video}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	// Numbered packets until the test ends.
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for n := uint32(0); ; n++ {
			select {
			case <-t.Context().Done():
				return
			case <-c.Done():
				return
			case <-tick.C:
			}
			// One packet per frame; every 30th is a keyframe (the SFU
			// starts each subscriber on one).
			_ = video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 3000, Marker: true},
				Payload: sigclient.VP8Payload(n, 'f', n%30 == 0, 600)})
		}
	}()
	return &participant{Client: c, id: id}
}

// call connects a physician and a patient and checks that each receives
// the other's video, packet after packet.
func (s *callServer) call(t *testing.T, doctorAPI, patientAPI *webrtc.API) (doctor, patient *participant) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	doctor = s.dial(t, "doc", signaling.RolePhysician, doctorAPI)
	if _, err := doctor.Await(ctx, signaling.TypeWelcome); err != nil {
		t.Fatal(err)
	}
	patient = s.dial(t, "pat", signaling.RolePatient, patientAPI)
	for {
		m, err := doctor.Await(ctx, signaling.TypeLobby)
		if err != nil {
			t.Fatal(err)
		}
		if m.Waiting != nil && len(*m.Waiting) == 1 {
			break
		}
	}
	if err := doctor.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: "pat"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*participant{doctor, patient} {
		tr, err := p.NextTrack(ctx)
		if err != nil {
			t.Fatalf("%s received no track: %v (client error: %v)", p.id, err, p.Err())
		}
		var prev uint32
		for i := range 30 {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				t.Fatalf("%s read: %v", p.id, err)
			}
			n, _, _, err := sigclient.ParseVP8Payload(pkt.Payload)
			if err != nil {
				t.Fatalf("%s: %v", p.id, err)
			}
			if i > 0 && n != prev+1 {
				t.Fatalf("%s: packet %d after %d", p.id, n, prev)
			}
			prev = n
		}
	}
	return doctor, patient
}

// pairs returns the selected candidate pairs of p's publish and subscribe
// connections.
func (p *participant) pairs(t *testing.T) []*webrtc.ICECandidatePair {
	t.Helper()
	var out []*webrtc.ICECandidatePair
	for _, pc := range []*webrtc.PeerConnection{p.Publisher(), p.Subscriber()} {
		var tr *webrtc.DTLSTransport
		for _, s := range pc.GetSenders() {
			if s.Transport() != nil {
				tr = s.Transport()
			}
		}
		for _, r := range pc.GetReceivers() {
			if r.Transport() != nil {
				tr = r.Transport()
			}
		}
		if tr == nil {
			t.Fatalf("%s: a connection without transport", p.id)
		}
		pair, err := tr.ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil {
			t.Fatalf("%s: no selected candidate pair: %v", p.id, err)
		}
		out = append(out, pair)
	}
	return out
}

// newWAN is a virtual internet with the given hosts on it directly.
func newWAN(t *testing.T) *vnet.Router {
	t.Helper()
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "1.2.3.0/24", LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	return wan
}

// host adds a machine with address ip to router r.
func host(t *testing.T, r *vnet.Router, ip string) *vnet.Net {
	t.Helper()
	n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddNet(n); err != nil {
		t.Fatal(err)
	}
	return n
}

// home is a household network behind a typical home router (a NAT that
// keeps one mapping per inside address and port, and lets in only
// replies), with one machine on it.
func home(t *testing.T, wan *vnet.Router, lan, public string) *vnet.Net {
	t.Helper()
	r, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: lan, StaticIPs: []string{public}, LoggerFactory: logging.NewDefaultLoggerFactory(),
		NATType: &vnet.NATType{MappingBehavior: vnet.EndpointIndependent, FilteringBehavior: vnet.EndpointAddrPortDependent}})
	if err != nil {
		t.Fatal(err)
	}
	if err := wan.AddRouter(r); err != nil {
		t.Fatal(err)
	}
	n, err := vnet.NewNet(&vnet.NetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddNet(n); err != nil {
		t.Fatal(err)
	}
	return n
}

func start(t *testing.T, wan *vnet.Router) {
	t.Helper()
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wan.Stop() })
}

// TestParticipantsShareTheOneUDPPort: two participants at home, behind
// their routers, reach the SFU's one UDP port with all four of their
// connections, and each gets the other's video.
func TestParticipantsShareTheOneUDPPort(t *testing.T) {
	wan := newWAN(t)
	server := host(t, wan, "1.2.3.4")
	doc := home(t, wan, "192.168.1.0/24", "1.2.3.20")
	pat := home(t, wan, "192.168.2.0/24", "1.2.3.30")
	start(t, wan)
	s := newCallServer(t, media.Config{Net: server, UDPAddr: ":5000"})
	if got := s.sfu.UDPAddrs(); len(got) != 1 || got[0] != netip.MustParseAddrPort("1.2.3.4:5000") {
		t.Fatalf("ICE UDP listens on %v, want only 1.2.3.4:5000", got)
	}
	d, p := s.call(t, clientAPI(t, doc, false, false), clientAPI(t, pat, false, false))
	for _, who := range []*participant{d, p} {
		for _, pair := range who.pairs(t) {
			if r := pair.Remote; r.Address != "1.2.3.4" || r.Port != 5000 || r.Protocol != webrtc.ICEProtocolUDP {
				t.Errorf("%s reached the SFU at %s:%d/%s, want 1.2.3.4:5000/udp", who.id, r.Address, r.Port, r.Protocol)
			}
		}
	}
}

// TestNAT1To1AddressIsAdvertised: an SFU on a private address behind a 1:1
// NAT advertises the public address, and a client on the internet
// connects to it.
func TestNAT1To1AddressIsAdvertised(t *testing.T) {
	wan := newWAN(t)
	dc, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.0.0.0/24", StaticIPs: []string{"1.2.3.4/10.0.0.2"},
		NATType: &vnet.NATType{Mode: vnet.NATModeNAT1To1}, LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	if err := wan.AddRouter(dc); err != nil {
		t.Fatal(err)
	}
	server := host(t, dc, "10.0.0.2")
	doc := host(t, wan, "1.2.3.20")
	pat := home(t, wan, "192.168.2.0/24", "1.2.3.30")
	start(t, wan)
	s := newCallServer(t, media.Config{Net: server, UDPAddr: ":5000", NAT1To1IPs: []string{"1.2.3.4"}})
	d, p := s.call(t, clientAPI(t, doc, false, false), clientAPI(t, pat, false, false))
	for _, who := range []*participant{d, p} {
		for _, pair := range who.pairs(t) {
			if r := pair.Remote; r.Address != "1.2.3.4" || r.Port != 5000 || r.Typ != webrtc.ICECandidateTypeHost {
				t.Errorf("%s reached the SFU at %s %s:%d, want its advertised host candidate 1.2.3.4:5000", who.id, r.Typ, r.Address, r.Port)
			}
		}
	}
}

// loopbackNet is the host's network, for the tests that need TCP.
func loopbackNet(t *testing.T) transport.Net {
	t.Helper()
	n, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBlockedUDPFallsBackToTCP: a participant whose network drops all UDP
// connects over ICE-TCP to the one TCP port; the other stays on UDP.
func TestBlockedUDPFallsBackToTCP(t *testing.T) {
	s := newCallServer(t, media.Config{AllowLoopback: true, UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0"})
	noUDP := &firewall{Net: loopbackNet(t), blockUDP: true}
	d, p := s.call(t, clientAPI(t, noUDP, true, true), clientAPI(t, loopbackNet(t), true, true))
	tcpPort := s.sfu.TCPAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()
	for _, pair := range d.pairs(t) {
		if r := pair.Remote; r.Protocol != webrtc.ICEProtocolTCP || r.Port != tcpPort {
			t.Errorf("without UDP the physician reached the SFU at %s %s:%d, want TCP port %d", r.Protocol, r.Address, r.Port, tcpPort)
		}
	}
	for _, pair := range p.pairs(t) {
		if pair.Remote.Protocol != webrtc.ICEProtocolUDP {
			t.Errorf("with UDP open the patient used %s", pair.Remote.Protocol)
		}
	}
}

// TestOnlyTheTURNPortOpenRelays: a participant whose network drops all UDP
// and lets TCP through only to the TURN port (the SFU's TCP port is
// filtered) connects through the embedded relay, with the credentials of
// its welcome.
func TestOnlyTheTURNPortOpenRelays(t *testing.T) {
	serverNet := &firewall{Net: loopbackNet(t)}
	s := newCallServer(t, media.Config{Net: serverNet, AllowLoopback: true, UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0",
		TURN: media.TURNConfig{UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0"}, TURNSecret: []byte("a test secret of some length")})
	serverNet.refuseTCP(s.sfu.TCPAddr())
	noUDP := &firewall{Net: loopbackNet(t), blockUDP: true}
	d, _ := s.call(t, clientAPI(t, noUDP, true, true), clientAPI(t, loopbackNet(t), true, true))
	for _, pair := range d.pairs(t) {
		if l := pair.Local; l.Typ != webrtc.ICECandidateTypeRelay {
			t.Errorf("the physician's selected pair has a %s local candidate (%s:%d), want relay", l.Typ, l.Address, l.Port)
		}
		if pair.Remote.Protocol != webrtc.ICEProtocolUDP {
			t.Errorf("the relay reached the SFU over %s, want UDP", pair.Remote.Protocol)
		}
	}
}

// TestCheckFindsEachPath: the connectivity check reports the path that
// works from where the client is: direct UDP, TCP when UDP is blocked,
// and the relay when only the TURN port is open.
func TestCheckFindsEachPath(t *testing.T) {
	serverNet := &firewall{Net: loopbackNet(t)}
	s := newCallServer(t, media.Config{Net: serverNet, AllowLoopback: true, UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0",
		TURN: media.TURNConfig{UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0"}, TURNSecret: []byte("a test secret of some length")})
	check := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			_ = json.NewEncoder(w).Encode(map[string]any{"iceServers": s.sfu.ICEServers("check-u1", r.Host)})
			return
		}
		offer, _ := io.ReadAll(r.Body)
		answer, err := s.sfu.Check(r.Context(), string(offer))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(check.Close)
	run := func(api *webrtc.API) webrtc.ICECandidatePair {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		defer cancel()
		res, err := sigclient.CheckConnectivity(ctx, check.URL, nil, nil, api)
		if err != nil {
			t.Fatal(err)
		}
		if res.RTT <= 0 {
			t.Errorf("round trip %v", res.RTT)
		}
		return res.Pair
	}
	if p := run(clientAPI(t, loopbackNet(t), true, true)); p.Local.Typ == webrtc.ICECandidateTypeRelay || p.Remote.Protocol != webrtc.ICEProtocolUDP {
		t.Errorf("open network: %s %s, want direct UDP", p.Local.Typ, p.Remote.Protocol)
	}
	noUDP := func() *webrtc.API { return clientAPI(t, &firewall{Net: loopbackNet(t), blockUDP: true}, true, true) }
	if p := run(noUDP()); p.Local.Typ == webrtc.ICECandidateTypeRelay || p.Remote.Protocol != webrtc.ICEProtocolTCP {
		t.Errorf("UDP blocked: %s %s, want direct TCP", p.Local.Typ, p.Remote.Protocol)
	}
	serverNet.refuseTCP(s.sfu.TCPAddr())
	if p := run(noUDP()); p.Local.Typ != webrtc.ICECandidateTypeRelay {
		t.Errorf("only the TURN port open: %s %s, want relay", p.Local.Typ, p.Remote.Protocol)
	}
}
