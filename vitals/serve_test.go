package vitals

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/wsconn"
)

// deviceServer serves /ws/device-like connections for one device, each
// with a new Ingester continuing from the stored sequence, as the web
// layer does.
type deviceServer struct {
	*httptest.Server
	st     *memStore
	pub    *memPub
	ended  chan error
	cancel context.CancelFunc
	every  time.Duration // the Ingester's ack interval
}

func newDeviceServer(t *testing.T) *deviceServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &deviceServer{st: newMemStore(t), pub: &memPub{}, ended: make(chan error, 10), cancel: cancel, every: 20 * time.Millisecond}
	up := websocket.Upgrader{}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conn := wsconn.New(ws, wsconn.Options{})
		defer conn.Close()
		in := NewIngester(d.st, d.pub, Device{ID: devID, PatientID: patientID, Name: "hub", LastSeq: d.st.last(devID)})
		in.WithAckInterval(d.every)
		d.ended <- ServeDevice(ctx, conn, in)
	}))
	t.Cleanup(func() { cancel(); d.Close() })
	return d
}

func (d *deviceServer) dial(t *testing.T) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(d.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var r reply
	if err := ws.ReadJSON(&r); err != nil || r.Ack == nil || *r.Ack != d.st.last(devID) {
		t.Fatalf("first message %+v (%v), want the ack %d", r, err, d.st.last(devID))
	}
	return ws
}

func (d *deviceServer) serveResult(t *testing.T) error {
	t.Helper()
	select {
	case err := <-d.ended:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("ServeDevice did not return")
		return nil
	}
}

// exchange sends a frame and reads replies up to the ack or a plain error.
func exchange(t *testing.T, ws *websocket.Conn, kind int, frame []byte) []reply {
	t.Helper()
	if err := ws.WriteMessage(kind, frame); err != nil {
		t.Fatal(err)
	}
	var out []reply
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var r reply
		if err := ws.ReadJSON(&r); err != nil {
			t.Fatalf("read reply: %v (so far %+v)", err, out)
		}
		out = append(out, r)
		if r.Ack != nil || (r.Error != "" && r.Seq == nil) {
			return out
		}
	}
}

func TestServeDevice(t *testing.T) {
	d := newDeviceServer(t)
	ws := d.dial(t)
	if rs := exchange(t, ws, websocket.TextMessage, env(1, hrObs)); *rs[0].Ack != 1 {
		t.Fatalf("replies %+v", rs)
	}
	rs := exchange(t, ws, websocket.TextMessage, env(2, quantityObs(CodeHeartRate, 0, "/min")))
	if len(rs) != 2 || *rs[0].Seq != 2 || *rs[1].Ack != 2 {
		t.Fatalf("reject: %+v", rs)
	}
	// Binary frames are waveform frames, in the same sequence.
	if rs := exchange(t, ws, websocket.BinaryMessage, []byte{1, 2}); len(rs) != 1 || rs[0].Seq != nil || !strings.HasPrefix(rs[0].Error, "frame: 2 bytes") {
		t.Fatalf("unreadable binary frame: %+v", rs)
	}
	if rs := exchange(t, ws, websocket.BinaryMessage, binFrame(t, 3, ecgChunk())); len(rs) != 1 || *rs[0].Ack != 3 {
		t.Fatalf("waveform frame: %+v", rs)
	}
	bad := binFrame(t, 4, ecgChunk())
	bad[offPeriod+7] = 0 // period 0
	bad[offPeriod+6] = 0
	if rs := exchange(t, ws, websocket.BinaryMessage, bad); len(rs) != 2 || *rs[0].Seq != 4 || !strings.HasPrefix(rs[0].Error, "frame.period: 0") || *rs[1].Ack != 4 {
		t.Fatalf("bad waveform frame: %+v", rs)
	}
	_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	if err := d.serveResult(t); err != nil {
		t.Fatalf("normal close: ServeDevice returned %v", err)
	}
	if d.st.count() != 1 || d.st.last(devID) != 4 || d.pub.count(patientID) != 2 {
		t.Fatalf("stored %d up to %d, published %d", d.st.count(), d.st.last(devID), d.pub.count(patientID))
	}
}

