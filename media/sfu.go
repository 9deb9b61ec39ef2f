package media

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// Config sets up the SFU's networking.
type Config struct {
	// AllowLoopback offers loopback ICE candidates (tests on one machine).
	AllowLoopback bool
	// UDPPortMin and UDPPortMax bound the UDP ports used for media; 0 means any.
	UDPPortMin, UDPPortMax uint16
	// NAT1To1IPs are public addresses advertised instead of the host's own.
	NAT1To1IPs []string
	// ICEServers are given to clients (STUN/TURN).
	ICEServers []webrtc.ICEServer
}

// SFU holds the rooms of one node.
type SFU struct {
	api *webrtc.API
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	rooms map[int64]*Room
}

// New builds the WebRTC stack (VP8 and Opus, NACK, RTCP reports) and an
// empty set of rooms.
func New(cfg Config, log *slog.Logger) (*SFU, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "transport-cc"}}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb},
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
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("register interceptors: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(cfg.AllowLoopback)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	if cfg.UDPPortMin != 0 || cfg.UDPPortMax != 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.UDPPortMin, cfg.UDPPortMax); err != nil {
			return nil, fmt.Errorf("udp port range: %w", err)
		}
	}
	if len(cfg.NAT1To1IPs) > 0 {
		se.SetNAT1To1IPs(cfg.NAT1To1IPs, webrtc.ICECandidateTypeHost)
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	return &SFU{api: api, cfg: cfg, log: log, rooms: make(map[int64]*Room)}, nil
}

// ICEServers are the STUN/TURN servers clients should use.
func (s *SFU) ICEServers() []webrtc.ICEServer { return s.cfg.ICEServers }

// ErrDuplicate reports a participant id already present in the room.
var ErrDuplicate = errors.New("participant already in the room")

// Join adds a participant to the appointment's room, creating the room if
// needed. sig receives the participant's outgoing signaling. The new
// participant is offered every track already published in the room.
func (s *SFU) Join(appointment int64, id string, sig Signaler) (*Participant, error) {
	s.mu.Lock()
	r := s.rooms[appointment]
	if r == nil {
		r = &Room{id: appointment, sfu: s, participants: make(map[string]*Participant), tracks: make(map[string]*forwarded)}
		s.rooms[appointment] = r
	}
	// Register under the SFU lock so an emptying room is not dropped meanwhile.
	p, existing, err := r.register(id, sig)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := p.start(existing); err != nil {
		p.Close()
		return nil, err
	}
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
	r.mu.Lock()
	empty := len(r.participants) == 0
	r.mu.Unlock()
	if empty && s.rooms[r.id] == r {
		delete(s.rooms, r.id)
	}
}

func (s *SFU) newPeerConnection() (*webrtc.PeerConnection, error) {
	return s.api.NewPeerConnection(webrtc.Configuration{})
}
