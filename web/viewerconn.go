package web

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/bedside-health/bedside/mono"
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
	// viewerPingRetry is how soon a ping skipped because the socket was
	// backed up is tried again: a viewer that reads slowly but steadily
	// must still get a ping well within the 62.5 s its reader waits for an
	// answer, or it is closed while it keeps up.
	viewerPingRetry = time.Second
	viewerReadLimit = 4096
)

// viewerConn runs one viewer's socket: the handler's goroutine reads its
// requests and pongs, and a writer flushes the viewer's queue as one frame
// per tick. Only one writer runs at a time (pings and close frames use
// gorilla's WriteControl, which may run beside it). When a message is
// queued on an idle viewer whose last frame is a tick old, the goroutine
// that queued it (the device's reader, for a published message) tries the
// frame itself, never waiting on the socket (viewerNetConn); otherwise,
// or if the socket did not take the whole frame, a writer goroutine is
// started, which flushes until the queue is empty and ends. So an idle
// socket holds one goroutine, its reader, and a steady stream of single
// messages creates none.
type viewerConn struct {
	ws      *websocket.Conn
	nc      *viewerNetConn // nil: every frame goes through the writer goroutine
	v       *live.Viewer
	flush   time.Duration
	timeout time.Duration // per write
	rate    *rate.Limiter
	done    chan struct{} // closed when the connection ends
	readEnd chan struct{} // closed when the reader returns
	closeRq chan closeRequest
	once    sync.Once
	// flags are closeAsked and ended: what the first writing round
	// checks on every message, without a look at the channels that say
	// the same (a cache line each).
	flags atomic.Uint32
	ping  *time.Timer

	mu      sync.Mutex
	writing bool          // a writer goroutine runs
	again   bool          // woken while it ran: look at the queue once more
	last    time.Duration // when the last frame was written (mono.Since)
	batch   [][]byte
}

// viewerConn.flags.
const (
	closeAsked = 1 << iota // a close request is queued in closeRq
	ended                  // done is closed
)

type closeRequest struct {
	code   int
	reason string
}

func newViewerConn(ws *websocket.Conn, nc *viewerNetConn, v *live.Viewer, flush, timeout time.Duration) *viewerConn {
	if flush <= 0 {
		flush = defaultVitalsFlush
	}
	if timeout <= 0 {
		timeout = viewerWriteTimeout
	}
	if nc != nil && nc.tw == nil {
		nc = nil // writes wait: frames go through the writer goroutine
	}
	c := &viewerConn{ws: ws, nc: nc, v: v, flush: flush, timeout: timeout, rate: viewerRate.limiter(viewerRate),
		done: make(chan struct{}), readEnd: make(chan struct{}), closeRq: make(chan closeRequest, 1),
		last: mono.Since() - flush}
	if nc != nil {
		nc.kept = c.start
	}
	if v != nil { // nil only in benchmarks that write frames themselves
		v.OnReady(c.wake)
	}
	c.ping = time.AfterFunc(time.Hour, c.sendPing)
	c.ping.Reset(viewerPing) // now that sendPing can see c.ping
	return c
}

// sendPing keeps the connection alive, beside any frame being written;
// not while the socket is backed up, which its writer is flushing.
func (c *viewerConn) sendPing() {
	if c.nc.backedUp() {
		c.ping.Reset(viewerPingRetry)
		return
	}
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
		c.flags.Or(closeAsked)
		c.wake()
	default:
	}
}

func (c *viewerConn) end() {
	c.once.Do(func() {
		c.ping.Stop()
		c.flags.Or(ended)
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
	c.ws.SetPingHandler(c.pong)
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

// pong answers a viewer's ping, as gorilla's default handler does, but
// not while the socket is backed up: a viewer that pings but does not
// read would otherwise pile up kept bytes.
func (c *viewerConn) pong(msg string) error {
	if c.nc.backedUp() {
		return nil
	}
	err := c.ws.WriteControl(websocket.PongMessage, []byte(msg), time.Now().Add(time.Second))
	var ne net.Error
	if errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	return err
}

// wake writes what is queued at once if it can without waiting, else
// starts the writer, or tells the running one to look again. It never
// blocks.
func (c *viewerConn) wake() {
	if !c.claimWriter() {
		return
	}
	if c.nc != nil && c.tryQueued() {
		return
	}
	go c.writeQueued()
}

// claimWriter makes the caller the socket's writer, or, when a writer
// runs, tells it to look at the queue again and reports false.
func (c *viewerConn) claimWriter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writing {
		c.again = true
		return false
	}
	c.writing = true
	return true
}

// tryQueued is the writer's first round, run by the waking goroutine: if
// the last frame is a tick old and nothing but messages is pending, it
// writes one frame of what is queued, which never waits (viewerNetConn).
// It reports whether it is done; false leaves the rest (a tick to wait, a
// close to send, bytes the socket did not take, messages queued
// meanwhile) to a writer goroutine.
func (c *viewerConn) tryQueued() bool {
	flags := c.flags.Load()
	if flags&closeAsked != 0 || c.v.Behind() {
		return false
	}
	if flags&ended != 0 {
		return true // writing stays set: nothing more is written
	}
	now := mono.Since()
	if now-c.last < c.flush {
		return false
	}
	c.batch = c.v.Take(c.batch[:0], viewerMaxFrameMessages)
	if len(c.batch) > 0 {
		c.last = now
		err := c.writeFrame(c.batch)
		clear(c.batch)
		if err != nil {
			c.end()
			return true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.again { // queued meanwhile, or bytes kept
		c.again = false
		return false
	}
	c.writing = false
	return true
}

// start starts the writer goroutine, or tells the running writer to look
// again; unlike wake it never writes itself.
func (c *viewerConn) start() {
	if c.claimWriter() {
		go c.writeQueued()
	}
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
		if err := c.nc.flush(c.timeout); err != nil {
			c.end()
			return
		}
		if wait := c.flush - (mono.Since() - c.last); wait > 0 {
			// Busy: gather what comes until this tick ends.
			time.Sleep(wait)
		}
		c.batch = c.v.Take(c.batch[:0], viewerMaxFrameMessages)
		if len(c.batch) > 0 {
			c.last = mono.Since()
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

// writeFrame writes msgs as one text frame holding a JSON array: on a
// socket whose writes are tried, through viewerNetConn.writeText, which
// never waits (flush sets the deadline of the writes that do), unless it
// is large; else through gorilla/websocket, copying each shared message
// straight into the connection's write buffer, with a deadline where
// writes wait.
func (c *viewerConn) writeFrame(msgs [][]byte) error {
	if c.nc != nil {
		if size := textFrameSize(msgs); size <= maxTextFrame {
			return c.nc.writeText(msgs, size)
		}
	} else {
		_ = c.ws.SetWriteDeadline(time.Now().Add(c.timeout))
	}
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
	if c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.timeout)) != nil || c.nc.flush(c.timeout) != nil {
		return
	}
	select {
	case <-c.readEnd:
	case <-time.After(time.Second):
	}
}
