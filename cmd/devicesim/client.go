package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/vitals"
)

// envelope is one device message: JSON, or a waveform chunk sent as a
// binary frame.
type envelope struct {
	Seq         int64            `json:"seq"`
	Observation json.RawMessage  `json:"observation,omitempty"`
	GATT        json.RawMessage  `json:"gatt,omitempty"`
	Wave        *vitals.Waveform `json:"-"`
}

// outbox numbers messages and holds them until the server acknowledges
// them, so they can be sent again after a reconnect.
type outbox struct {
	next      int64 // last sequence given out
	pending   []envelope
	max       int
	generated int
	acked     int
}

// add numbers m and holds it; false if the outbox is full.
func (b *outbox) add(m message) (envelope, bool) {
	if len(b.pending) >= b.max {
		return envelope{}, false
	}
	b.next++
	b.generated++
	e := envelope{Seq: b.next, Observation: m.Observation, GATT: m.GATT, Wave: m.Wave}
	b.pending = append(b.pending, e)
	return e, true
}

// ack drops what the server has handled, up to n. An ack beyond anything
// given out means the server has handled sequences from an earlier run of
// this device: the held messages are renumbered to follow n, and ack
// reports true so the caller sends them again.
func (b *outbox) ack(n int64) (renumbered bool) {
	if n > b.next {
		for i := range b.pending {
			b.pending[i].Seq = n + 1 + int64(i)
		}
		b.next = n + int64(len(b.pending))
		return len(b.pending) > 0
	}
	i := 0
	for i < len(b.pending) && b.pending[i].Seq <= n {
		i++
	}
	b.acked += i
	b.pending = b.pending[i:]
	return false
}

// maxUnacked bounds the outbox: about 20 minutes of numerics and ECG.
const maxUnacked = 20000

// reply is a server message on the device socket.
type reply struct {
	Ack   *int64 `json:"ack"`
	Error string `json:"error"`
	Seq   *int64 `json:"seq"`
}

// connEvent is something a connection's reader saw.
type connEvent struct {
	ws    *websocket.Conn
	reply reply
	err   error
}

type dialResult struct {
	ws  *websocket.Conn
	err error
}

// errRefused reports that the server will not accept this device.
var errRefused = errors.New("server refused the device")

// client streams one simulated patient, reconnecting with backoff. The loop
// goroutine owns the outbox and is the only writer of the connection.
type client struct {
	o        options
	token    string
	name     string // "devicesim", or "devicesim[N]" when streaming several patients
	log      io.Writer
	box      outbox
	pat      *patient
	rejected int
	garbled  int // garbled frames sent (a faulty device)
	waves    int // waveform chunks measured, of box.generated
	drops    int // simulated link drops (a flaky link)
	// heard says an acknowledgement has come on the current connection.
	heard bool
	rng   *rand.Rand
}

// newClient streams one patient with token; seed makes it reproducible.
func newClient(o options, token, name string, seed uint64, log io.Writer) *client {
	return &client{
		o:     o,
		token: token,
		name:  name,
		log:   log,
		box:   outbox{max: maxUnacked},
		pat:   newPatient(o.sc, seed, time.Now(), o.ramp),
		rng:   rand.New(rand.NewPCG(seed, 1)),
	}
}

func (c *client) logf(format string, args ...any) {
	fmt.Fprintf(c.log, c.name+": "+format+"\n", args...)
}

// summary is the client's closing line.
func (c *client) summary() string {
	s := fmt.Sprintf("%s: %d messages measured, %d acknowledged (%d of them rejected), %d unacknowledged",
		c.name, c.box.generated, c.box.acked, c.rejected, len(c.box.pending))
	if c.waves > 0 {
		s += fmt.Sprintf("; %d readings and %d waveform chunks", c.box.generated-c.waves, c.waves)
	}
	if c.drops > 0 {
		s += fmt.Sprintf("; %d simulated link drops", c.drops)
	}
	if c.garbled > 0 {
		s += fmt.Sprintf("; %d garbled frames", c.garbled)
	}
	return s
}

// jitter returns a random duration between half and one and a half of d.
func (c *client) jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(c.rng.Int64N(int64(d)+1))
}

