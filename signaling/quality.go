package signaling

import (
	"slices"
	"strings"
	"time"

	"github.com/bedside-health/bedside/media"
)

// DefaultQualityInterval is how often a participant in a call is sent the
// network quality of everyone in it.
const DefaultQualityInterval = 2 * time.Second

// SetQualityInterval sets how often participants in a call are sent a
// quality message (DefaultQualityInterval unless set; 0 or less sends
// none). It applies to participants joining from then on.
func (h *Hub) SetQualityInterval(d time.Duration) { h.quality.Store(int64(d)) }

// qualityOf returns the network quality of everyone in the appointment's
// call, by participant id.
func (h *Hub) qualityOf(appointment int64) []media.Quality {
	var out []media.Quality
	for _, c := range h.clients(appointment, nil) {
		c.mu.Lock()
		part := c.part
		c.mu.Unlock()
		if part != nil {
			out = append(out, part.Quality())
		}
	}
	slices.SortFunc(out, func(a, b media.Quality) int { return strings.Compare(a.Participant, b.Participant) })
	return out
}

// reportQuality sends the client the call's quality periodically until
// its session ends. While the connection is lost nothing is sent or kept:
// the next report after a resume supersedes the missed ones.
func (c *client) reportQuality() {
	every := time.Duration(c.hub.quality.Load())
	if every <= 0 {
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-c.finished:
			return
		case <-tick.C:
		}
		if c.currentConn() == nil {
			continue
		}
		c.deliver(Message{Type: TypeQuality, Quality: c.hub.qualityOf(c.peer.Appointment)}, true)
	}
}

var _ media.SpeakerSignaler = (*client)(nil)

// Speaker implements media.SpeakerSignaler: it tells the client who the
// call's dominant speaker now is.
func (c *client) Speaker(participant string) {
	c.send(Message{Type: TypeSpeaker, Participant: participant})
}
