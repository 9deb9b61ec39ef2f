package web

import (
	"errors"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/bedside-health/bedside/vitals/live"
)

// Live-vitals viewer sockets (docs/protocol.md, "Live vitals for viewers").
const (
	// closeFellBehind closes a viewer whose queue overflowed; it should
	// reconnect and resume from its last offset.
	closeFellBehind  = 4001
	reasonFellBehind = "fell behind: reconnect and resume from your last offset"
	// defaultVitalsFlush is the shortest time between two frames to one
	// viewer. The first message after a quiet spell goes out at once; while
	// messages keep coming, whatever queued meanwhile goes out as one frame
	// at most this often. A device's round of numerics, published as it is
	// read, arrives within well under a millisecond, so 2 ms gathers most
	// of a round into one frame, and adds at most 2 ms to the 10 ms p99
	// budget from device to viewer.
	defaultVitalsFlush = 2 * time.Millisecond
	// viewerMaxFrameMessages caps the messages of one frame; the rest
	// follow in the next.
	viewerMaxFrameMessages = 512
	viewerWriteTimeout     = 10 * time.Second
	viewerPing             = 25 * time.Second
	viewerReadLimit        = 4096
)

// viewerConn runs one viewer's socket: the handler's goroutine reads its
// requests and pongs, and a writer, started when messages are queued and
// ended when the queue is empty, flushes the viewer's queue as one frame
// per tick. Only the writer writes frames (pings and close frames use
// gorilla's WriteControl, which may run beside it), so no lock is held
// across I/O, and an idle socket holds one goroutine, its reader.
type viewerConn struct {
	ws      *websocket.Conn
	v       *live.Viewer
	flush   time.Duration
	timeout time.Duration // per write
	rate    *rate.Limiter
	done    chan struct{} // closed when the connection ends
	readEnd chan struct{} // closed when the reader returns
	closeRq chan closeRequest
	once    sync.Once
	ping    *time.Timer

	mu      sync.Mutex
	writing bool      // a writer goroutine runs
	again   bool      // woken while it ran: look at the queue once more
	last    time.Time // when the last frame was written
	batch   [][]byte
}

type closeRequest struct {
	code   int
	reason string
}

func newViewerConn(ws *websocket.Conn, v *live.Viewer, flush, timeout time.Duration) *viewerConn {
	if flush <= 0 {
		flush = defaultVitalsFlush
	}
	if timeout <= 0 {
		timeout = viewerWriteTimeout
	}
	c := &viewerConn{ws: ws, v: v, flush: flush, timeout: timeout, rate: viewerRate.limiter(viewerRate),
		done: make(chan struct{}), readEnd: make(chan struct{}), closeRq: make(chan closeRequest, 1)}
	if v != nil { // nil only in benchmarks that write frames themselves
		v.OnReady(c.wake)
	}
	c.ping = time.AfterFunc(time.Hour, c.sendPing)
	c.ping.Reset(viewerPing) // now that sendPing can see c.ping
	return c
}

// sendPing keeps the connection alive, beside any frame being written.
func (c *viewerConn) sendPing() {
	if c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.timeout)) != nil {
		c.end()
		return
	}
	c.ping.Reset(viewerPing)
}

// Done is closed once the connection has ended.
func (c *viewerConn) Done() <-chan struct{} { return c.done }

// CloseWith asks the writer to send a close frame and end the connection.
func (c *viewerConn) CloseWith(code int, reason string) {
	select {
	case c.closeRq <- closeRequest{code, reason}:
		c.wake()
	default:
	}
}

func (c *viewerConn) end() {
	c.once.Do(func() {
		c.ping.Stop()
		close(c.done)
		_ = c.ws.Close()
	})
}

// errViewerTooFast and errViewerFrame say why a viewer's reader stopped.
var (
	errViewerTooFast = errors.New("too many messages")
	errViewerFrame   = errors.New("viewer frame too large")
)

// read passes each text message to handle until the connection fails; it
// returns why.
func (c *viewerConn) read(handle func([]byte)) error {
	defer close(c.readEnd)
	c.ws.SetReadLimit(viewerReadLimit)
	pongWait := viewerPing * 5 / 2
	_ = c.ws.SetReadDeadline(time.Now().Add(pongWait))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		kind, b, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.end()
				return errViewerFrame
			}
			c.end()
			return err
		}
		if !c.rate.Allow() {
			c.CloseWith(websocket.ClosePolicyViolation, "too many messages")
			c.discardUntilEnd()
			return errViewerTooFast
		}
		if kind == websocket.TextMessage {
			handle(b)
		}
	}
}

// discardUntilEnd reads and drops the viewer's messages until the
// connection ends, after a close was asked for: returning at once would
// let the socket's end close it before the writer sent the close frame,
// and reading on lets the writer see the viewer's answer to it. The writer
// ends the connection at the latest a second after its close frame.
func (c *viewerConn) discardUntilEnd() {
	for {
		if _, _, err := c.ws.NextReader(); err != nil {
			c.end()
			return
		}
	}
}

// wake starts the writer, or tells the running one to look again.
func (c *viewerConn) wake() {
	c.mu.Lock()
	if c.writing {
		c.again = true
		c.mu.Unlock()
		return
	}
	c.writing = true
	c.mu.Unlock()
	go c.writeQueued()
}

// writeQueued flushes the viewer's queue, at most one frame per flush interval,
// until it is empty, and returns; or ends the connection when the viewer
// fell behind or a close was asked for.
func (c *viewerConn) writeQueued() {
	for {
		select {
		case <-c.v.FellBehind():
			c.closeFrame(closeFellBehind, reasonFellBehind)
			c.end()
			return
		case rq := <-c.closeRq:
			c.closeFrame(rq.code, rq.reason)
			c.end()
			return
		case <-c.done:
			return
		default:
		}
		if wait := c.flush - time.Since(c.last); wait > 0 {
			// Busy: gather what comes until this tick ends.
			time.Sleep(wait)
		}
		c.batch = c.v.Take(c.batch[:0], viewerMaxFrameMessages)
		if len(c.batch) > 0 {
			c.last = time.Now()
			err := c.writeFrame(c.batch)
			clear(c.batch)
			if err != nil {
				c.end()
				return
			}
			continue
		}
		c.mu.Lock()
		if !c.again {
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.again = false
		c.mu.Unlock()
	}
}

var (
	frameOpen  = []byte{'['}
	frameComma = []byte{','}
	frameClose = []byte{']'}
)

// writeFrame writes msgs as one text frame holding a JSON array, copying
// each shared message straight into the connection's write buffer.
func (c *viewerConn) writeFrame(msgs [][]byte) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.timeout))
	w, err := c.ws.NextWriter(websocket.TextMessage)
	if err != nil {
		return err
	}
	_, _ = w.Write(frameOpen)
	for i, m := range msgs {
		if i > 0 {
			_, _ = w.Write(frameComma)
		}
		_, _ = w.Write(m)
	}
	_, _ = w.Write(frameClose)
	return w.Close()
}

// closeFrame sends a close frame and waits briefly for the viewer's
// answer, so it reads the reason before the connection goes.
func (c *viewerConn) closeFrame(code int, reason string) {
	msg := websocket.FormatCloseMessage(code, reason)
	if c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.timeout)) != nil {
		return
	}
	select {
	case <-c.readEnd:
	case <-time.After(time.Second):
	}
}
