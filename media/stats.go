package media

import (
	"slices"
	"strings"
	"time"
)

// TrackStats are what one subscriber received of one track: the figures a
// network-quality indicator or an exporter reads.
type TrackStats struct {
	Track string // the track's id (TrackInfo.ID)
	Kind  string // "audio" or "video"
	// Layer is the simulcast layer being sent (0 lowest), -1 while paused
	// or waiting for the first keyframe.
	Layer       int
	Packets     uint64 // written to the subscriber
	Bytes       uint64 // with RTP headers
	Retransmits uint64 // packets sent again on NACK
	Dropped     uint64 // not sent: the subscriber's queue was full, or a write failed
	Unanswered  uint64 // NACKed packets no longer (or never) in the cache
	// KeyframeRequests counts the subscriber's PLI and FIR.
	KeyframeRequests uint64
	// FractionLost (0 to 1), Jitter and RTT come from the subscriber's
	// last receiver report; RTT is 0 until one carries a sender report
	// reference.
	FractionLost float64
	Jitter       time.Duration
	RTT          time.Duration
}

// Stats returns what the participant's subscribe connection has received
// of each track, sorted by track id.
func (p *Participant) Stats() []TrackStats {
	downs := p.downTracks()
	out := make([]TrackStats, 0, len(downs))
	for _, d := range downs {
		_, cur := d.layers()
		d.mu.Lock()
		clock := d.clock
		d.mu.Unlock()
		st := TrackStats{
			Track: d.id, Kind: d.src.kind.String(), Layer: cur,
			Packets: d.stats.packets.Load(), Bytes: d.stats.bytes.Load(),
			Retransmits: d.stats.retransmits.Load(), Dropped: d.stats.dropped.Load(),
			Unanswered: d.stats.nacked.Load(), KeyframeRequests: d.stats.keyframeRequests.Load(),
			FractionLost: float64(d.stats.fractionLost.Load()) / 256,
			RTT:          time.Duration(d.stats.rtt.Load()),
		}
		if clock > 0 {
			st.Jitter = time.Duration(float64(d.stats.jitter.Load()) / float64(clock) * float64(time.Second))
		}
		if d.hist == nil {
			st.Layer = 0 // audio has one layer
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b TrackStats) int { return strings.Compare(a.Track, b.Track) })
	return out
}
