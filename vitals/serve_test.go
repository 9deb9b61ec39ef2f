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
// rate, slower than a commit takes, without waiting for acks, is still
// acked about once an interval, not once a message: its messages come
// ahead of their acks.
func TestServeDeviceSteadyStreamIsBatched(t *testing.T) {
	d := newDeviceServer(t)
	d.every = 300 * time.Millisecond
	ws := d.dial(t)
	// 1.8 s of messages, ten an interval. A probe holds an ack for two
	// gaps, so a machine that stalls the device (or the server's read)
	// for more than a gap can fail one: the device then looks like it
	// waits for its acks, and gets one a message until the next probe an
	// interval later. Ten messages an interval keep that cost to ten
	// acks, well apart from the sixty of acking every message.
	const n, every = 60, 30 * time.Millisecond
	sent := make(chan error, 1)
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for seq := int64(1); seq <= n; seq++ {
			<-tick.C
			if err := ws.WriteMessage(websocket.TextMessage, env(seq, hrObs)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	acks := 0
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for last := int64(0); last < n; {
		var r reply
		if err := ws.ReadJSON(&r); err != nil || r.Ack == nil || *r.Ack <= last {
			t.Fatalf("after ack %d: %+v %v; want a higher ack", last, r, err)
		}
		last = *r.Ack
		acks++
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d acks for %d messages", acks, n)
	// About 1.8 s / 300 ms, plus the first message's and a probe's; a
	// probe or two lost to a stalled machine add ten each.
	if acks > n/2 {
		t.Errorf("%d acks for %d messages streamed over %v; want about one per %v", acks, n, n*every, d.every)
	}
	if d.st.count() != n || d.st.last(devID) != n {
		t.Fatalf("stored %d up to %d; want %d", d.st.count(), d.st.last(devID), n)
	}
}
