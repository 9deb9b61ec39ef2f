// Package wsconn wraps a gorilla/websocket connection with the one-reader,
// one-writer discipline: one writer at a time, started on demand and fed
// by a bounded queue, write deadlines, ping/pong keepalive and a read size
// limit.
package wsconn

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/mono"
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
	Rate         *Rate         // messages read beyond it give ErrTooFast; nil: no limit. It may be shared, to limit a sender across its connections
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

// Conn is a websocket whose writes one goroutine at a time makes: it is
// started when a message is queued and ends when the queue is empty, so an
// idle connection holds only its reader. Send is safe for concurrent use;
// Read must be called from one goroutine only.
type Conn struct {
	ws   *websocket.Conn
	opts Options
	done chan struct{}
	ping *time.Timer

	closeOnce sync.Once
	mu        sync.Mutex
	q         []outMsg // waiting to be written
	writing   bool     // a writer goroutine is running
	closed    bool
	err       error
}

// New sets ws up with opts' limits and keepalive. Close the Conn when done.
func New(ws *websocket.Conn, opts Options) *Conn {
	opts.defaults()
	c := &Conn{ws: ws, opts: opts, done: make(chan struct{})}
	ws.SetReadLimit(opts.ReadLimit)
	pongWait := opts.PingInterval * 5 / 2
	_ = ws.SetReadDeadline(time.Now().Add(pongWait))
	ws.SetPongHandler(func(string) error {
		return ws.SetReadDeadline(time.Now().Add(pongWait))
	})
	c.ping = time.AfterFunc(time.Hour, c.sendPing)
	c.ping.Reset(opts.PingInterval) // now that sendPing can see c.ping
	return c
}

// sendPing queues a keepalive ping and schedules the next.
func (c *Conn) sendPing() {
	if c.enqueue(outMsg{kind: websocket.PingMessage}, true) == nil {
		c.ping.Reset(c.opts.PingInterval)
	}
}

// enqueue queues m and starts the writer if none runs. A full queue closes
// the connection with ErrSlow; control messages may go past the limit.
func (c *Conn) enqueue(m outMsg, control bool) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if !control && len(c.q) >= c.opts.QueueLen {
		c.mu.Unlock()
		c.fail(ErrSlow)
		return ErrSlow
	}
	c.q = append(c.q, m)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	return nil
}

// writeLoop writes what is queued, in order, until the queue is empty.
func (c *Conn) writeLoop() {
	for {
		c.mu.Lock()
		if len(c.q) == 0 || c.closed {
			c.writing = false
			if cap(c.q) > 16 {
				c.q = nil // let a burst's queue go
			}
			c.mu.Unlock()
			return
		}
		m := c.q[0]
		c.q[0] = outMsg{}
		c.q = c.q[1:]
		c.mu.Unlock()
		_ = c.ws.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
		if err := c.ws.WriteMessage(m.kind, m.data); err != nil {
			c.fail(err)
			return
		}
		if m.kind == websocket.CloseMessage {
			c.fail(ErrClosed)
			return
		}
	}
}

func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.closed = true
	c.q = nil
	c.mu.Unlock()
	c.closeOnce.Do(func() {
		c.ping.Stop()
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
	return c.enqueue(outMsg{websocket.TextMessage, data}, false)
}

// CloseWith sends a close frame with the given code and reason, after what
// is queued, then closes.
func (c *Conn) CloseWith(code int, reason string) {
	if c.enqueue(outMsg{websocket.CloseMessage, websocket.FormatCloseMessage(code, reason)}, true) != nil {
		return
	}
	select {
	case <-c.done:
	case <-time.After(time.Second):
		c.fail(ErrClosed)
	}
}

// Read returns the next text or binary message. It must be called from a
// single goroutine. It returns an error once the connection is closed, and
// ErrTooFast, with the connection still open, for a message that came
// faster than Options.Rate allows (that message is dropped).
func (c *Conn) Read(ctx context.Context) (kind int, data []byte, err error) {
	kind, data, err = c.ws.ReadMessage()
	if err = c.checkRead(err); err != nil {
		return 0, nil, err
	}
	return kind, data, nil
}

// Lent is a message read into an array lent from a pool (ReadLent).
type Lent struct {
	Data []byte
}

// maxLent is the largest array a Lent gives back to the pool: a rare
// large message does not keep its array.
const maxLent = 16 << 10

var lentPool = sync.Pool{New: func() any { return &Lent{Data: make([]byte, 0, 1024)} }}

// Release gives m's array back; m and m.Data must not be used after.
func (m *Lent) Release() {
	if cap(m.Data) > maxLent {
		return
	}
	m.Data = m.Data[:0]
	lentPool.Put(m)
}

// ReadLent is Read into an array lent for the message, for a reader that
// is done with each message before it reads the next: it must Release it.
// Read allocates each message anew; an array is lent only once a message
// has begun to arrive, so an idle connection holds none.
func (c *Conn) ReadLent(ctx context.Context) (kind int, m *Lent, err error) {
	kind, r, err := c.ws.NextReader()
	if err == nil {
		m = lentPool.Get().(*Lent)
		m.Data, err = readAll(r, m.Data[:0])
	}
	if err = c.checkRead(err); err != nil {
		if m != nil {
			m.Release()
		}
		return 0, nil, err
	}
	return kind, m, nil
}

// readAll appends what r reads until io.EOF to b, as io.ReadAll does.
func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
	}
}

// checkRead applies the rate to a message read, and closes the
// connection after an error reading one.
func (c *Conn) checkRead(err error) error {
	if err == nil && c.opts.Rate != nil && !c.opts.Rate.allow(int64(mono.Since())) {
		return ErrTooFast
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
	}
	return err
}

// Close closes the connection at once.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	return nil
}
