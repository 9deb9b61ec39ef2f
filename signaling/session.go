package signaling

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bedside-health/bedside/wsconn"
)

// DefaultResumeGrace is how long a participant whose connection was lost
// is kept, with its media, for the client to resume.
const DefaultResumeGrace = 20 * time.Second

// Bounds of the messages kept for resending after a resume. They stay
// below wsconn's default send queue (256), which a replay fills at once.
const (
	maxReplayMsgs  = 128
	maxReplayBytes = 256 << 10
)

// ErrResumeRefused is what Resume reports (wrapped, with the reason) when it
// could not resume and served a new join instead.
var ErrResumeRefused = errors.New("resume refused")

// outbox numbers a participant's server messages and keeps the latest for
// resending after a resume.
type outbox struct {
	seq   uint64   // of the last message added
	msgs  [][]byte // the kept messages; the last one is seq
	bytes int
}

func (o *outbox) add(b []byte) {
	o.msgs = append(o.msgs, b)
	o.bytes += len(b)
	for len(o.msgs) > maxReplayMsgs || (o.bytes > maxReplayBytes && len(o.msgs) > 1) {
		o.bytes -= len(o.msgs[0])
		o.msgs[0] = nil
		o.msgs = o.msgs[1:]
	}
}

// since returns the messages after seq last, or false if some of them are
// no longer kept (or last is from the future).
func (o *outbox) since(last uint64) ([][]byte, bool) {
	if last > o.seq {
		return nil, false
	}
	missed := o.seq - last
	if missed > uint64(len(o.msgs)) {
		return nil, false
	}
	return o.msgs[uint64(len(o.msgs))-missed:], true
}

// newToken returns a fresh resume token: 32 random bytes, base64url.
func newToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// SetResumeGrace sets how long a participant whose connection was lost is
// kept for a resume (DefaultResumeGrace unless set; 0 or less removes it at
// once). It applies to connections lost from then on.
func (h *Hub) SetResumeGrace(d time.Duration) { h.grace.Store(int64(d)) }

// Resume serves a connection that asks to resume participant p's session
// with its token and the seq of the last server message it received. On
// success the client gets resumed, then every server message after last,
// and keeps its peer connections, publications and subscriptions: the
// others notice nothing. Otherwise (an unknown, stale or foreign token, a
// session already removed, or missed messages no longer kept) it gets
// resume-failed and the connection is served as a new join, as by Serve.
// The caller has authenticated p, as for Serve.
func (h *Hub) Resume(ctx context.Context, conn *wsconn.Conn, p Peer, token string, last uint64) error {
	if err := p.validate(); err != nil {
		return h.Serve(ctx, conn, p)
	}
	c, err := h.resume(ctx, conn, p, token, last)
	if err != nil {
		h.log.InfoContext(ctx, "resume refused", "appointment", p.Appointment, "participant", p.ID, "reason", err)
		b, _ := json.Marshal(Message{Type: TypeResumeFailed, Error: err.Error()})
		_ = conn.Send(b)
		if serr := h.Serve(ctx, conn, p); serr != nil {
			return serr
		}
		return fmt.Errorf("%w: %v", ErrResumeRefused, err)
	}
	h.log.InfoContext(ctx, "participant resumed", "appointment", p.Appointment, "participant", p.ID)
	return h.run(ctx, c, conn)
}

// resume makes conn the connection of p's session and replays what the
// client missed; it returns the session.
func (h *Hub) resume(ctx context.Context, conn *wsconn.Conn, p Peer, token string, last uint64) (*client, error) {
	h.mu.Lock()
	c := h.visits[p.Appointment][p.ID]
	h.mu.Unlock()
	if c == nil {
		return nil, errors.New("the session has ended: join again")
	}
	c.outMu.Lock()
	switch {
	case c.ended:
		c.outMu.Unlock()
		return nil, errors.New("the session has ended: join again")
	case token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(c.token)) != 1:
		c.outMu.Unlock()
		return nil, errors.New("the resume token is not valid: join again")
	}
	if _, ok := c.out.since(last); !ok {
		c.outMu.Unlock()
		return nil, errors.New("missed messages are no longer held: join again")
	}
	// Take the session from its old connection, if the server still
	// thinks it open, and wait for that connection's reader to finish, so
	// that one reader at a time handles the session's messages.
	old, oldDone := c.conn, c.connDone
	c.conn = nil
	c.token = "" // single use
	if c.grace != nil {
		c.grace.Stop()
		c.grace = nil
	}
	c.outMu.Unlock()
	if old != nil {
		old.Close()
	}
	if oldDone != nil {
		select {
		case <-oldDone:
		case <-ctx.Done():
			c.end()
			return nil, ctx.Err()
		}
	}
	c.outMu.Lock()
	defer c.outMu.Unlock()
	missed, ok := c.out.since(last)
	if c.ended || !ok {
		go c.end() // it cannot be resumed; the new join replaces it anyway
		return nil, errors.New("the session ended while resuming: join again")
	}
	c.token = newToken()
	b, err := json.Marshal(Message{Type: TypeResumed, Resume: c.token, Last: c.lastIn})
	if err != nil {
		return nil, fmt.Errorf("encode resumed: %w", err)
	}
	_ = conn.Send(b)
	for _, m := range missed {
		_ = conn.Send(m)
	}
	c.conn, c.connDone = conn, make(chan struct{})
	return c, nil
}

// attach makes conn the client's connection and returns the token to give
// it in the welcome.
func (c *client) attach(conn *wsconn.Conn) string {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	c.conn, c.connDone = conn, make(chan struct{})
	c.token = newToken()
	return c.token
}

// currentConn returns the client's connection, nil while it has none.
func (c *client) currentConn() *wsconn.Conn {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.conn
}

// runDone returns the channel closed when conn's reader has finished.
func (c *client) runDone(conn *wsconn.Conn) chan struct{} {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.conn == conn {
		return c.connDone
	}
	return nil
}

// acceptSeq reports whether a client message numbered seq (0: not
// numbered) is new, and records it as handled.
func (c *client) acceptSeq(seq uint64) bool {
	if seq == 0 {
		return true
	}
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if seq <= c.lastIn {
		return false
	}
	c.lastIn = seq
	return true
}

// detach records that conn was lost. The session stays, with its media,
// for the hub's grace period, then ends unless resumed.
func (c *client) detach(conn *wsconn.Conn) {
	c.outMu.Lock()
	if c.conn != conn || c.ended {
		c.outMu.Unlock()
		return
	}
	c.conn = nil
	grace := time.Duration(c.hub.grace.Load())
	if grace > 0 {
		c.grace = time.AfterFunc(grace, c.expire)
	}
	c.outMu.Unlock()
	if grace <= 0 {
		c.end()
	}
}

// expire ends a session still without a connection at the end of its grace
// period.
func (c *client) expire() {
	c.outMu.Lock()
	waiting := c.conn == nil && !c.ended && c.token != ""
	c.outMu.Unlock()
	if !waiting {
		return // resumed meanwhile (or being resumed)
	}
	c.hub.log.Info("participant not back in time", "appointment", c.peer.Appointment, "participant", c.peer.ID)
	c.end()
}

// end removes the session: its connection closes, its media participant
// leaves and the others are told. It is safe to call more than once.
func (c *client) end() {
	c.endOnce.Do(func() {
		c.outMu.Lock()
		c.ended = true
		conn := c.conn
		c.conn = nil
		if c.grace != nil {
			c.grace.Stop()
			c.grace = nil
		}
		c.outMu.Unlock()
		c.hub.leave(c, conn)
		close(c.finished)
	})
}
