package media

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"
)

// Config sets up the SFU's networking.
type Config struct {
	// Net is the network the SFU's sockets live on; nil means the host's
	// own. Tests pass a pion/transport vnet.Net to run calls over a
	// virtual network with NATs, loss, delay or blocked traffic.
	Net transport.Net
	// AllowLoopback offers loopback ICE candidates (tests on one machine).
	AllowLoopback bool
	// UDPPortMin and UDPPortMax bound the UDP ports used for media; 0 and 0
	// mean any port.
	UDPPortMin, UDPPortMax uint16
	// NAT1To1IPs are public addresses advertised in host candidates instead
	// of the host's own (a server behind 1:1 NAT).
	NAT1To1IPs []string
	// ICEServers are the STUN/TURN servers handed to clients.
	ICEServers []webrtc.ICEServer
}

// ErrDuplicate reports a participant id already present in the room.
var ErrDuplicate = errors.New("participant already in the room")

// ErrClosed reports a call on a participant that has left.
var ErrClosed = errors.New("participant has left")

// SFU holds the rooms of one node. It is safe for concurrent use.
type SFU struct {
	api *webrtc.API
	cfg Config
	log *slog.Logger

	trackSeq atomic.Uint64 // makes local track ids unique

	mu    sync.Mutex
	rooms map[int64]*Room
}

// New builds the WebRTC stack (VP8 and Opus, NACK, RTCP reports) shared by
// every peer connection, and an empty set of rooms.
func New(cfg Config, log *slog.Logger) (*SFU, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &webrtc.MediaEngine{}
	videoFB := []webrtc.RTCPFeedback{
		{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
		{Type: webrtc.TypeRTCPFBNACK},
		{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFB},
		PayloadType:        96,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("register VP8: %w", err)
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType:        111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("register Opus: %w", err)
	}
	ir := &interceptor.Registry{}
	// NACK generator and responder, RTCP sender and receiver reports,
	// stats and TWCC header extensions.
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("register interceptors: %w", err)
	}
	se := webrtc.SettingEngine{}
	if cfg.Net != nil {
		se.SetNet(cfg.Net)
	}
	se.SetIncludeLoopbackCandidate(cfg.AllowLoopback)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	if cfg.UDPPortMin != 0 || cfg.UDPPortMax != 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.UDPPortMin, cfg.UDPPortMax); err != nil {
			return nil, fmt.Errorf("udp port range %d-%d: %w", cfg.UDPPortMin, cfg.UDPPortMax, err)
		}
	}
	if len(cfg.NAT1To1IPs) > 0 {
		err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        cfg.NAT1To1IPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		})
		if err != nil {
			return nil, fmt.Errorf("nat 1:1 addresses: %w", err)
		}
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	return &SFU{api: api, cfg: cfg, log: log, rooms: make(map[int64]*Room)}, nil
}

// ICEServers are the STUN/TURN servers clients should use.
func (s *SFU) ICEServers() []webrtc.ICEServer { return s.cfg.ICEServers }

// Join adds a participant to the appointment's room, creating the room if
// needed. id must be unique in the room (ErrDuplicate otherwise); name is
// shown to the others. sig carries the participant's outgoing signaling: it
// is first offered every track already published in the room. Call Close on
// the participant when it leaves.
func (s *SFU) Join(appointment int64, id, name string, sig Signaler) (*Participant, error) {
	sub, err := s.newPeerConnection()
	if err != nil {
		return nil, fmt.Errorf("join room %d: subscribe connection: %w", appointment, err)
	}
	s.mu.Lock()
	r := s.rooms[appointment]
	if r == nil {
		r = newRoom(s, appointment)
		s.rooms[appointment] = r
	}
	p := newParticipant(r, id, name, sig, sub)
	// Register under the SFU lock so that a room emptying meanwhile is not
	// dropped with the newcomer in it.
	existing, err := r.register(p)
	s.mu.Unlock()
	if err != nil {
		_ = sub.Close()
		s.dropIfEmpty(r)
		return nil, fmt.Errorf("join room %d: %w", appointment, err)
	}
	s.log.Info("participant joined", "room", appointment, "participant", id)
	p.start(existing)
	return p, nil
}

// Rooms returns how many rooms are open.
func (s *SFU) Rooms() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rooms)
}

// dropIfEmpty removes a room that has no participants left.
func (s *SFU) dropIfEmpty(r *Room) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.empty() && s.rooms[r.id] == r {
		delete(s.rooms, r.id)
		s.log.Info("room closed", "room", r.id)
	}
}

func (s *SFU) newPeerConnection() (*webrtc.PeerConnection, error) {
	return s.api.NewPeerConnection(webrtc.Configuration{})
}