// dial connects after wait.
func (c *client) dial(ctx context.Context, wait time.Duration, out chan<- dialResult) {
	select {
	case <-ctx.Done():
		out <- dialResult{err: ctx.Err()}
		return
	case <-time.After(wait):
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.DialContext(ctx, c.o.url, http.Header{"Authorization": {"Bearer " + c.token}})
	if err != nil && resp != nil {
		err = fmt.Errorf("%w: %s", err, resp.Status)
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			err = fmt.Errorf("%w (%s): check --token", errRefused, resp.Status)
		}
	}
	out <- dialResult{ws: ws, err: err}
}

// read forwards a connection's replies until it fails or done closes.
func read(ws *websocket.Conn, out chan<- connEvent, done <-chan struct{}) {
	for {
		var r reply
		_, b, err := ws.ReadMessage()
		if err == nil && json.Unmarshal(b, &r) != nil {
			err = fmt.Errorf("reply %.80q is not JSON", b)
		}
		select {
		case out <- connEvent{ws: ws, reply: r, err: err}:
		case <-done:
			return
		}
		if err != nil {
			return
		}
	}
}

// frame encodes e as the message to send: a binary waveform frame, or a
// JSON envelope. A frame is encoded when sent, so a renumbered message
// carries its new sequence.
func frame(e envelope) (kind int, b []byte, err error) {
	if e.Wave != nil {
		b, err = vitals.AppendWaveFrame(nil, e.Seq, e.Wave)
		return websocket.BinaryMessage, b, err
	}
	b, err = json.Marshal(e)
	return websocket.TextMessage, b, err
}

func (c *client) send(ws *websocket.Conn, e envelope) error {
	kind, b, err := frame(e)
	if err != nil {
		return err
	}
	_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return ws.WriteMessage(kind, b)
}

func (c *client) sendPending(ws *websocket.Conn) error {
	for _, e := range c.box.pending {
		if err := c.send(ws, e); err != nil {
			return err
		}
	}
	return nil
}

// maxBackoff bounds the wait between reconnect attempts. A home hub whose
// network comes back should stream again within seconds, not leave the
// physician looking at a disconnected device for a quarter of a minute
// more; and a thousand hubs retrying every 2 to 4 s after a server restart
// are a few hundred connections a second, which the server takes.
const maxBackoff = 4 * time.Second

// backoff returns the wait before reconnect attempt n (0-based): 0.5 s
// doubling to maxBackoff, with jitter (half to all of it).
func (c *client) backoff(n int) time.Duration {
	d := 500 * time.Millisecond << min(n, 5)
	d = min(d, maxBackoff)
	return d/2 + time.Duration(c.rng.Int64N(int64(d/2)+1))
}