func TestServeDeviceOversizedFrameCloses1009(t *testing.T) {
	d := newDeviceServer(t)
	ws := d.dial(t)
	big := env(1, waveObs(CodePleth, strings.TrimSpace(strings.Repeat("1 ", 33<<10))))
	if err := ws.WriteMessage(websocket.TextMessage, big); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("read after an oversized frame: %v; want close 1009", err)
	}
	if err := d.serveResult(t); !errors.Is(err, websocket.ErrReadLimit) {
		t.Fatalf("ServeDevice returned %v", err)
	}
	if d.st.appends != 0 {
		t.Fatal("an oversized frame reached the store")
	}
}

func TestServeDeviceStoreFailureCloses1011(t *testing.T) {
	d := newDeviceServer(t)
	ws := d.dial(t)
	exchange(t, ws, websocket.TextMessage, env(1, hrObs))
	d.st.mu.Lock()
	d.st.failNext = 1
	d.st.mu.Unlock()
	rs := exchange(t, ws, websocket.TextMessage, env(2, hrObs))
	if len(rs) != 1 || rs[0].Seq != nil || !strings.Contains(rs[0].Error, "could not store") {
		t.Fatalf("replies %+v", rs)
	}
	var r reply
	if err := ws.ReadJSON(&r); err != nil || r.Ack == nil || *r.Ack != 1 {
		t.Fatalf("ack after the failure: %+v %v; want 1", r, err)
	}
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseInternalServerErr) {
		t.Fatalf("after a store failure: %v; want close 1011", err)
	}
	if err := d.serveResult(t); !errors.Is(err, ErrStore) {
		t.Fatalf("ServeDevice returned %v", err)
	}
	// The device reconnects and resends what was not acked.
	ws = d.dial(t)
	if rs := exchange(t, ws, websocket.TextMessage, env(2, hrObs)); *rs[0].Ack != 2 {
		t.Fatalf("resend: %+v", rs)
	}
	if d.st.count() != 2 {
		t.Fatalf("stored %d, want 2", d.st.count())
	}
}

func TestServeDeviceContextEndCloses1001(t *testing.T) {
	d := newDeviceServer(t)
	ws := d.dial(t)
	exchange(t, ws, websocket.TextMessage, env(1, hrObs))
	d.cancel()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("after shutdown: %v; want close 1001", err)
	}
	if err := d.serveResult(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("ServeDevice returned %v", err)
	}
}

// TestServeDeviceAcksABurstOnce sends a burst of numerics and waveform
// frames without waiting: every message is published, stored once, and
// acknowledged by a few cumulative acks, not one per message.
func TestServeDeviceAcksABurstOnce(t *testing.T) {
	d := newDeviceServer(t)
	d.every = 200 * time.Millisecond
	ws := d.dial(t)
	const n = 60
	for seq := int64(1); seq <= n; seq++ {
		kind, frame := websocket.TextMessage, env(seq, hrObs)
		if seq%3 != 0 {
			kind, frame = websocket.BinaryMessage, binFrame(t, seq, ecgChunk())
		}
		if err := ws.WriteMessage(kind, frame); err != nil {
			t.Fatal(err)
		}
	}
	acks := 0
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for last := int64(0); last < n; {
		var r reply
		if err := ws.ReadJSON(&r); err != nil || r.Ack == nil || *r.Ack <= last {
			t.Fatalf("after ack %d: %+v %v; want a higher ack", last, r, err)
		}
		last = *r.Ack
		acks++
	}
	if acks > 5 {
		t.Errorf("%d acks for a burst of %d messages; want a few cumulative ones", acks, n)
	}
	if d.st.count() != n/3 || d.st.last(devID) != n || d.pub.count(patientID) != n {
		t.Fatalf("stored %d up to %d, published %d; want %d up to %d, published %d", d.st.count(), d.st.last(devID), d.pub.count(patientID), n/3, n, n)
	}
}

