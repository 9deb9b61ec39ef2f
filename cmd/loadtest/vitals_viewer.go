package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// viewerSpec is one viewer connection: where it dials and which patients'
// streams it counts. Against the server, keys are patient IDs and subscribe
// lists the visits to request on a multi-visit socket; through the relay
// the key is the patient's index.
type viewerSpec struct {
	url       string
	header    http.Header
	keys      []int64
	subscribe []int64
	relay     bool
}

// viewer reads one connection and keeps a tally per patient.
type viewer struct {
	spec    viewerSpec
	ws      *websocket.Conn
	conn    *arrivalConn // ws's connection, if it keeps receive times
	tallies map[int64]*tally
	placed  int
	ready   chan struct{} // closed when every patient is placed
	frames  atomic.Int64  // frames received in the measured run
	bytes   atomic.Int64
	counted atomic.Bool // count frames from now on
	err     error       // why reading stopped, if not closed by us
	done    chan struct{}
}

func dialViewer(ctx context.Context, s viewerSpec) (*viewer, error) {
	var conn *arrivalConn
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, NetDialContext: dialArrival(&net.Dialer{}, &conn)}
	ws, resp, err := d.DialContext(ctx, s.url, s.header)
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w: %s", err, resp.Status)
		}
		return nil, fmt.Errorf("dial viewer %s: %w", s.url, err)
	}
	v := &viewer{spec: s, ws: ws, conn: conn, tallies: map[int64]*tally{}, ready: make(chan struct{}), done: make(chan struct{})}
	for _, k := range s.keys {
		v.tallies[k] = &tally{}
	}
	for _, a := range s.subscribe {
		msg := fmt.Sprintf(`{"type":"subscribe","appointment":%d}`, a)
		_ = ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			ws.Close()
			return nil, fmt.Errorf("subscribe to visit %d: %w", a, err)
		}
	}
	if s.relay {
		for _, t := range v.tallies {
			t.place(1)
		}
		v.placed = len(v.tallies)
		close(v.ready)
	}
	go v.read()
	return v, nil
}

// streamMsg is what the loadtest reads of a server message, decoded by
// appendMessages; its tags are encoding/json's, the reference the
// scanner's tests hold it to.
type streamMsg struct {
	Type    string    `json:"type"`
	Patient int64     `json:"patient"`
	Offset  int64     `json:"offset"`
	Time    time.Time `json:"time"`
	Error   string    `json:"error"`
}

func (v *viewer) read() {
	defer close(v.done)
	var msgs []streamMsg
	// One buffer for every frame, rather than one allocated per frame (as
	// ReadMessage does): what the tool costs, it takes from the machine
	// it measures.
	var frame bytes.Buffer
	for {
		kind, r, err := v.ws.NextReader()
		if err == nil {
			frame.Reset()
			_, err = frame.ReadFrom(r)
		}
		now := time.Now()
		if err != nil {
			v.err = err
			return
		}
		// The frame's last bytes came with the connection's last read.
		arrived, _ := v.conn.received()
		b := frame.Bytes()
		if v.counted.Load() {
			v.frames.Add(1)
			v.bytes.Add(int64(len(b)))
		}
		if v.spec.relay {
			seq, at, err := measuredAt(kind, b)
			if err != nil {
				v.err = err
				return
			}
			v.tallies[v.spec.keys[0]].take(seq, true, at, now, arrived)
			continue
		}
		msgs, err = appendMessages(msgs[:0], b)
		if err != nil {
			v.err = fmt.Errorf("viewer frame %.80q: %w", b, err)
			return
		}
		for _, m := range msgs {
			v.handle(m, now, arrived)
		}
	}
}

// handle takes one message of a frame read at now, which reached this
// machine at arrived (zero if not known).
func (v *viewer) handle(m streamMsg, now, arrived time.Time) {
	t := v.tallies[m.Patient]
	switch m.Type {
	case "stream":
		if t == nil {
			return
		}
		first := t.base == 0
		t.place(m.Offset + 1)
		if first {
			v.placed++
			if v.placed == len(v.tallies) {
				close(v.ready)
			}
		}
	case "gap":
		if t != nil {
			t.gapMsgs++
		}
	case "error", "unsubscribed":
		v.err = fmt.Errorf("viewer got %s: %s", m.Type, m.Error)
	default:
		if t != nil && m.Offset > 0 {
			t.take(m.Offset, m.Type == "reading" || m.Type == "waveform", m.Time, now, arrived)
		}
	}
}

func (v *viewer) close() {
	_ = v.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	v.ws.Close()
	<-v.done
}
