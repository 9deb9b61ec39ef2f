package sigclient

import (
	"context"
	"fmt"
	"net/url"
	"strconv"

	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/wsconn"
)

// Drop cuts the signaling connection as a failing network does, with no
// close frame, and keeps the peer connections; Resume reconnects.
func (c *Client) Drop() {
	c.outMu.Lock()
	c.dropping = true
	conn := c.conn
	c.outMu.Unlock()
	_ = conn.Close()
}

// Resume reconnects after Drop (or after the server lost the connection) with the resume token and the last message
// received, as docs/protocol.md describes. The server answers resumed and
// resends what was missed, or resume-failed and a new welcome, which the
// client then handles as a new join.
func (c *Client) Resume(ctx context.Context) error {
	return c.ResumeWith(ctx, "")
}

// ResumeWith is Resume with another token than the one the server gave
// (for testing refusals); "" uses the client's own.
func (c *Client) ResumeWith(ctx context.Context, token string) error {
	c.outMu.Lock()
	old := c.conn
	if token == "" {
		token = c.token
	}
	last := c.lastIn
	c.outMu.Unlock()
	<-old.Done()
	u, err := url.Parse(c.url)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	q := u.Query()
	q.Set("resume", token)
	q.Set("last", strconv.FormatUint(last, 10))
	u.RawQuery = q.Encode()
	conn, err := c.dial(ctx, u.String())
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	c.outMu.Lock()
	c.conn = conn
	c.dropping = false
	c.outMu.Unlock()
	go c.read(conn)
	return nil
}

// Token returns the current resume token.
func (c *Client) Token() string {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.token
}

// Duplicates counts the server messages received more than once.
func (c *Client) Duplicates() int {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.dups
}

// sequence checks a server message's seq and acts on the session's
// messages; it reports false for a message received before.
func (c *Client) sequence(conn *wsconn.Conn, m signaling.Message) bool {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	switch m.Type {
	case signaling.TypeWelcome:
		c.token = m.Resume
	case signaling.TypeResumed:
		c.token = m.Resume
		// Resend what the server did not handle, in order.
		first := c.outSeq - uint64(len(c.sent)) + 1
		for i, b := range c.sent {
			if first+uint64(i) > m.Last {
				_ = conn.Send(b)
			}
		}
	case signaling.TypeResumeFailed:
		// A new session follows, numbered afresh.
		c.lastIn, c.outSeq, c.sent, c.token = 0, 0, nil, ""
		return true
	}
	if m.Seq == 0 {
		return true
	}
	if m.Seq <= c.lastIn {
		c.dups++
		return false
	}
	if m.Seq != c.lastIn+1 {
		c.fail(fmt.Errorf("server message %d after %d: messages missing", m.Seq, c.lastIn))
	}
	c.lastIn = m.Seq
	return true
}

// reset closes both peer connections before a new join.
func (c *Client) reset() {
	c.mu.Lock()
	pcs := []*webrtc.PeerConnection{c.pub.pc, c.sub.pc}
	c.pub = &link{target: signaling.TargetPublish}
	c.sub = &link{target: signaling.TargetSubscribe}
	c.published = false
	c.mu.Unlock()
	for _, pc := range pcs {
		if pc != nil {
			_ = pc.Close()
		}
	}
}

// RestartICE restarts ICE on both connections, as a browser does when its
// network changes: it offers the publish connection with new credentials
// and asks the server to do the same on the subscribe connection.
func (c *Client) RestartICE() error {
	// The subscribe connection first: what the user notices first is the
	// others' media, and the server handles messages in order.
	_ = c.Send(signaling.Message{Type: signaling.TypeICERestart})
	c.mu.Lock()
	pc := c.pub.pc
	c.mu.Unlock()
	if pc != nil {
		c.holdCandidates(c.pub)
		offer, err := pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
		if err == nil {
			err = pc.SetLocalDescription(offer)
		}
		if err != nil {
			return fmt.Errorf("restart publish ICE: %w", err)
		}
		// Sent, or kept for resending after a resume.
		_ = c.Send(signaling.Message{Type: signaling.TypePublishOffer, SDP: pc.LocalDescription().SDP})
		c.sdpSent(c.pub)
	}
	return nil
}

// holdCandidates holds l's candidates back until its next SDP has gone out.
func (c *Client) holdCandidates(l *link) {
	c.mu.Lock()
	l.sdpSent = false
	c.mu.Unlock()
}
