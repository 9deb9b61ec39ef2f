package web

import (
	"bufio"
	"encoding/binary"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
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

	mu        sync.Mutex
	rest      []byte // kept bytes, written before anything else
	flushing  bool   // flush is writing what was kept: more goes to rest
	closeSent bool   // gorilla/websocket wrote a close frame: no frame may follow
}

func newViewerNetConn(c net.Conn) *viewerNetConn {
	return &viewerNetConn{Conn: c, tw: newTryWriter(rawConnOf(c))}
}

// Write writes what of p the socket takes now and keeps the rest; p always
// counts as written unless the connection failed. Once the socket is a
// viewer's, gorilla/websocket writes here its control frames (pings,
// pongs, a close), each in one Write, and frames too large for writeText,
// whose every Write starts with a data frame's header or a JSON message:
// so a Write that starts with a close frame's first byte is a close.
func (n *viewerNetConn) Write(p []byte) (int, error) {
	if n.tw == nil {
		return n.Conn.Write(p)
	}
	n.mu.Lock()
	if len(p) > 0 && p[0] == finalBit|websocket.CloseMessage {
		n.closeSent = true
	}
	return n.writeLocked(p)
}

// writeLocked is Write with n.mu held, which it unlocks.
func (n *viewerNetConn) writeLocked(p []byte) (int, error) {
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

// finalBit marks the last frame of a message (RFC 6455, 5.2).
const finalBit = 0x80

// maxTextFrame is the largest frame writeText writes, and so the largest
// buffer frameBufs keeps. A larger one (a replay) goes through
// gorilla/websocket's writer, which streams it through a small buffer
// rather than holding all of it.
const maxTextFrame = 64 << 10

// frameBufs hold frames while writeText writes them: shared by every
// viewer, so an idle one holds none.
var frameBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// textFrameSize is the payload of the frame holding msgs as a JSON array.
func textFrameSize(msgs [][]byte) int {
	size := 2 + max(len(msgs)-1, 0) // the brackets and commas
	for _, m := range msgs {
		size += len(m)
	}
	return size
}

// writeText writes msgs, whose textFrameSize is size, as one text frame
// holding a JSON array, framed as gorilla/websocket frames a server's
// message (final, uncompressed, not masked), in one Write, so it never
// interleaves with gorilla's control frames (each of which gorilla writes
// in one Write too, under its own lock). It refuses once gorilla has
// written a close frame. Writing the frame here rather than through
// gorilla's NextWriter saves, for every frame, two allocations (its
// writer, and the buffer it gives back to its pool) and its locks. Only
// for a socket whose writes are tried (tw), and frames up to maxTextFrame.
func (n *viewerNetConn) writeText(msgs [][]byte, size int) error {
	bp := frameBufs.Get().(*[]byte)
	b := appendFrameHeader((*bp)[:0], websocket.TextMessage, size)
	b = append(b, '[')
	for i, m := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, m...)
	}
	b = append(b, ']')
	n.mu.Lock()
	var err error
	if n.closeSent {
		n.mu.Unlock()
		err = websocket.ErrCloseSent
	} else {
		_, err = n.writeLocked(b) // keeps a copy of what it keeps
	}
	if cap(b) <= maxTextFrame+16 {
		*bp = b[:0]
		frameBufs.Put(bp)
	}
	return err
}

// appendFrameHeader appends the header of a final, unmasked frame of the
// given opcode with size bytes of payload (RFC 6455, 5.2).
func appendFrameHeader(b []byte, opcode, size int) []byte {
	b = append(b, finalBit|byte(opcode))
	switch {
	case size <= 125:
		return append(b, byte(size))
	case size <= 0xffff:
		return append(b, 126, byte(size>>8), byte(size))
	}
	return binary.BigEndian.AppendUint64(append(b, 127), uint64(size))
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
