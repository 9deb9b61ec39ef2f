package signaling

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/wsconn"
)

// ErrReplaced is returned by Serve when a newer connection of the same
// participant took over.
var ErrReplaced = errors.New("replaced by a newer connection")

// ErrRemoved is returned by Serve when Remove ended the participant's
// session.
var ErrRemoved = errors.New("removed from the call")

// Peer is an authenticated, authorised participant of one appointment.
type Peer struct {
	ID          string // unique per person, stable across reconnections
	Name        string // shown to the other participants
	Role        string // one of the Role constants
	Appointment int64
	// Host is the host name the participant reached the server by; the
	// embedded TURN relay is named by it unless configured otherwise.
	Host string
	// Browser names the browser the participant connects from (derived
	// from its session or a per-browser secret, never a credential): a
	// participant admitted on one connection is admitted on a newer one
	// only from the same browser. "" matches no browser.
	Browser string
}

// sameBrowser reports whether a and b connect from one known browser.
func sameBrowser(a, b Peer) bool {
	return a.Browser != "" && subtle.ConstantTimeCompare([]byte(a.Browser), []byte(b.Browser)) == 1
}

func (p Peer) validate() error {
	if p.ID == "" {
		return errors.New("peer has no id")
	}
	if !ValidRole(p.Role) {
		return fmt.Errorf("peer role %q is not a call role", p.Role)
	}
	return nil
}

// ErrFull is returned by Serve when admitting the participant would exceed
// one of the hub's Limits; the client was told to try again later.
var ErrFull = errors.New("call capacity reached")

// ErrVisitFull is returned by Serve (and matches ErrFull) when the visit
// already holds Limits.PerVisit participants.
var ErrVisitFull = fmt.Errorf("%w (per-visit)", ErrFull)

// ErrTooFast is returned by Serve when a client sent messages faster than its
// connection's rate allows; the client was told so and disconnected.
var ErrTooFast = errors.New("too many signaling messages")

// Limits bound what one node holds, so a surge degrades into clear refusals
// rather than into calls nobody can hear. Zero means no limit.
type Limits struct {
	Visits       int // visits (waiting rooms and calls) open at once
	Participants int // connected participants across all visits
	PerVisit     int // participants in one visit
}

// DefaultPerVisit is how many people one visit holds: the patient, the
// physician and up to four more (interpreter, family, a second physician).
const DefaultPerVisit = 6

// reserved is how many of a visit's places are kept for its physician and
// its patient: guests and streams (WHIP cameras, WHEP viewers) never take
// them, so neither, waiting, admitted or streaming, can lock either out.
const reserved = 2

// MaxGuests is how many guests one visit holds at the default limit.
const MaxGuests = DefaultPerVisit - reserved

// isGuest reports whether role is a guest's (by a guest link).
func isGuest(role string) bool {
	return role == RoleInterpreter || role == RoleFamily || role == RoleGuestPhysician
}

// Hub holds every connected participant of this node, by appointment, and
// their waiting room. It is safe for concurrent use.
type Hub struct {
	sfu *media.SFU
	log *slog.Logger
	// limits and refused are set before the hub serves anyone.
	limits  Limits
	refused func(limit string)
	grace   atomic.Int64 // how long (ns) a lost participant waits for a resume
	quality atomic.Int64 // how often (ns) participants are told the call's quality

	mu           sync.Mutex
	visits       map[int64]map[string]*client // by appointment, then Peer.ID
	streams      map[int64]map[string]*Stream // by appointment, then Stream.ID
	participants int                          // clients and streams in visits
}

// NewHub returns a hub forwarding media through sfu.
func NewHub(sfu *media.SFU, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{sfu: sfu, log: log, visits: make(map[int64]map[string]*client), streams: make(map[int64]map[string]*Stream),
		limits: Limits{PerVisit: DefaultPerVisit}, refused: func(string) {}}
	h.grace.Store(int64(DefaultResumeGrace))
	h.quality.Store(int64(DefaultQualityInterval))
	return h
}