// TestServeDeviceDropMidBatchStoresOnce drops the connection while a
// commit waits for its interval: what was accepted is stored before the
// device may reconnect, and resending all of it, acked or not, stores
// nothing twice.
func TestServeDeviceDropMidBatchStoresOnce(t *testing.T) {
	d := newDeviceServer(t)
	d.every = time.Hour // only the first message is acked before the drop
	ws := d.dial(t)
	const n = 30
	if rs := exchange(t, ws, websocket.TextMessage, env(1, hrObs)); *rs[0].Ack != 1 {
		t.Fatalf("first message: %+v", rs)
	}
	// The device pauses before it streams. Until a message comes ahead of
	// an ack, the server probes whether the device streams by holding the
	// ack for twice the last gap between messages (committer.wait): the
	// third must come within that. With the gap the exchange's round trip
	// (a fraction of a millisecond), a loaded machine that paused the
	// server between two of the writes below let the probe commit, as if
	// the device waited for each ack; 250 ms makes the hold half a second.
	time.Sleep(250 * time.Millisecond)
	for seq := int64(2); seq <= n; seq++ {
		if err := ws.WriteMessage(websocket.TextMessage, env(seq, hrObs)); err != nil {
			t.Fatal(err)
		}
	}
	// A frame without a readable seq is answered at once, after the n
	// before it are read and published.
	if err := ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	for {
		var r reply
		if err := ws.ReadJSON(&r); err != nil {
			t.Fatal(err)
		}
		if r.Error != "" && r.Seq == nil {
			break
		}
	}
	if d.pub.count(patientID) != n || d.st.last(devID) != 1 {
		t.Fatalf("before the drop: published %d, stored up to %d; want %d published, stored up to 1", d.pub.count(patientID), d.st.last(devID), n)
	}
	_ = ws.NetConn().Close() // no close frame: the link is gone
	if err := d.serveResult(t); err == nil {
		t.Fatal("ServeDevice returned nil after a dropped link")
	}
	if d.st.last(devID) != n || d.st.count() != n {
		t.Fatalf("after the drop: stored %d up to %d; want %d up to %d", d.st.count(), d.st.last(devID), n, n)
	}
	ws = d.dial(t) // first ack: n
	for seq := int64(1); seq <= n; seq++ {
		if rs := exchange(t, ws, websocket.TextMessage, env(seq, hrObs)); len(rs) != 1 || *rs[0].Ack != n {
			t.Fatalf("resend %d: %+v; want ack %d", seq, rs, n)
		}
	}
	if d.st.count() != n || d.pub.count(patientID) != n {
		t.Fatalf("after resending: stored %d, published %d; want %d each", d.st.count(), d.pub.count(patientID), n)
	}
}

// TestServeDeviceStopAndWaitIsAckedAtOnce: a device that sends its next
// message only once the last is acked gets each ack at once, not one a
// second: holding its ack would stall it.
func TestServeDeviceStopAndWaitIsAckedAtOnce(t *testing.T) {
	d := newDeviceServer(t)
	d.every = 2 * time.Second
	ws := d.dial(t)
	const n = 20
	// Held for the interval's slot, the same n would take n-1 intervals;
	// all of them must get through within one (a few milliseconds here).
	start := time.Now()
	for seq := int64(1); seq <= n; seq++ {
		kind, frame := websocket.TextMessage, env(seq, hrObs)
		if seq%2 == 0 {
			kind, frame = websocket.BinaryMessage, binFrame(t, seq, ecgChunk())
		}
		if rs := exchange(t, ws, kind, frame); len(rs) != 1 || *rs[0].Ack != seq {
			t.Fatalf("message %d: replies %+v; want its ack", seq, rs)
		}
		if took := time.Since(start); took >= d.every {
			t.Fatalf("%d stop-and-wait messages took %v; want all %d within the ack interval %v", seq, took, n, d.every)
		}
	}
	if d.st.count() != n/2 || d.st.last(devID) != n || d.pub.count(patientID) != n {
		t.Fatalf("stored %d up to %d, published %d", d.st.count(), d.st.last(devID), d.pub.count(patientID))
	}
}

