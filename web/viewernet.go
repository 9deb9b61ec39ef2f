package web

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"time"
)

// viewerNetConn is a viewer socket's connection as gorilla/websocket sees
// it. A write never waits on the viewer: it hands the socket what it
// takes at once and keeps the rest, which goes out before anything else
// when the socket's writer goroutine flushes it (kept tells it to). So
// the goroutine that publishes a message can write it to an idle viewer
// itself, as a bare relay would, without starting a goroutine, and no
// write (a frame, a ping, a pong) ever holds gorilla's write lock while
// it waits: only flush waits, outside that lock, on the writer goroutine.
//
// That needs the socket's descriptor (a plain TCP connection); over TLS
// terminated here tw is nil, every write waits, and frames go through
// the writer goroutine.
type viewerNetConn struct {
	net.Conn
	tw *tryWriter // nil: writes wait
	// kept is called (under gorilla's write lock: it must not write) when
	// a write kept bytes; set it before the socket is used.
	kept func()

	mu       sync.Mutex
	rest     []byte // kept bytes, written before anything else
	flushing bool   // flush is writing what was kept: more goes to rest
}

func newViewerNetConn(c net.Conn) *viewerNetConn {
	return &viewerNetConn{Conn: c, tw: newTryWriter(rawConnOf(c))}
}

// Write writes what of p the socket takes now and keeps the rest; p always
// counts as written unless the connection failed.
func (n *viewerNetConn) Write(p []byte) (int, error) {
	if n.tw == nil {
		return n.Conn.Write(p)
	}
	n.mu.Lock()
	if len(n.rest) > 0 || n.flushing {
		n.rest = append(n.rest, p...)
		n.mu.Unlock()
		return len(p), nil
	}
	done, blocked, err := n.tw.try(p)
	if err != nil || !blocked {
		n.mu.Unlock()
		return done, err
	}
	n.rest = append([]byte(nil), p[done:]...)
	n.mu.Unlock()
	if n.kept != nil {
		n.kept()
	}
	return len(p), nil
}

// SetWriteDeadline sets the deadline of the writes that wait, which only
// flush makes when writes are tried: it sets its own. gorilla/websocket
// sets one before every frame, and on the socket each would re-arm a
// runtime timer, which a write that never waits has no use for.
func (n *viewerNetConn) SetWriteDeadline(t time.Time) error {
	if n.tw == nil {
		return n.Conn.SetWriteDeadline(t)
	}
	return nil
}

// backedUp reports whether bytes are kept.
func (n *viewerNetConn) backedUp() bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.rest) > 0 || n.flushing
}

// flush writes the kept bytes, and whatever was kept meanwhile, waiting at
// most timeout for each round. It clears the deadline when done: the
// writes tried afterwards must not find it passed.
func (n *viewerNetConn) flush(timeout time.Duration) error {
	if n == nil {
		return nil
	}
	for waited := false; ; waited = true {
		n.mu.Lock()
		buf := n.rest
		n.rest = nil // a quiet socket keeps no buffer
		n.flushing = len(buf) > 0
		n.mu.Unlock()
		if len(buf) == 0 {
			if waited {
				return n.Conn.SetWriteDeadline(time.Time{})
			}
			return nil
		}
		_ = n.Conn.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := n.Conn.Write(buf); err != nil {
			return err
		}
	}
}

// viewerHijacker hands gorilla's Upgrade a viewerNetConn around the
// hijacked connection.
type viewerHijacker struct {
	http.ResponseWriter
	conn *viewerNetConn
}

func (h *viewerHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = newViewerNetConn(c)
	return h.conn, brw, nil
}