// SetLimits sets the hub's limits and the function told the name of each
// limit that refuses someone ("visits", "participants", "per-visit",
// "rate", "frame"), for counting. Call it before the hub serves anyone.
func (h *Hub) SetLimits(l Limits, refused func(limit string)) {
	h.limits = l
	if refused != nil {
		h.refused = refused
	}
}

// Waiting lists who waits to be admitted to an appointment, by arrival.
func (h *Hub) Waiting(appointment int64) []Peer { return h.list(appointment, false) }

// Admitted reports whether participant id is in an appointment's call on
// this node: connected (or within its resume grace) and admitted, not
// waiting. The web layer asks it before giving a guest what only those in
// the call may see.
func (h *Hub) Admitted(appointment int64, id string) bool {
	h.mu.Lock()
	c := h.visits[appointment][id]
	h.mu.Unlock()
	return c != nil && c.isAdmitted()
}

// AdmittedFrom reports whether a participant is in the call from the
// browser named browser (Peer.Browser): a link forwarded to another browser
// is not in the call as far as that browser is concerned.
func (h *Hub) AdmittedFrom(appointment int64, id, browser string) bool {
	h.mu.Lock()
	c := h.visits[appointment][id]
	h.mu.Unlock()
	return c != nil && c.isAdmitted() && sameBrowser(c.peer, Peer{Browser: browser})
}

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

// Serve joins participant p anew on conn and runs the connection until it
// closes, ctx ends, the participant leaves or a newer connection of the
// same participant replaces it. A connection lost without a close frame
// leaves the session in place for the hub's grace period, for the client
// to Resume. The caller has authenticated p and checked that p belongs to
// the appointment; Serve trusts it. Serve reads from conn (it is the one
// reader) and closes it before returning. It returns nil when the client
// closed or left, ErrReplaced, ctx's error, or why the connection failed.
func (h *Hub) Serve(ctx context.Context, conn *wsconn.Conn, p Peer) error {
	c := &client{hub: h, peer: p, since: time.Now(), finished: make(chan struct{}), joined: make(chan struct{}),
		admitted: p.Role == RolePhysician} // physicians are admitted on connect
	token := c.attach(conn)
	if err := p.validate(); err != nil {
		c.sendError("%v", err)
		conn.CloseWith(websocket.ClosePolicyViolation, "invalid participant")
		conn.Close()
		return err
	}
	if err := h.claim(ctx, c); err != nil {
		switch {
		case errors.Is(err, ErrVisitFull) && isGuest(p.Role):
			c.sendError("%v: this visit already has all the guests it holds (%d besides the physician and the patient); someone must leave first",
				err, max(h.limits.PerVisit-reserved, 0))
			conn.CloseWith(websocket.CloseTryAgainLater, "visit full")
		case errors.Is(err, ErrVisitFull):
			c.sendError("%v: this visit already has %d participants, the most it holds; someone must leave first", err, h.limits.PerVisit)
			conn.CloseWith(websocket.CloseTryAgainLater, "visit full")
		case errors.Is(err, ErrFull):
			c.sendError("%v: please try again in a minute", err)
			conn.CloseWith(websocket.CloseTryAgainLater, "capacity reached")
		}
		conn.Close()
		return err
	}

	state := StateWaiting
	if c.isAdmitted() {
		state = StateAdmitted
	}
	// Fresh TURN credentials for this connection, named after the visit
	// and the participant.
	ice := h.sfu.ICEServers(fmt.Sprintf("v%d-%s", p.Appointment, p.ID), p.Host)
	if ice == nil {
		ice = []webrtc.ICEServer{}
	}
	c.send(Message{Type: TypeWelcome, Participant: p.ID, Role: p.Role, State: state, ICEServers: ice, Resume: token})
	h.log.InfoContext(ctx, "participant connected", "appointment", p.Appointment, "participant", p.ID, "role", p.Role, "state", state)
	if state == StateAdmitted {
		if err := c.join(); err != nil {
			c.sendError("could not start the call: %v", err)
			conn.CloseWith(websocket.CloseInternalServerErr, "could not start the call")
			c.end()
			return err
		}
		h.tellViewers(c)
	}
	if p.Role == RolePhysician {
		c.send(h.lobbyMessage(p.Appointment))
	} else {
		h.broadcastLobby(p.Appointment)
	}
	return h.run(ctx, c, conn)
}

