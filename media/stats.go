package media

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Directions of a stream's statistics.
const (
	DirectionUp   = "up"   // what the SFU receives from a publisher
	DirectionDown = "down" // what the SFU sends a subscriber
)

// Network quality levels, from the worst figure of a participant's streams.
const (
	LevelGood    = "good"
	LevelFair    = "fair"
	LevelPoor    = "poor"
	LevelUnknown = "unknown" // nothing measured yet
)

// Thresholds of the quality levels: a figure at or above a fair threshold
// makes a stream fair, at or above a poor one poor. Loss beyond a few
// percent is what NACK and Opus FEC stop hiding; round trips beyond a
// quarter second make conversation awkward, beyond half a second people
// talk over each other; jitter beyond the receiver's usual buffer shows as
// frozen video or robotic audio.
const (
	fairLoss   = 0.03
	poorLoss   = 0.10
	fairRTT    = 250 * time.Millisecond
	poorRTT    = 500 * time.Millisecond
	fairJitter = 40 * time.Millisecond
	poorJitter = 100 * time.Millisecond
)

// LevelOf classifies one stream's figures as LevelGood, LevelFair or
// LevelPoor.
func LevelOf(fractionLost float64, jitter, rtt time.Duration) string {
	switch {
	case fractionLost >= poorLoss || rtt >= poorRTT || jitter >= poorJitter:
		return LevelPoor
	case fractionLost >= fairLoss || rtt >= fairRTT || jitter >= fairJitter:
		return LevelFair
	}
	return LevelGood
}

