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
	// at most this often. A device's round of numerics arrives within about
	// a millisecond (each waits for its group commit), so 2 ms gathers most
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

// viewerConn runs one viewer's socket: a reader goroutine for its
// requests and pongs, and a writer that flushes the viewer's queue as one
// frame per tick. Only the writer writes, so no lock is held across I/O.
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
	return &viewerConn{ws: ws, v: v, flush: flush, timeout: timeout, rate: viewerRate.limiter(viewerRate),
		done: make(chan struct{}), readEnd: make(chan struct{}), closeRq: make(chan closeRequest, 1)}
}

// Done is closed once the connection has ended.
func (c *viewerConn) Done() <-chan struct{} { return c.done }

// CloseWith asks the writer to send a close frame and end the connection.
func (c *viewerConn) CloseWith(code int, reason string) {
	select {
	case c.closeRq <- closeRequest{code, reason}:
	default:
	}
}

func (c *viewerConn) end() {
	c.once.Do(func() {
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
			return errViewerTooFast
		}
		if kind == websocket.TextMessage {
			handle(b)
		}
	}
}

// write flushes the viewer's queue until the connection ends.
func (c *viewerConn) write() {
	defer c.end()
	ping := time.NewTicker(viewerPing)
	defer ping.Stop()
	tick := time.NewTimer(time.Hour)
	tick.Stop()
	var last time.Time
	batch := make([][]byte, 0, 16)
	for {
		select {
		case <-c.v.Ready():
		case <-c.v.FellBehind():
			c.closeFrame(closeFellBehind, reasonFellBehind)
			return
		case rq := <-c.closeRq:
			c.closeFrame(rq.code, rq.reason)
			return
		case <-ping.C:
			if c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.timeout)) != nil {
				return
			}
			continue
		case <-c.done:
			return
		}
		if wait := c.flush - time.Since(last); wait > 0 {
			// Busy: gather what comes until this tick ends.
			tick.Reset(wait)
			select {
			case <-tick.C:
			case <-c.done:
				return
			}
		}
		batch = c.v.Take(batch[:0], viewerMaxFrameMessages)
		if len(batch) == 0 {
			continue
		}
		last = time.Now()
		err := c.writeFrame(batch)
		clear(batch)
		if err != nil {
			return
		}
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
