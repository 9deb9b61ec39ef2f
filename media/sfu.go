package media

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// ErrDuplicate reports a participant id already present in the room.
var ErrDuplicate = errors.New("participant already in the room")

// ErrClosed reports a call on a participant that has left.
var ErrClosed = errors.New("participant has left")

// SFU holds the rooms of one node. It is safe for concurrent use.
type SFU struct {
	api *webrtc.API
	net *network
	log *slog.Logger

	trackSeq atomic.Uint64 // makes local track ids unique
	checks   chan struct{} // one token per running connectivity check

	mu    sync.Mutex
	rooms map[int64]*Room
}

// New builds the WebRTC stack (VP8 and Opus, NACK, RTCP reports) shared by
// every peer connection, opens its sockets (see Config) and starts the
// embedded TURN relay if configured. Close releases them.
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
	nw, err := newNetwork(cfg, log)
	if err != nil {
		return nil, err
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(nw.settings))
	return &SFU{api: api, net: nw, log: log, rooms: make(map[int64]*Room), checks: make(chan struct{}, maxChecks)}, nil
}

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
