package signaling

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/bedside-health/bedside/media"
)

// Stream kinds: a WHIP publisher or a WHEP viewer.
const (
	StreamPublish = "whip"
	StreamView    = "whep"
)

// ExamCameraName is how a WHIP publisher is shown to the call.
const ExamCameraName = "Exam camera"

// ErrNoStream reports a stream id that names no open stream of that kind
// in that visit.
var ErrNoStream = errors.New("no such stream")

// Stream is one HTTP-negotiated participant of a visit: a WHIP publisher
// (an exam camera) or a WHEP viewer. It counts against the hub's limits
// like a WebSocket participant.
type Stream struct {
	ID          string // random; names the resource /whip/{appointment}/{id}
	Kind        string // StreamPublish or StreamView
	Appointment int64
	Owner       string // who opened it; only they may end it
	Name        string // whose it is, as the call is told ("Viewer (Dr Ada Obi)")
	part        *media.Participant
	opened      time.Time
}

// Done is closed once the stream has ended, however it ended. Only for a
// stream OpenStream returned.
func (s *Stream) Done() <-chan struct{} { return s.part.Done() }

// Participant is the stream's id in the media room and in the call's
// signaling (TrackInfo.Participant, peer-left).
func (s *Stream) Participant() string { return s.Kind + "-" + s.ID[:12] }

// OpenStream negotiates a WHIP publisher (kind StreamPublish) or a WHEP
// viewer (StreamView) in the appointment's visit from the client's SDP
// offer and returns the stream and the SDP answer, which carries every
// server candidate. A publisher's tracks are offered to everyone in the
// call, named ExamCameraName; a viewer's sections follow what the call
// publishes (see media.SFU.View). It returns ErrFull beyond the hub's
// limits and media.ErrNoCodec for a viewer that can receive none of the
// published video; other errors mean the offer was refused. The caller has authenticated owner and
// checked that they belong to the appointment.
//
// Everyone admitted to the call is told of each viewer (a viewers message
// naming it by ownerName), so nobody watches unseen.
func (h *Hub) OpenStream(ctx context.Context, kind string, appointment int64, owner, ownerName, offer string) (*Stream, string, error) {
	if kind != StreamPublish && kind != StreamView {
		return nil, "", fmt.Errorf("stream kind %q: want %q or %q", kind, StreamPublish, StreamView)
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	st := &Stream{ID: hex.EncodeToString(raw[:]), Kind: kind, Appointment: appointment, Owner: owner, Name: ExamCameraName, opened: time.Now()}
	if kind == StreamView {
		st.Name = "Viewer (" + ownerName + ")"
	}
	if err := h.claimStream(ctx, st); err != nil {
		return nil, "", err
	}
	var (
		part   *media.Participant
		answer string
		err    error
	)
	if kind == StreamPublish {
		part, answer, err = h.sfu.Ingest(ctx, appointment, st.Participant(), ExamCameraName, offer)
	} else {
		part, answer, err = h.sfu.View(ctx, appointment, st.Participant(), st.Name, offer)
	}
	if err != nil {
		h.dropStream(st)
		return nil, "", err
	}
	h.mu.Lock()
	st.part = part
	h.mu.Unlock()
	h.log.InfoContext(ctx, "stream opened", "appointment", appointment, "stream", st.Participant(), "kind", kind)
	if kind == StreamView {
		h.broadcastViewers(appointment)
	}
	go func() {
		<-part.Done()
		h.endStream(st)
	}()
	return st, answer, nil
}

// CloseStream ends the visit's stream of kind with id if owner opened it.
// It returns ErrNoStream for a stream that is not open, of another kind or
// visit, or opened by someone else: a caller learns nothing of other
// people's streams.
func (h *Hub) CloseStream(kind string, appointment int64, id, owner string) error {
	h.mu.Lock()
	st := h.streams[appointment][id]
	var part *media.Participant
	if st != nil {
		part = st.part
	}
	h.mu.Unlock()
	if st == nil || st.Kind != kind || st.Owner != owner || part == nil {
		return ErrNoStream
	}
	h.endStream(st) // peer-left before the renegotiation Close starts
	part.Close()
	return nil
}

// Streams lists the visit's open streams.
func (h *Hub) Streams(appointment int64) []Stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Stream, 0, len(h.streams[appointment]))
	for _, st := range h.streams[appointment] {
		out = append(out, Stream{ID: st.ID, Kind: st.Kind, Appointment: st.Appointment, Owner: st.Owner})
	}
	return out
}

// claimStream reserves st's place in its visit within the hub's limits,
// leaving the places of an absent physician or patient free, as a guest
// does.
func (h *Hub) claimStream(ctx context.Context, st *Stream) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if limit := h.full(st.Appointment, true); limit != "" {
		h.refused(limit)
		h.log.WarnContext(ctx, "stream refused", "appointment", st.Appointment, "kind", st.Kind, "limit", limit)
		return fmt.Errorf("%w (%s)", ErrFull, limit)
	}
	if h.streams[st.Appointment] == nil {
		h.streams[st.Appointment] = make(map[string]*Stream)
	}
	h.streams[st.Appointment][st.ID] = st
	h.participants++
	return nil
}

// dropStream gives up st's place; it reports whether st still held one.
func (h *Hub) dropStream(st *Stream) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	visit := h.streams[st.Appointment]
	if visit[st.ID] != st {
		return false
	}
	delete(visit, st.ID)
	if len(visit) == 0 {
		delete(h.streams, st.Appointment)
	}
	h.participants--
	return true
}

// endStream removes an open stream once and tells the call a publisher
// has gone.
func (h *Hub) endStream(st *Stream) {
	if !h.dropStream(st) {
		return
	}
	if st.Kind == StreamPublish {
		for _, c := range h.clients(st.Appointment, nil) {
			if c.isAdmitted() {
				c.send(Message{Type: TypePeerLeft, Participant: st.Participant()})
			}
		}
	} else {
		h.broadcastViewers(st.Appointment)
	}
	h.log.Info("stream closed", "appointment", st.Appointment, "stream", st.Participant(), "kind", st.Kind)
}

// viewersMessage lists the visit's WHEP viewers, oldest first.
func (h *Hub) viewersMessage(appointment int64) Message {
	h.mu.Lock()
	var open []*Stream
	for _, st := range h.streams[appointment] {
		if st.Kind == StreamView && st.part != nil {
			open = append(open, st)
		}
	}
	h.mu.Unlock()
	slices.SortFunc(open, func(a, b *Stream) int { return a.opened.Compare(b.opened) })
	v := []Viewer{}
	for _, st := range open {
		v = append(v, Viewer{Participant: st.Participant(), Name: st.Name})
	}
	return Message{Type: TypeViewers, Viewers: &v}
}

// broadcastViewers tells everyone admitted to the call who watches it.
func (h *Hub) broadcastViewers(appointment int64) {
	m := h.viewersMessage(appointment)
	for _, c := range h.clients(appointment, nil) {
		if c.isAdmitted() {
			c.send(m)
		}
	}
}

// tellViewers tells c, just admitted, who watches the call, if anyone.
func (h *Hub) tellViewers(c *client) {
	if m := h.viewersMessage(c.peer.Appointment); len(*m.Viewers) > 0 {
		c.send(m)
	}
}
