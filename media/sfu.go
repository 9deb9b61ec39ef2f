package media

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// ErrDuplicate reports a participant id already present in the room.
var ErrDuplicate = errors.New("participant already in the room")

// ErrClosed reports a call on a participant that has left.
var ErrClosed = errors.New("participant has left")

// Payload types the SFU offers to subscribers and accepts from publishers.
const (
	ptVP8    = 96
	ptVP8RTX = 97
	ptOpus   = 111
)

// h264Profiles are the H.264 variants accepted from WHIP tools and offered
// to subscribers, each with its payload type and RTX payload type (the
// next one): constrained baseline (browsers, OBS Studio, GStreamer),
// baseline, constrained high, and high (x264's default, as ffmpeg sends
// it). All use packetization mode 1 (FU-A and STAP-A), the one the
// keyframe detection reads.
var h264Profiles = []struct {
	pt             webrtc.PayloadType
	profileLevelID string
}{
	{102, "42e01f"},
	{104, "42001f"},
	{106, "640c1f"},
	{108, "64001f"},
}

// h264Fmtp is the fmtp line of an H.264 variant.
func h264Fmtp(profileLevelID string) string {
	return "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profileLevelID
}

// Congestion control bounds for a subscriber's downstream estimate. It
// starts high enough for a full-resolution layer and audio, and comes down
// within a few feedback rounds on a weaker link.
const (
	initialBitrate = 2_000_000
	minBitrate     = 30_000
	maxBitrate     = 20_000_000
)

// uplinkNACKInterval is how often missing publisher packets are asked for
// again; uplinkMaxNACKs bounds how often one packet is asked for: about a
// second of asking, enough for a slow link's round trip.
const (
	uplinkNACKInterval = 40 * time.Millisecond
	uplinkMaxNACKs     = 25
)

// SFU holds the rooms of one node. It is safe for concurrent use.
type SFU struct {
	pubAPI, subAPI *webrtc.API
	net            *network
	log            *slog.Logger

	trackSeq atomic.Uint64 // makes local track ids unique
	checks   chan struct{} // one token per running connectivity check

	// subMu serialises creating subscribe connections, so that the
	// estimator the congestion controller hands over belongs to the
	// connection being created.
	subMu   sync.Mutex
	lastBWE cc.BandwidthEstimator
	// ignoreBWE makes subscribers' allocators ignore the estimate, so
	// that a benchmark measures forwarding alone at any packet rate.
	ignoreBWE bool

	mu    sync.Mutex
	rooms map[int64]*Room
}

// New builds the two WebRTC stacks shared by every peer connection, on the
// sockets cfg asks for (see Config; Close releases them): the publish side
// (VP8 with simulcast, H.264, Opus; NACKs towards the publisher for packets
// lost on the way in, receiver reports and TWCC feedback) and the subscribe side
// (VP8 and H.264 with RTX, Opus; sender reports, TWCC sequence numbers and a
// delay-based bandwidth estimator per connection). NACKs from subscribers
// are answered by the SFU's own packet cache, not by Pion's responder,
// because each subscriber's sequence numbers are rewritten. It also starts
// the embedded TURN relay if configured.
func New(cfg Config, log *slog.Logger) (*SFU, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	nw, err := newNetwork(cfg, log)
	if err != nil {
		return nil, err
	}
	s := &SFU{net: nw, log: log, rooms: make(map[int64]*Room), checks: make(chan struct{}, maxChecks)}
	if s.pubAPI, err = publishAPI(nw.settings); err != nil {
		nw.close()
		return nil, fmt.Errorf("publish stack: %w", err)
	}
	if s.subAPI, err = s.subscribeAPI(nw.settings); err != nil {
		nw.close()
		return nil, fmt.Errorf("subscribe stack: %w", err)
	}
	return s, nil
}

var videoFeedback = []webrtc.RTCPFeedback{
	{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
	{Type: webrtc.TypeRTCPFBNACK},
	{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
	{Type: webrtc.TypeRTCPFBTransportCC},
}

// videoCodec is a video codec the SFU registers; its RTX payload type is
// the next one.
type videoCodec struct {
	name string
	pt   webrtc.PayloadType
	mime string
	fmtp string
}

// registerCodecs registers the codecs the SFU forwards: VP8 first, so
// that browsers keep publishing and receiving it, then H.264 for WHIP tools
// that send nothing else, each with RTX if rtx; and Opus.
func registerCodecs(m *webrtc.MediaEngine, rtx bool) error {
	video := []videoCodec{{"VP8", ptVP8, webrtc.MimeTypeVP8, ""}}
	for _, h := range h264Profiles {
		video = append(video, videoCodec{"H.264 " + h.profileLevelID, h.pt, webrtc.MimeTypeH264, h264Fmtp(h.profileLevelID)})
	}
	for _, v := range video {
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: v.mime, ClockRate: 90000, SDPFmtpLine: v.fmtp, RTCPFeedback: videoFeedback},
			PayloadType:        v.pt,
		}, webrtc.RTPCodecTypeVideo); err != nil {
			return fmt.Errorf("register %s: %w", v.name, err)
		}
		if !rtx {
			continue
		}
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: fmt.Sprintf("apt=%d", v.pt)},
			PayloadType:        v.pt + 1,
		}, webrtc.RTPCodecTypeVideo); err != nil {
			return fmt.Errorf("register RTX for %s: %w", v.name, err)
		}
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}}},
		PayloadType: ptOpus,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return fmt.Errorf("register Opus: %w", err)
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, kind); err != nil {
			return fmt.Errorf("register transport-cc: %w", err)
		}
	}
	return nil
}