// run reads c's messages from conn until it closes. It ends the session
// when the client leaves or closes, when the server closes conn or ctx
// ends; a connection that is lost detaches from the session instead.
func (h *Hub) run(ctx context.Context, c *client, conn *wsconn.Conn) error {
	defer conn.Close()
	if done := c.runDone(conn); done != nil {
		defer close(done)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	for {
		kind, data, err := conn.Read(ctx)
		if errors.Is(err, wsconn.ErrTooFast) {
			h.refused("rate")
			c.sendError("too many messages: slow down and reconnect")
			conn.CloseWith(websocket.ClosePolicyViolation, "too many messages")
			c.end()
			return ErrTooFast
		}
		if err != nil {
			return h.lost(ctx, c, conn, err)
		}
		if kind != websocket.TextMessage {
			c.sendError("binary messages are not part of the protocol")
			continue
		}
		if !c.handle(data) {
			conn.CloseWith(websocket.CloseNormalClosure, "left")
			c.end()
			return nil
		}
	}
}

// lost decides what the read error err that ended conn means for c's
// session, and returns Serve's result.
func (h *Hub) lost(ctx context.Context, c *client, conn *wsconn.Conn, err error) error {
	switch {
	case c.removed.Load():
		return ErrRemoved
	case c.replaced.Load():
		return ErrReplaced
	case c.currentConn() != conn:
		return ErrReplaced // resumed on a newer connection
	case ctx.Err() != nil:
		c.end()
		return ctx.Err()
	case errors.Is(err, websocket.ErrReadLimit):
		h.refused("frame") // gorilla has closed with 1009
		c.end()
		return fmt.Errorf("call connection: %w", err)
	case errors.Is(err, wsconn.ErrClosed), errors.Is(conn.Err(), wsconn.ErrClosed),
		websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived):
		// The client closed, or the server closed on purpose.
		c.end()
		return nil
	}
	if werr := conn.Err(); errors.Is(werr, wsconn.ErrSlow) {
		err = werr
	}
	h.log.InfoContext(ctx, "participant connection lost", "appointment", c.peer.Appointment, "participant", c.peer.ID, "err", err)
	c.detach(conn)
	return fmt.Errorf("call connection: %w", err)
}

// claim registers c as its participant's session, first ending any older
// session of the same participant (closing its connection, if any). A
// participant who was admitted stays admitted if the new connection comes
// from the same browser (a reload, a second tab); from another browser
// (a forwarded link, a join link opened by someone else) it waits in the
// lobby for the physician like anyone new. A new participant beyond the
// hub's limits is refused with ErrFull; one that replaces its own older
// connection never is.
func (h *Hub) claim(ctx context.Context, c *client) error {
	p := c.peer
	replacing := false
	for {
		h.mu.Lock()
		visit := h.visits[p.Appointment]
		old := visit[p.ID]
		if old == nil {
			if limit := h.full(p.Appointment, isGuest(p.Role)); limit != "" && !replacing {
				h.mu.Unlock()
				h.refused(limit)
				h.log.WarnContext(ctx, "participant refused", "appointment", p.Appointment, "participant", p.ID, "limit", limit)
				if limit == "per-visit" {
					return ErrVisitFull
				}
				return fmt.Errorf("%w (%s)", ErrFull, limit)
			}
			if visit == nil {
				visit = make(map[string]*client)
				h.visits[p.Appointment] = visit
			}
			visit[p.ID] = c
			h.participants++
			h.mu.Unlock()
			return nil
		}
		h.mu.Unlock()
		h.log.InfoContext(ctx, "connection replaced", "appointment", p.Appointment, "participant", p.ID)
		old.replaced.Store(true)
		if oc := old.currentConn(); oc != nil {
			oc.CloseWith(websocket.ClosePolicyViolation, ErrReplaced.Error())
		}
		old.end()
		select {
		case <-old.finished:
		case <-ctx.Done():
			return ctx.Err()
		}
		replacing = true
		if old.isAdmitted() && sameBrowser(old.peer, p) {
			c.mu.Lock()
			c.admitted = true
			c.mu.Unlock()
		}
	}
}