// TestServeDeviceSteadyStreamIsBatched: a device streaming at a steady
// rate, slower than a commit takes, without waiting for acks, is acked
// about once an interval, not once a message: its messages come ahead of
// their acks, so each ack waits for the device's commit slot.
//
// Telling such a device from one that waits for each ack takes a probe
// (see committer), which a loaded machine fails by stalling the device,
// or the server's read, for longer than a gap between messages: the
// device is then acked once a message until the next probe an interval
// later. A count over a fixed stretch of the stream is therefore at the
// mercy of the scheduler. Instead the device streams until its acks show
// the batching over several intervals running, and fails if they have not
// within a generous limit: a server that acks every message, or commits
// faster or slower than its interval, never shows it, while a stall only
// delays it to a later stretch.
func TestServeDeviceSteadyStreamIsBatched(t *testing.T) {
	d := newDeviceServer(t)
	d.every = 300 * time.Millisecond
	ws := d.dial(t)
	const (
		gap       = 30 * time.Millisecond // between two messages: ten an interval
		perEvery  = 10
		intervals = 4  // the stretch of batched acks looked for
		limit     = 20 // intervals of streaming without it that fail the test
	)
	stop := make(chan struct{})
	type result struct {
		sent int64
		err  error
	}
	sent := make(chan result, 1)
	go func() {
		tick := time.NewTicker(gap)
		defer tick.Stop()
		var seq int64
		for {
			select {
			case <-stop:
				sent <- result{seq, nil}
				return
			case <-tick.C:
			}
			if err := ws.WriteMessage(websocket.TextMessage, env(seq+1, hrObs)); err != nil {
				sent <- result{seq, err}
				return
			}
			seq++
		}
	}()
	type ack struct {
		at  time.Time
		seq int64
	}
	// batched reports whether the last intervals+1 acks came one an
	// interval: they span that many intervals (give or take one, for the
	// delivery of the first and the last), and acknowledge at least half
	// the messages the device sends in that time, five or more an ack.
	batched := func(acks []ack) bool {
		if len(acks) < intervals+1 {
			return false
		}
		first, last := acks[len(acks)-intervals-1], acks[len(acks)-1]
		span := last.at.Sub(first.at)
		return span >= (intervals-1)*d.every && span <= (intervals+1)*d.every &&
			last.seq-first.seq >= intervals*perEvery/2
	}
	start := time.Now()
	var acks []ack
	for !batched(acks) {
		if time.Since(start) > limit*d.every {
			close(stop)
			t.Fatalf("%d acks for %d messages sent every %v over %v, and no %d running one an interval (%v) apart",
				len(acks), acks[len(acks)-1].seq, gap, time.Since(start).Round(time.Millisecond), intervals+1, d.every)
		}
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		var r reply
		if err := ws.ReadJSON(&r); err != nil || r.Ack == nil || (len(acks) > 0 && *r.Ack <= acks[len(acks)-1].seq) {
			close(stop)
			t.Fatalf("after %d acks: %+v %v; want a higher ack", len(acks), r, err)
		}
		acks = append(acks, ack{time.Now(), *r.Ack})
	}
	close(stop)
	res := <-sent
	if res.err != nil {
		t.Fatal(res.err)
	}
	t.Logf("%d acks for the first %d messages, streamed over %v", len(acks), acks[len(acks)-1].seq, time.Since(start).Round(time.Millisecond))
	// Everything sent is stored once the device closes, batched or not.
	_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	if err := d.serveResult(t); err != nil {
		t.Fatalf("normal close: ServeDevice returned %v", err)
	}
	if n := int(res.sent); d.st.count() != n || d.st.last(devID) != res.sent {
		t.Fatalf("stored %d up to %d; want %d", d.st.count(), d.st.last(devID), n)
	}
}
