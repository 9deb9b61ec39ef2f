package signaling

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/wsconn"
)

// errLeft reports an admission of a participant who has just disconnected.
var errLeft = errors.New("participant has left")

// client is one participant's session: it outlives a lost connection for
// the hub's grace period, so that the client can resume it. It is the
// media.Signaler of its participant in the SFU.
type client struct {
	hub      *Hub
	peer     Peer
	since    time.Time
	finished chan struct{} // closed when the session has ended and left
	joined   chan struct{} // closed when join has finished, joined or not
	replaced atomic.Bool   // a new join of the same participant ended it
	removed  atomic.Bool   // Hub.Remove ended it
	endOnce  sync.Once

	// outMu guards the connection and the numbering of messages, so that
	// messages go out, and are kept for a resume, in one order.
	outMu    sync.Mutex
	conn     *wsconn.Conn  // nil while the connection is lost
	connDone chan struct{} // closed when conn's reader has finished
	out      outbox
	token    string      // the resume token; "" while a resume is under way
	lastIn   uint64      // the last numbered client message handled
	grace    *time.Timer // ends the session if it is not resumed in time
	ended    bool

	mu       sync.Mutex
	admitted bool
	left     bool
	part     *media.Participant
}

var _ media.Signaler = (*client)(nil)

// send numbers m, keeps it for a resume and sends it if connected.
func (c *client) send(m Message) { c.deliver(m, false) }

// deliver numbers m, keeps it for a resume and sends it if connected. A
// live message is worth sending only now (a quality report): while the
// connection is lost it is neither sent nor numbered nor kept.
func (c *client) deliver(m Message, live bool) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.ended || live && c.conn == nil {
		return
	}
	m.Seq = c.out.seq + 1
	b, err := json.Marshal(m)
	if err != nil {
		c.hub.log.Error("cannot encode message", "type", m.Type, "err", err)
		return
	}
	c.out.seq++
	c.out.add(b)
	if c.conn != nil {
		// A full queue closes the connection (wsconn.ErrSlow); the
		// session then waits for a resume.
		_ = c.conn.Send(b)
	}
}

func (c *client) sendError(format string, args ...any) {
	c.send(Message{Type: TypeError, Error: fmt.Sprintf(format, args...)})
}

// PublishAnswer implements media.Signaler.
func (c *client) PublishAnswer(sdp string) {
	c.send(Message{Type: TypePublishAnswer, SDP: sdp})
}

// SubscribeOffer implements media.Signaler.
func (c *client) SubscribeOffer(sdp string, tracks []media.TrackInfo) {
	if tracks == nil {
		tracks = []media.TrackInfo{}
	}
	c.send(Message{Type: TypeSubscribeOffer, SDP: sdp, Tracks: tracks})
}

// Candidate implements media.Signaler.
func (c *client) Candidate(target string, cand webrtc.ICECandidateInit) {
	c.send(Message{Type: TypeCandidate, Target: target, Candidate: &cand})
}

// handle acts on one message from the client. It returns false when the
// client leaves.
func (c *client) handle(data []byte) bool {
	var m Message
	if err := json.Unmarshal(data, &m); err != nil {
		c.sendError("message is not a JSON object: %v", err)
		return true
	}
	if !c.acceptSeq(m.Seq) {
		return true // handled before the connection was lost
	}
	switch m.Type {
	case TypeLeave:
		return false
	case TypeAdmit:
		c.hub.admit(c, m.Participant)
	case TypePublishOffer:
		part := c.participant()
		if part == nil {
			c.sendError("publish-offer before being admitted")
			return true
		}
		part.SetScreen(m.Screen)
		if err := part.Publish(m.SDP); err != nil {
			c.sendError("publish-offer refused: %v", err)
		}
	case TypeSubscribeAnswer:
		part := c.participant()
		if part == nil {
			c.sendError("subscribe-answer before being admitted")
			return true
		}
		if err := part.AnswerSubscribe(m.SDP); err != nil {
			c.sendError("subscribe-answer refused: %v", err)
		}
	case TypeCandidate:
		if m.Candidate == nil {
			return true // the client's gathering is over; nothing to do
		}
		part := c.participant()
		if part == nil {
			c.sendError("candidate before being admitted")
			return true
		}
		if err := part.AddCandidate(m.Target, *m.Candidate); err != nil {
			c.sendError("candidate refused: %v", err)
		}
	case TypeTile:
		part := c.participant()
		if part == nil {
			c.sendError("tile before being admitted")
			return true
		}
		if m.Track == "" || m.Width == nil || m.Height == nil {
			c.sendError("tile needs track, width and height")
			return true
		}
		if err := part.SetTile(m.Track, *m.Width, *m.Height); err != nil {
			c.sendError("tile refused: %v", err)
		}
	case TypeICERestart:
		part := c.participant()
		if part == nil {
			c.sendError("ice-restart before being admitted")
			return true
		}
		part.RestartICE()
	case "":
		c.sendError("message has no type")
	default:
		c.sendError("unknown message type %q", m.Type)
	}
	return true
}

// participant returns c's media participant, or nil if c is not in the
// call. A client being admitted is told so before it joins the media room,
// so a request that arrives meanwhile waits for the join to finish.
func (c *client) participant() *media.Participant {
	if !c.isAdmitted() {
		return nil
	}
	<-c.joined
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.part
}

func (c *client) isAdmitted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.admitted
}

// admit marks a waiting client admitted; it reports false if it already was
// or has left.
func (c *client) admit() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.admitted || c.left {
		return false
	}
	c.admitted = true
	return true
}

// join enters the media room; it is called once, right after c is
// admitted.
func (c *client) join() error {
	defer close(c.joined)
	part, err := c.hub.sfu.Join(c.peer.Appointment, c.peer.ID, c.peer.Name, c)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.left { // the client went while joining
		c.mu.Unlock()
		part.Close()
		return errLeft
	}
	c.part = part
	c.mu.Unlock()
	go c.reportQuality()
	return nil
}

// markLeft records that c is gone and returns whether it was admitted and
// its media participant, if any.
func (c *client) markLeft() (admitted bool, part *media.Participant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.left = true
	part, c.part = c.part, nil
	return c.admitted, part
}
