package signaling

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/wsconn"
)

// Peer is an authenticated, authorised participant of one appointment.
type Peer struct {
	ID          string
	Name        string
	Role        string // RolePhysician or RolePatient
	Appointment int64
}

// Hub holds every connected participant of this node, by appointment.
type Hub struct {
	sfu *media.SFU
	log *slog.Logger

	mu     sync.Mutex
	visits map[int64]map[string]*client
}

// NewHub returns a hub forwarding media through sfu.
func NewHub(sfu *media.SFU, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{sfu: sfu, log: log, visits: make(map[int64]map[string]*client)}
}

// client is one connected participant.
type client struct {
	hub   *Hub
	peer  Peer
	conn  *wsconn.Conn
	since time.Time

	mu       sync.Mutex
	admitted bool
	part     *media.Participant
}

func (c *client) send(m Message) {
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	_ = c.conn.Send(b)
}

func (c *client) sendError(format string, args ...any) {
	c.send(Message{Type: TypeError, Error: fmt.Sprintf(format, args...)})
}

// SubscribeOffer implements media.Signaler.
func (c *client) SubscribeOffer(sdp string, tracks []media.TrackInfo) {
	c.send(Message{Type: TypeSubscribeOffer, SDP: sdp, Tracks: tracks})
}

// Candidate implements media.Signaler.
func (c *client) Candidate(target string, cand webrtc.ICECandidateInit) {
	c.send(Message{Type: TypeCandidate, Target: target, Candidate: &cand})
}

// Waiting lists who waits to be admitted to an appointment, by arrival.
func (h *Hub) Waiting(appointment int64) []Peer {
	return h.list(appointment, false)
}

// InCall lists who is admitted to an appointment's call.
func (h *Hub) InCall(appointment int64) []Peer {
	return h.list(appointment, true)
}

func (h *Hub) list(appointment int64, admitted bool) []Peer {
	h.mu.Lock()
	var cs []*client
	for _, c := range h.visits[appointment] {
		cs = append(cs, c)
	}
	h.mu.Unlock()
	sort.Slice(cs, func(i, j int) bool { return cs[i].since.Before(cs[j].since) })
	var out []Peer
	for _, c := range cs {
		c.mu.Lock()
		a := c.admitted
		c.mu.Unlock()
		if a == admitted {
			out = append(out, c.peer)
		}
	}
	return out
}

// others returns the appointment's clients except c.
func (h *Hub) others(c *client) []*client {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*client
	for _, o := range h.visits[c.peer.Appointment] {
		if o != c {
			out = append(out, o)
		}
	}
	return out
}

// Serve runs one participant's connection until it closes, ctx ends or the
// participant leaves. The caller has checked who p is and that p belongs to
// the appointment.
func (h *Hub) Serve(ctx context.Context, conn *wsconn.Conn, p Peer) error {
	c := &client{hub: h, peer: p, conn: conn, since: time.Now(), admitted: p.Role == RolePhysician}
	h.mu.Lock()
	room := h.visits[p.Appointment]
	if room == nil {
		room = make(map[string]*client)
		h.visits[p.Appointment] = room
	}
	old := room[p.ID]
	room[p.ID] = c
	h.mu.Unlock()
	if old != nil {
		// The same person connected again (a reload, a second tab): the
		// newer connection wins.
		old.conn.CloseWith(websocket.ClosePolicyViolation, "replaced by a newer connection")
		<-old.done()
		if part := old.participant(); part != nil {
			part.Close() // leave the media room before this connection joins it
		}
	}
	defer h.leave(c)

	state := StateWaiting
	if c.admitted {
		state = StateAdmitted
		if err := c.join(); err != nil {
			c.sendError("could not start the call: %v", err)
			return err
		}
	}
	c.send(Message{Type: TypeWelcome, Participant: p.ID, Role: p.Role, State: state, ICEServers: h.sfu.ICEServers()})
	if p.Role == RolePhysician {
		c.send(h.lobbyMessage(p.Appointment))
	} else {
		h.broadcastLobby(p.Appointment)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return nil // closed by the client, the network or ctx
		}
		var m Message
		if err := json.Unmarshal(data, &m); err != nil {
			c.sendError("message is not JSON: %v", err)
			continue
		}
		if m.Type == TypeLeave {
			return nil
		}
		c.handle(m)
	}
}