// publishAPI is the stack publishers send to. It does not negotiate RTX:
// Pion's NACK generator only sees the media stream, so publishers
// retransmit on it.
func publishAPI(se webrtc.SettingEngine) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := registerCodecs(m, false); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return nil, fmt.Errorf("simulcast extensions: %w", err)
	}
	// Publishers' audio levels drive the active speaker detection.
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("audio level extension: %w", err)
	}
	ir := &interceptor.Registry{}
	gen, err := nack.NewGeneratorInterceptor(nack.GeneratorInterval(uplinkNACKInterval), nack.GeneratorMaxNacksPerPacket(uplinkMaxNACKs))
	if err != nil {
		return nil, fmt.Errorf("nack generator: %w", err)
	}
	ir.Add(gen)
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, fmt.Errorf("rtcp reports: %w", err)
	}
	// TWCC feedback lets the publisher's own estimator size its layers.
	tw, err := twcc.NewSenderInterceptor()
	if err != nil {
		return nil, fmt.Errorf("twcc feedback: %w", err)
	}
	ir.Add(tw)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// subscribeAPI is the stack subscribers receive from.
func (s *SFU) subscribeAPI(se webrtc.SettingEngine) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := registerCodecs(m, true); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	ccf, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		g, err := gcc.NewSendSideBWE(
			gcc.SendSideBWEInitialBitrate(initialBitrate),
			gcc.SendSideBWEMinBitrate(minBitrate),
			gcc.SendSideBWEMaxBitrate(maxBitrate),
			// Packets are already paced by the publishers' encoders; a
			// pacing queue here would only add delay.
			gcc.SendSideBWEPacer(gcc.NewNoOpPacer()),
		)
		if err != nil {
			return nil, err
		}
		return rtxAwareBWE{g}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("congestion control: %w", err)
	}
	ccf.OnNewPeerConnection(func(_ string, e cc.BandwidthEstimator) { s.lastBWE = e })
	ir.Add(ccf)
	hdr, err := twcc.NewHeaderExtensionInterceptor()
	if err != nil {
		return nil, fmt.Errorf("twcc sequence numbers: %w", err)
	}
	ir.Add(hdr)
	sr, err := report.NewSenderInterceptor()
	if err != nil {
		return nil, fmt.Errorf("sender reports: %w", err)
	}
	ir.Add(sr)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// rtxAwareBWE registers a stream's RTX SSRC with the estimator too, so that
// retransmissions are counted and pass its pacer.
type rtxAwareBWE struct{ *gcc.SendSideBWE }

func (b rtxAwareBWE) AddStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	w = paddingWriter{w} // probe padding is counted above it
	if info.SSRCRetransmission != 0 {
		rtx := *info
		rtx.SSRC = info.SSRCRetransmission
		b.SendSideBWE.AddStream(&rtx, w)
	}
	return b.SendSideBWE.AddStream(info, w)
}

// Join adds a participant to the appointment's room, creating the room if
// needed. id must be unique in the room (ErrDuplicate otherwise); name is
// shown to the others. sig carries the participant's outgoing signaling: it
// is first offered every track already published in the room. Call Close on
// the participant when it leaves.
func (s *SFU) Join(appointment int64, id, name string, sig Signaler) (*Participant, error) {
	p, existing, err := s.join(appointment, id, name, sig, modeCall)
	if err != nil {
		return nil, err
	}
	p.start(existing)
	p.room.tellSpeaker(p)
	return p, nil
}

// join registers a new participant in the appointment's room and returns
// it with the tracks already published there.
func (s *SFU) join(appointment int64, id, name string, sig Signaler, m mode) (*Participant, []*publishedTrack, error) {
	sub, bwe, err := s.newSubscribeConnection()
	if err != nil {
		return nil, nil, fmt.Errorf("join room %d: subscribe connection: %w", appointment, err)
	}
	s.mu.Lock()
	r := s.rooms[appointment]
	if r == nil {
		r = newRoom(s, appointment)
		s.rooms[appointment] = r
	}
	p := newParticipant(r, id, name, sig, m, sub, bwe)
	// Register under the SFU lock so that a room emptying meanwhile is not
	// dropped with the newcomer in it.
	existing, err := r.register(p)
	s.mu.Unlock()
	if err != nil {
		p.stop()
		_ = sub.Close()
		s.dropIfEmpty(r)
		return nil, nil, fmt.Errorf("join room %d: %w", appointment, err)
	}
	s.log.Info("participant joined", "room", appointment, "participant", id)
	return p, existing, nil
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
		close(r.done)
		s.log.Info("room closed", "room", r.id)
	}
}

func (s *SFU) newPublishConnection() (*webrtc.PeerConnection, error) {
	return s.pubAPI.NewPeerConnection(webrtc.Configuration{})
}

// newPeerConnection is a connection of the publish stack with no media, for
// connectivity checks.
func (s *SFU) newPeerConnection() (*webrtc.PeerConnection, error) {
	return s.pubAPI.NewPeerConnection(webrtc.Configuration{})
}

// newSubscribeConnection creates a subscribe connection and returns it with
// its bandwidth estimator.
func (s *SFU) newSubscribeConnection() (*webrtc.PeerConnection, cc.BandwidthEstimator, error) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	s.lastBWE = nil
	pc, err := s.subAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, nil, err
	}
	if s.ignoreBWE {
		return pc, nil, nil
	}
	return pc, s.lastBWE, nil
}