// principal reports whether role is the visit's physician's or patient's,
// for whom the visit keeps its reserved places.
func principal(role string) bool { return role == RolePhysician || role == RolePatient }

// full names the limit one more participant (a client or a stream) in the
// appointment's visit would exceed, or returns "". Anyone but the visit's
// physician and patient (a guest, a stream) must also leave their places
// free while they are absent. h.mu is held.
func (h *Hub) full(appointment int64, held bool) string {
	l := h.limits
	inVisit := len(h.visits[appointment]) + len(h.streams[appointment])
	keep := 0
	if held {
		keep = reserved
		for _, c := range h.visits[appointment] {
			if principal(c.peer.Role) && keep > 0 {
				keep--
			}
		}
	}
	switch {
	case inVisit == 0 && l.Visits > 0 && h.openVisits() >= l.Visits:
		return "visits"
	case l.PerVisit > 0 && inVisit+keep >= l.PerVisit:
		return "per-visit"
	case l.Participants > 0 && h.participants >= l.Participants:
		return "participants"
	}
	return ""
}

// openVisits counts the visits with a client or a stream; h.mu is held.
func (h *Hub) openVisits() int {
	n := len(h.visits)
	for a := range h.streams {
		if h.visits[a] == nil {
			n++
		}
	}
	return n
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
	h.tellViewers(target)
	h.broadcastLobby(by.peer.Appointment)
}

func (h *Hub) lobbyMessage(appointment int64) Message {
	w := []Waiting{}
	for _, p := range h.Waiting(appointment) {
		w = append(w, Waiting{Participant: p.ID, Name: p.Name, Role: p.Role})
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

// leave removes c from its appointment and the media room, closes conn
// (if not nil) and tells the others: peer-left to those in the call before
// the renegotiation that withdraws c's tracks, and a new lobby to the
// physicians.
func (h *Hub) leave(c *client, conn *wsconn.Conn) {
	appt := c.peer.Appointment
	h.mu.Lock()
	visit := h.visits[appt]
	current := visit[c.peer.ID] == c
	if current {
		delete(visit, c.peer.ID)
		h.participants--
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
	if conn != nil {
		conn.Close()
	}
	if current {
		h.broadcastLobby(appt)
	}
	h.log.Info("participant disconnected", "appointment", appt, "participant", c.peer.ID)
}

// Remove ends the session of participant id in an appointment, if there is
// one, telling its client why (reason, short) and closing its connection
// with 1008; it reports whether there was one. The web layer calls it when
// the credential the participant came with is withdrawn.
func (h *Hub) Remove(appointment int64, id, reason string) bool {
	h.mu.Lock()
	c := h.visits[appointment][id]
	h.mu.Unlock()
	if c == nil {
		return false
	}
	h.log.Info("participant removed", "appointment", appointment, "participant", id)
	c.removed.Store(true)
	c.sendError("%s", reason)
	if conn := c.currentConn(); conn != nil {
		conn.CloseWith(websocket.ClosePolicyViolation, reason)
	}
	c.end()
	return true
}