// worseLevel returns the worse of two levels; unknown is better than any.
func worseLevel(a, b string) string {
	rank := func(l string) int { return slices.Index([]string{LevelUnknown, LevelGood, LevelFair, LevelPoor}, l) }
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// TrackStats are the figures of one stream: what one subscriber received
// of one track (DirectionDown), or what the SFU received of one layer of a
// published track (DirectionUp). A network-quality indicator or an
// exporter reads them.
type TrackStats struct {
	Track     string // the track's id (TrackInfo.ID)
	Kind      string // "audio" or "video"
	Direction string // DirectionUp or DirectionDown
	// Layer is the simulcast layer being sent (0 lowest), -1 while paused
	// or waiting for the first keyframe; for DirectionUp, the layer
	// received.
	Layer       int
	Packets     uint64 // written to the subscriber, or received
	Bytes       uint64 // with RTP headers
	Retransmits uint64 // packets sent again on NACK
	Dropped     uint64 // not sent: the subscriber's queue was full, or a write failed
	Unanswered  uint64 // NACKed packets no longer (or never) in the cache
	// KeyframeRequests counts the subscriber's PLI and FIR.
	KeyframeRequests uint64
	// Probes counts the bandwidth probes this video track carried while
	// paused or held below the layer wanted, and PaddingBytes what they
	// sent (RTP headers included; not in Packets or Bytes).
	Probes, PaddingBytes uint64
	// FractionLost (0 to 1), Jitter and RTT come from the subscriber's
	// last receiver report; RTT is 0 until one carries a sender report
	// reference. For DirectionUp, FractionLost is the share of packets
	// never received (retransmissions count as received) over the last
	// second or more, Jitter the SFU's own interarrival jitter estimate
	// (RFC 3550), and RTT is 0.
	FractionLost float64
	Jitter       time.Duration
	RTT          time.Duration
	// Bitrate is in bits per second over the last second or more, RTP
	// headers included; 0 until a second has passed since the first look.
	Bitrate float64
}

// Level classifies the stream's figures (see LevelOf).
func (s TrackStats) Level() string { return LevelOf(s.FractionLost, s.Jitter, s.RTT) }

// Stats returns what the participant's subscribe connection has received
// of each track, sorted by track id.
func (p *Participant) Stats() []TrackStats {
	downs := p.downTracks()
	out := make([]TrackStats, 0, len(downs))
	now := time.Now()
	for _, d := range downs {
		out = append(out, d.trackStats(now))
	}
	slices.SortFunc(out, func(a, b TrackStats) int { return strings.Compare(a.Track, b.Track) })
	return out
}

func (d *downTrack) trackStats(now time.Time) TrackStats {
	_, cur := d.layers()
	d.mu.Lock()
	clock := d.clock
	d.mu.Unlock()
	bytes := d.stats.bytes.Load()
	st := TrackStats{
		Track: d.id, Kind: d.src.kind.String(), Direction: DirectionDown, Layer: cur,
		Packets: d.stats.packets.Load(), Bytes: bytes,
		Retransmits: d.stats.retransmits.Load(), Dropped: d.stats.dropped.Load(),
		Unanswered: d.stats.nacked.Load(), KeyframeRequests: d.stats.keyframeRequests.Load(),
		Probes: d.stats.probes.Load(), PaddingBytes: d.stats.padding.Load(),
		FractionLost: float64(d.stats.fractionLost.Load()) / 256,
		RTT:          time.Duration(d.stats.rtt.Load()),
		Bitrate:      d.stats.rate.rate(now, bytes),
	}
	if clock > 0 {
		st.Jitter = time.Duration(float64(d.stats.jitter.Load()) / float64(clock) * float64(time.Second))
	}
	if d.hist == nil {
		st.Layer = 0 // audio has one layer
	}
	return st
}

// PublishedStats returns what the SFU receives of each layer of each track
// the participant publishes, sorted by track id and layer.
func (p *Participant) PublishedStats() []TrackStats {
	p.mu.Lock()
	tracks := make([]*publishedTrack, 0, len(p.published))
	for _, t := range p.published {
		tracks = append(tracks, t)
	}
	p.mu.Unlock()
	now := time.Now()
	var out []TrackStats
	for _, t := range tracks {
		for i := range maxLayers {
			if l := t.layerAt(i); l != nil {
				out = append(out, l.trackStats(t, now))
			}
		}
	}
	slices.SortFunc(out, func(a, b TrackStats) int {
		if c := strings.Compare(a.Track, b.Track); c != 0 {
			return c
		}
		return a.Layer - b.Layer
	})
	return out
}

func (l *layer) trackStats(t *publishedTrack, now time.Time) TrackStats {
	bytes := l.bytes.Load()
	st := TrackStats{
		Track: t.id, Kind: t.kind.String(), Direction: DirectionUp, Layer: l.idx,
		Packets: l.packets.Load(), Bytes: bytes,
		FractionLost: l.recv.loss(now),
		Bitrate:      l.meter.rate(now, bytes),
	}
	// A layer that stopped (a browser drops its high layers on a weak
	// uplink) keeps its last jitter estimate; it has no jitter now.
	if clock := t.codec.ClockRate; clock > 0 && l.active(now) {
		st.Jitter = time.Duration(float64(l.recv.jitter.Load()) / float64(clock) * float64(time.Second))
	}
	return st
}

// Quality is one participant's network quality as the SFU sees it: the
// worst of what it receives (its receiver reports) and of what the SFU
// receives from it.
type Quality struct {
	Participant string `json:"participant"`
	// Level is LevelGood, LevelFair, LevelPoor, or LevelUnknown while the
	// participant neither sends nor receives anything.
	Level string `json:"level"`
	// RecvLoss and SendLoss are the worst stream's share of packets lost
	// (0 to 1) on the way to and from the participant.
	RecvLoss float64 `json:"recvLoss"`
	SendLoss float64 `json:"sendLoss"`
	// JitterMs is the worst stream's jitter either way, RTTMs the longest
	// round trip measured to the participant, in milliseconds.
	JitterMs float64 `json:"jitterMs"`
	RTTMs    float64 `json:"rttMs"`
	// RecvKbps and SendKbps are the participant's total media bitrates.
	RecvKbps float64 `json:"recvKbps"`
	SendKbps float64 `json:"sendKbps"`
}

// Quality summarises the participant's streams both ways.
func (p *Participant) Quality() Quality {
	q := Quality{Participant: p.id, Level: LevelUnknown}
	var jitter, rtt time.Duration
	add := func(s TrackStats) {
		if s.Direction == DirectionDown && s.Packets == 0 {
			return // nothing sent yet: its report figures mean nothing
		}
		q.Level = worseLevel(q.Level, s.Level())
		jitter, rtt = max(jitter, s.Jitter), max(rtt, s.RTT)
		if s.Direction == DirectionDown {
			q.RecvLoss = max(q.RecvLoss, s.FractionLost)
			q.RecvKbps += s.Bitrate / 1000
		} else {
			q.SendLoss = max(q.SendLoss, s.FractionLost)
			q.SendKbps += s.Bitrate / 1000
		}
	}
	for _, s := range p.Stats() {
		add(s)
	}
	for _, s := range p.PublishedStats() {
		add(s)
	}
	q.JitterMs = float64(jitter) / float64(time.Millisecond)
	q.RTTMs = float64(rtt) / float64(time.Millisecond)
	return q
}

// TrackStats returns the figures of every stream the SFU receives and
// sends, in every room, for an exporter.
func (s *SFU) TrackStats() []TrackStats {
	s.mu.Lock()
	rooms := make([]*Room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	var out []TrackStats
	for _, r := range rooms {
		r.mu.Lock()
		ps := make([]*Participant, 0, len(r.participants))
		for _, p := range r.participants {
			ps = append(ps, p)
		}
		r.mu.Unlock()
		for _, p := range ps {
			out = append(out, p.PublishedStats()...)
			out = append(out, p.Stats()...)
		}
	}
	return out
}

// rateMeter turns a growing byte count into a bitrate over a window of at
// least rateWindow: its figure changes at most once a window, however
// often it is read.
type rateMeter struct {
	mu   sync.Mutex
	at   time.Time
	last uint64
	bps  float64
}

const rateWindow = time.Second

func (m *rateMeter) rate(now time.Time, total uint64) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.at.IsZero() {
		m.at, m.last = now, total
		return 0
	}
	dt := now.Sub(m.at)
	if dt < rateWindow {
		return m.bps
	}
	m.bps = float64(total-m.last) * 8 / dt.Seconds()
	m.at, m.last = now, total
	return m.bps
}

// recvStats are the SFU's own reception figures of one layer (RFC 3550,
// appendix A.1 and A.8): packets expected from the sequence numbers seen,
// packets received, and the interarrival jitter. update runs on the
// layer's read loop only; it publishes the figures for anyone to read
// every publishEvery packets, which keeps atomic writes off most packets.
type recvStats struct {
	// Owned by the read loop.
	started  bool
	base     uint32 // extended sequence number of the first packet
	maxSeq   uint16
	cycles   uint32
	first    time.Time
	transit  float64 // of the previous packet, in clock units
	jitterEs float64 // in clock units
	n        uint64  // packets received

	received atomic.Uint64
	expected atomic.Uint64
	jitter   atomic.Uint32 // in clock units

	mu                sync.Mutex
	looked            bool // loss has been read before
	at                time.Time
	lastExp, lastRecv uint64
	fraction          float64
}

// update counts one packet arriving at now; clock is the track's RTP clock
// rate. It does no allocation and takes no lock.
func (r *recvStats) update(seq uint16, ts uint32, now time.Time, clock uint32) {
	r.n++
	if !r.started {
		r.started = true
		r.first = now
		r.base = uint32(seq)
		r.maxSeq = seq
		r.transit = -float64(ts)
		r.publish()
		return
	}
	if d := seq - r.maxSeq; d != 0 && d < 0x8000 {
		if seq < r.maxSeq {
			r.cycles += 1 << 16
		}
		r.maxSeq = seq
	}
	if r.n%publishEvery == 0 {
		r.publish()
	}
	arrival := float64(now.Sub(r.first)) * float64(clock) / float64(time.Second)
	transit := arrival - float64(ts)
	d := transit - r.transit
	r.transit = transit
	if d < 0 {
		d = -d
	}
	if d > float64(clock) {
		return // a timestamp jump (a new source or a long pause), not jitter
	}
	r.jitterEs += (d - r.jitterEs) / 16
}

// publishEvery is how many packets update counts between two publications
// of its figures: a lag of a fraction of a second at the lowest packet
// rates (50 a second for audio), well within the windows that read them.
const publishEvery = 8

// publish makes the read loop's figures readable by others.
func (r *recvStats) publish() {
	r.received.Store(r.n)
	r.expected.Store(uint64(r.cycles|uint32(r.maxSeq)) - uint64(r.base) + 1)
	r.jitter.Store(uint32(r.jitterEs))
}

// loss returns the share of packets never received over the window since
// the previous look (at least rateWindow; the first look covers
// everything so far).
func (r *recvStats) loss(now time.Time) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.looked && now.Sub(r.at) < rateWindow {
		return r.fraction
	}
	exp, recv := r.expected.Load(), r.received.Load()
	de, dr := exp-r.lastExp, recv-r.lastRecv
	r.fraction = 0
	if de > 0 && dr < de {
		r.fraction = float64(de-dr) / float64(de)
	}
	r.at, r.lastExp, r.lastRecv, r.looked = now, exp, recv, true
	return r.fraction
}
