package signaling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/wsconn"
)

// ErrReplaced is returned by Serve when a newer connection of the same
// participant took over.
var ErrReplaced = errors.New("replaced by a newer connection")

// Peer is an authenticated, authorised participant of one appointment.
type Peer struct {
	ID          string // unique per person, stable across reconnections
	Name        string // shown to the other participants
	Role        string // RolePhysician or RolePatient
	Appointment int64
}

func (p Peer) validate() error {
	if p.ID == "" {
		return errors.New("peer has no id")
	}
	if p.Role != RolePhysician && p.Role != RolePatient {
		return fmt.Errorf("peer role %q: want %q or %q", p.Role, RolePhysician, RolePatient)
	}
	return nil
}

// Hub holds every connected participant of this node, by appointment, and
// their waiting room. It is safe for concurrent use.
type Hub struct {
	sfu *media.SFU
	log *slog.Logger

	mu     sync.Mutex
	visits map[int64]map[string]*client // by appointment, then Peer.ID
}

// NewHub returns a hub forwarding media through sfu.
func NewHub(sfu *media.SFU, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{sfu: sfu, log: log, visits: make(map[int64]map[string]*client)}
}

// Waiting lists who waits to be admitted to an appointment, by arrival.
func (h *Hub) Waiting(appointment int64) []Peer { return h.list(appointment, false) }

// InCall lists who is admitted to an appointment's call, by arrival.
func (h *Hub) InCall(appointment int64) []Peer { return h.list(appointment, true) }

func (h *Hub) list(appointment int64, admitted bool) []Peer {
	cs := h.clients(appointment, nil)
	slices.SortFunc(cs, func(a, b *client) int { return a.since.Compare(b.since) })
	var out []Peer
	for _, c := range cs {
		if c.isAdmitted() == admitted {
			out = append(out, c.peer)
		}
	}
	return out
}

// clients returns an appointment's clients other than except.
func (h *Hub) clients(appointment int64, except *client) []*client {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*client, 0, len(h.visits[appointment]))
	for _, c := range h.visits[appointment] {
		if c != except {
			out = append(out, c)
		}
	}
	return out
}

// Serve runs one participant's connection until it closes, ctx ends, the
// participant leaves or a newer connection of the same participant replaces
// it. The caller has authenticated p and checked that p belongs to the
// appointment; Serve trusts it. Serve reads from conn (it is the one reader)
// and closes it before returning. It returns nil when the client closed or
// left, ErrReplaced, ctx's error, or why the connection failed.
func (h *Hub) Serve(ctx context.Context, conn *wsconn.Conn, p Peer) error {
	defer conn.Close()
	c := &client{hub: h, peer: p, conn: conn, since: time.Now(), finished: make(chan struct{}), joined: make(chan struct{}),
		admitted: p.Role == RolePhysician} // physicians are admitted on connect
	if err := p.validate(); err != nil {
		c.sendError("%v", err)
		conn.CloseWith(websocket.ClosePolicyViolation, "invalid participant")
		return err
	}
	if err := h.claim(ctx, c); err != nil {
		return err
	}
	defer close(c.finished)
	defer h.leave(c)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	state := StateWaiting
	if c.isAdmitted() {
		state = StateAdmitted
	}
	ice := h.sfu.ICEServers()
	if ice == nil {
		ice = []webrtc.ICEServer{}
	}
	c.send(Message{Type: TypeWelcome, Participant: p.ID, Role: p.Role, State: state, ICEServers: ice})
	h.log.InfoContext(ctx, "participant connected", "appointment", p.Appointment, "participant", p.ID, "role", p.Role, "state", state)
	if state == StateAdmitted {
		if err := c.join(); err != nil {
			c.sendError("could not start the call: %v", err)
			conn.CloseWith(websocket.CloseInternalServerErr, "could not start the call")
			return err
		}
	}
	if p.Role == RolePhysician {
		c.send(h.lobbyMessage(p.Appointment))
	} else {
		h.broadcastLobby(p.Appointment)
	}

	for {
		kind, data, err := conn.Read(ctx)
		if err != nil {
			return c.readError(ctx, err)
		}
		if kind != websocket.TextMessage {
			c.sendError("binary messages are not part of the protocol")
			continue
		}
		if !c.handle(data) {
			conn.CloseWith(websocket.CloseNormalClosure, "left")
			return nil
		}
	}
}

// claim registers c as its participant's connection, first closing any
// older connection of the same participant and waiting until that one has
// left the call. A participant who was admitted stays admitted.
func (h *Hub) claim(ctx context.Context, c *client) error {
	p := c.peer
	for {
		h.mu.Lock()
		visit := h.visits[p.Appointment]
		if visit == nil {
			visit = make(map[string]*client)
			h.visits[p.Appointment] = visit
		}
		old := visit[p.ID]
		if old == nil {
			visit[p.ID] = c
			h.mu.Unlock()
			return nil
		}
		h.mu.Unlock()
		h.log.InfoContext(ctx, "connection replaced", "appointment", p.Appointment, "participant", p.ID)
		old.replaced.Store(true)
		old.conn.CloseWith(websocket.ClosePolicyViolation, ErrReplaced.Error())
		select {
		case <-old.finished:
		case <-ctx.Done():
			return ctx.Err()
		}
		if old.isAdmitted() {
			c.mu.Lock()
			c.admitted = true
			c.mu.Unlock()
		}
	}
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
		by.sendError("%q is not in the waiting room", id)
		return
	}
	if !target.admit() {
		return // already admitted: a second click is harmless
	}
	target.send(Message{Type: TypeAdmitted})
	if err := target.join(); err != nil {
		if !errors.Is(err, errLeft) {
			by.sendError("could not admit %s: %v", target.peer.Name, err)
		}
		return
	}
	h.log.Info("participant admitted", "appointment", by.peer.Appointment, "participant", id, "by", by.peer.ID)
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
	for _, c := range h.clients(appointment, nil) {
		if c.peer.Role == RolePhysician {
			c.send(m)
		}
	}
}

// leave removes c from its appointment and the media room, and tells the
// others: peer-left to those in the call before the renegotiation that
// withdraws c's tracks, and a new lobby to the physicians.
func (h *Hub) leave(c *client) {
	appt := c.peer.Appointment
	h.mu.Lock()
	visit := h.visits[appt]
	current := visit[c.peer.ID] == c
	if current {
		delete(visit, c.peer.ID)
		if len(visit) == 0 {
			delete(h.visits, appt)
		}
	}
	h.mu.Unlock()
	wasAdmitted, part := c.markLeft()
	if wasAdmitted {
		for _, o := range h.clients(appt, c) {
			if o.isAdmitted() {
				o.send(Message{Type: TypePeerLeft, Participant: c.peer.ID})
			}
		}
	}
	if part != nil {
		part.Close()
	}
	c.conn.Close()
	if current {
		h.broadcastLobby(appt)
	}
	h.log.Info("participant disconnected", "appointment", appt, "participant", c.peer.ID)
}