// loop measures, sends and reconnects until ctx ends.
func (c *client) loop(ctx context.Context) error {
	dialed := make(chan dialResult, 1)
	events := make(chan connEvent, 64)
	done := make(chan struct{})
	defer close(done)
	var ws *websocket.Conn
	attempts := 0
	go c.dial(ctx, 0, dialed)

	disconnect := func(why error) {
		if ws == nil {
			return
		}
		ws.Close()
		ws = nil
		wait := c.backoff(attempts)
		attempts++
		c.logf("disconnected (%v); %d unacknowledged; reconnecting in %s", why, len(c.box.pending), wait.Round(time.Millisecond))
		go c.dial(ctx, wait, dialed)
	}
	// A flaky link drops a while after each connection is made, and stays
	// down for an outage; measuring goes on meanwhile.
	var cut <-chan time.Time
	cutLink := func() {
		if ws == nil {
			return
		}
		outage := c.jitter(c.o.flakyOutage)
		c.drops++
		c.logf("link dropped (simulated flaky link); %d unacknowledged; back in %s", len(c.box.pending), outage.Round(time.Millisecond))
		// Cut the TCP connection under the WebSocket, as a lost network
		// does: no close frame.
		_ = ws.NetConn().Close()
		ws = nil
		go c.dial(ctx, outage, dialed)
	}
	paused := false
	enqueue := func(m message) {
		if m.Garbled != nil {
			// Not an envelope: the server answers an error without seq and
			// it is never resent.
			c.garbled++
			if ws != nil {
				_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if err := ws.WriteMessage(websocket.TextMessage, m.Garbled); err != nil {
					disconnect(err)
				}
			}
			return
		}
		if m.Observation == nil && m.GATT == nil && m.Wave == nil {
			return
		}
		e, ok := c.box.add(m)
		if !ok {
			if !paused {
				c.logf("%d messages unacknowledged; pausing measurements until the server catches up", len(c.box.pending))
			}
			paused = true
			return
		}
		paused = false
		if ws != nil {
			if err := c.send(ws, e); err != nil {
				disconnect(err)
			}
		}
	}
	measure := func(now time.Time) {
		for _, m := range c.pat.numerics(now) {
			enqueue(m)
		}
	}

	numTick := time.NewTicker(c.o.rate)
	defer numTick.Stop()
	var ecgC <-chan time.Time
	if c.o.ecg {
		ecgTick := time.NewTicker(chunkEvery)
		defer ecgTick.Stop()
		ecgC = ecgTick.C
	}
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	measure(time.Now()) // the first round, blood pressure included, at once
	lastAck := int64(-1)
	for {
		select {
		case <-ctx.Done():
			if ws != nil {
				c.drain(ws, events)
				_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
				ws.Close()
			}
			return nil
		case d := <-dialed:
			if d.err != nil {
				if errors.Is(d.err, errRefused) {
					return d.err
				}
				if ctx.Err() != nil {
					continue
				}
				wait := c.backoff(attempts)
				attempts++
				c.logf("connect %s: %v; retrying in %s", c.o.url, d.err, wait.Round(time.Millisecond))
				go c.dial(ctx, wait, dialed)
				continue
			}
			ws = d.ws
			c.heard = false
			c.logf("connected to %s; sending %d unacknowledged", c.o.url, len(c.box.pending))
			if c.o.sc.flaky {
				cut = time.After(c.jitter(c.o.flakyEvery))
			}
			go read(ws, events, done)
			if err := c.sendPending(ws); err != nil {
				disconnect(err)
			}
		case ev := <-events:
			if ev.ws != ws {
				continue // from a connection already closed
			}
			if ev.err != nil {
				disconnect(ev.err)
				continue
			}
			c.handleReply(ws, ev.reply, &attempts, &lastAck, disconnect)
		case now := <-numTick.C:
			measure(now)
		case now := <-ecgC:
			before := c.box.generated
			if c.o.ecgFormat == "binary" {
				enqueue(message{Wave: c.pat.ecgWave(now)})
			} else {
				enqueue(message{Observation: c.pat.ecgChunk(now)})
			}
			c.waves += c.box.generated - before
		case <-cut:
			cutLink()
		case <-progress.C:
			if ws != nil {
				c.logf("acknowledged up to %d; %d unacknowledged, %d rejected", lastAck, len(c.box.pending), c.rejected)
			}
		}
	}
}

func (c *client) handleReply(ws *websocket.Conn, r reply, attempts *int, lastAck *int64, disconnect func(error)) {
	switch {
	case r.Ack != nil:
		*attempts = 0 // the server is working: reset the backoff
		*lastAck = *r.Ack
		renumbered := c.box.ack(*r.Ack)
		if !c.heard {
			// The server's first word on each connection is where it
			// stands: after a reconnect, where the device resumes.
			c.heard = true
			c.logf("the server has everything up to %d; %d unacknowledged", *r.Ack, len(c.box.pending))
		}
		if renumbered {
			c.logf("the server has handled up to %d from an earlier run; renumbering %d messages to follow it", *r.Ack, len(c.box.pending))
			if err := c.sendPending(ws); err != nil {
				disconnect(err)
			}
		}
	case r.Error != "" && r.Seq != nil:
		c.rejected++
		c.logf("server rejected seq %d: %s", *r.Seq, r.Error)
	case r.Error != "":
		c.logf("server error: %s", r.Error)
	}
}

// drain waits briefly for the acknowledgements of what was sent, so a clean
// stop leaves as little as possible unacknowledged.
func (c *client) drain(ws *websocket.Conn, events <-chan connEvent) {
	deadline := time.After(2 * time.Second)
	for len(c.box.pending) > 0 {
		select {
		case ev := <-events:
			if ev.ws != ws {
				continue
			}
			if ev.err != nil {
				return
			}
			if ev.reply.Ack != nil {
				c.box.ack(*ev.reply.Ack)
			}
		case <-deadline:
			return
		}
	}
}