func (c *client) done() <-chan struct{} { return c.conn.Done() }

func (c *client) handle(m Message) {
	switch m.Type {
	case TypeAdmit:
		c.hub.admit(c, m.Participant)
	case TypePublishOffer:
		part := c.participant()
		if part == nil {
			c.sendError("publish-offer before being admitted")
			return
		}
		answer, err := part.Publish(m.SDP)
		if err != nil {
			c.sendError("the publish offer was refused: %v", err)
			return
		}
		c.send(Message{Type: TypePublishAnswer, SDP: answer})
	case TypeSubscribeAnswer:
		part := c.participant()
		if part == nil {
			c.sendError("subscribe-answer before being admitted")
			return
		}
		if err := part.AnswerSubscribe(m.SDP); err != nil {
			c.sendError("the subscribe answer was refused: %v", err)
		}
	case TypeCandidate:
		part := c.participant()
		if part == nil || m.Candidate == nil {
			return // an end-of-candidates marker, or too early: nothing to do
		}
		if err := part.AddCandidate(m.Target, *m.Candidate); err != nil {
			c.sendError("%v", err)
		}
	default:
		c.sendError("unknown message type %q", m.Type)
	}
}

func (c *client) participant() *media.Participant {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.part
}

// join enters the media room.
func (c *client) join() error {
	part, err := c.hub.sfu.Join(c.peer.Appointment, c.peer.ID, c)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.part = part
	c.mu.Unlock()
	return nil
}

// admit lets a waiting participant into the call; only physicians may.
func (h *Hub) admit(by *client, id string) {
	if by.peer.Role != RolePhysician {
		by.sendError("only the physician can admit participants")
		return
	}
	h.mu.Lock()
	target := h.visits[by.peer.Appointment][id]
	h.mu.Unlock()
	if target == nil {
		by.sendError("%s is no longer waiting", id)
		return
	}
	target.mu.Lock()
	already := target.admitted
	target.admitted = true
	target.mu.Unlock()
	if already {
		return
	}
	if err := target.join(); err != nil {
		by.sendError("could not admit %s: %v", target.peer.Name, err)
		return
	}
	h.log.Info("participant admitted", "appointment", by.peer.Appointment, "participant", id, "by", by.peer.ID)
	target.send(Message{Type: TypeAdmitted})
	h.broadcastLobby(by.peer.Appointment)
}

func (h *Hub) lobbyMessage(appointment int64) Message {
	w := []Waiting{}
	for _, p := range h.Waiting(appointment) {
		w = append(w, Waiting{Participant: p.ID, Name: p.Name})
	}
	return Message{Type: TypeLobby, Waiting: &w}
}

// broadcastLobby tells the appointment's physicians who is waiting.
func (h *Hub) broadcastLobby(appointment int64) {
	m := h.lobbyMessage(appointment)
	h.mu.Lock()
	var phys []*client
	for _, c := range h.visits[appointment] {
		if c.peer.Role == RolePhysician {
			phys = append(phys, c)
		}
	}
	h.mu.Unlock()
	for _, c := range phys {
		c.send(m)
	}
}

// leave removes c from its appointment and the media room.
func (h *Hub) leave(c *client) {
	h.mu.Lock()
	room := h.visits[c.peer.Appointment]
	replaced := room[c.peer.ID] != c
	if !replaced {
		delete(room, c.peer.ID)
		if len(room) == 0 {
			delete(h.visits, c.peer.Appointment)
		}
	}
	h.mu.Unlock()
	if part := c.participant(); part != nil {
		part.Close()
	}
	c.conn.Close()
	if replaced {
		return
	}
	for _, o := range h.others(c) {
		o.send(Message{Type: TypePeerLeft, Participant: c.peer.ID})
	}
	h.broadcastLobby(c.peer.Appointment)
}
