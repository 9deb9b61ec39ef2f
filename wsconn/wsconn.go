// Package wsconn wraps a gorilla/websocket connection with the one-reader,
// one-writer discipline: a single writer goroutine fed by a bounded queue,
// write deadlines, ping/pong keepalive and a read size limit.
package wsconn

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// ErrSlow reports that a connection's send queue was full; the connection is
// closed rather than letting one slow peer hold back its sender.
var ErrSlow = errors.New("peer too slow: send queue full")

// ErrClosed reports a send on a closed connection.
var ErrClosed = errors.New("connection closed")

// ErrTooFast reports a message read beyond Options.Rate. The connection is
// still open, so the caller can say why before it closes it.
var ErrTooFast = errors.New("too many messages")

// Options tune a connection. Zero values take the defaults.
type Options struct {
	ReadLimit    int64         // largest accepted message in bytes (default 64 KiB)
	Rate         *rate.Limiter // messages read beyond it give ErrTooFast; nil: no limit. It may be shared, to limit a sender across its connections
	QueueLen     int           // outgoing messages buffered (default 256)
	WriteTimeout time.Duration // deadline per write (default 10s)
	PingInterval time.Duration // keepalive ping period (default 25s); pong wait is 2.5x
}

func (o *Options) defaults() {
	if o.ReadLimit == 0 {
		o.ReadLimit = 64 << 10
	}
	if o.QueueLen == 0 {
		o.QueueLen = 256
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.PingInterval == 0 {
		o.PingInterval = 25 * time.Second
	}
}

type outMsg struct {
	kind int
	data []byte
}

// Conn is a websocket with a dedicated writer goroutine. Send is safe for
// concurrent use; Read must be called from one goroutine only.
type Conn struct {
	ws   *websocket.Conn
	opts Options
	out  chan outMsg
	done chan struct{}

	closeOnce sync.Once
	mu        sync.Mutex
	err       error
}

// New starts the writer goroutine for ws. Close the Conn when done.
func New(ws *websocket.Conn, opts Options) *Conn {
	opts.defaults()
	c := &Conn{ws: ws, opts: opts, out: make(chan outMsg, opts.QueueLen), done: make(chan struct{})}
	ws.SetReadLimit(opts.ReadLimit)
	pongWait := opts.PingInterval * 5 / 2
	_ = ws.SetReadDeadline(time.Now().Add(pongWait))
	ws.SetPongHandler(func(string) error {
		return ws.SetReadDeadline(time.Now().Add(pongWait))
	})
	go c.writeLoop()
	return c
}

func (c *Conn) writeLoop() {
	ping := time.NewTicker(c.opts.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.done:
			return
		case m := <-c.out:
			_ = c.ws.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
			if err := c.ws.WriteMessage(m.kind, m.data); err != nil {
				c.fail(err)
				return
			}
			if m.kind == websocket.CloseMessage {
				c.fail(ErrClosed)
				return
			}
		case <-ping.C:
			_ = c.ws.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
			if err := c.ws.WriteMessage(websocket.PingMessage, nil); err != nil {
				c.fail(err)
				return
			}
		}
	}
}

func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.closeOnce.Do(func() {
		close(c.done)
		_ = c.ws.Close()
	})
}

// Err returns why the connection closed, or nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done is closed when the connection has closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Send queues a text message without blocking. If the queue is full the
// connection is closed with ErrSlow.
func (c *Conn) Send(data []byte) error {
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	select {
	case c.out <- outMsg{websocket.TextMessage, data}:
		return nil
	case <-c.done:
		return ErrClosed
	default:
		c.fail(ErrSlow)
		return ErrSlow
	}
}

// CloseWith sends a close frame with the given code and reason, then closes.
func (c *Conn) CloseWith(code int, reason string) {
	msg := websocket.FormatCloseMessage(code, reason)
	select {
	case c.out <- outMsg{websocket.CloseMessage, msg}:
		select {
		case <-c.done:
		case <-time.After(time.Second):
			c.fail(ErrClosed)
		}
	default:
		c.fail(ErrClosed)
	}
}

// Read returns the next text or binary message. It must be called from a
// single goroutine. It returns an error once the connection is closed, and
// ErrTooFast, with the connection still open, for a message that came
// faster than Options.Rate allows (that message is dropped).
func (c *Conn) Read(ctx context.Context) (kind int, data []byte, err error) {
	kind, data, err = c.ws.ReadMessage()
	if err == nil && c.opts.Rate != nil && !c.opts.Rate.Allow() {
		return 0, nil, ErrTooFast
	}
	if err != nil {
		if errors.Is(err, websocket.ErrReadLimit) {
			// gorilla has queued close 1009. Drain what the peer is still
			// sending, briefly, so closing does not reset the connection
			// before the peer has read why.
			nc := c.ws.NetConn()
			_ = nc.SetReadDeadline(time.Now().Add(time.Second))
			_, _ = io.Copy(io.Discard, nc)
		}
		c.fail(err)
		return 0, nil, err
	}
	return kind, data, nil
}

// Close closes the connection at once.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	return nil
}
