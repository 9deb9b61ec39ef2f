package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/vitals/live"
)

// TestFloodingViewerIsToldWhyItIsClosed: a viewer that sends beyond its
// message budget is closed with 1008 "too many messages", and that close
// frame reaches it before the connection goes, so it can tell a flood of
// its own from a network fault; then the socket ends as any other.
func TestFloodingViewerIsToldWhyItIsClosed(t *testing.T) {
	// Frames at most once a second: the writer is waiting for its next
	// tick (with the refusal of the second request queued) when the flood
	// reaches the budget, as a writer busy with a frame would be.
	f := newFixtureWith(t, func(d *Deps) { d.VitalsFlush = time.Second })
	v, status := dialVitalsPath(t, f, "doc@example.org", "/ws/vitals")
	if v == nil {
		t.Fatalf("multi-visit socket: %d", status)
	}
	for range 60 { // the budget is a burst of 50; each is refused with an error message
		if err := v.WriteMessage(websocket.TextMessage, []byte(`{"type":"watch","appointment":1}`)); err != nil {
			break
		}
	}
	awaitCloseCode(t, v.Conn, websocket.ClosePolicyViolation, "too many")
	// The reader returned and the socket's end ran: nothing is left behind.
	awaitMetric(t, f, `bedside_limit_refusals_total{limit="vitals-rate"} 1`)
	awaitMetric(t, f, `bedside_websockets_open{kind="vitals"} 0`)
}

// TestPingSkippedWhileBackedUpIsSentSoonAfter: a ping falls due while the
// viewer's socket is backed up, so it is skipped; once the viewer reads
// again, the ping must follow within seconds, not at the next 25 s tick,
// or a viewer that is slow at two ticks running gets no ping for 50 s and
// its reader, waiting 62.5 s for an answer, closes it while it keeps up.
func TestPingSkippedWhileBackedUpIsSentSoonAfter(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("writes are tried on Unix sockets only")
	}
	hub := live.NewHub(live.Config{})
	conns := make(chan *viewerConn, 1)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj := &viewerHijacker{ResponseWriter: w}
		ws, err := up.Upgrade(hj, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		v := hub.NewViewer()
		c := newViewerConn(ws, hj.conn, v, 0, 0)
		if err := hub.Subscribe(context.Background(), v, 1, live.Position{}, 0); err != nil {
			t.Error(err)
		}
		conns <- c
		go func() { _ = c.read(func([]byte) {}) }()
	}))
	defer srv.Close()
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c := <-conns
	defer c.end()
	if c.nc == nil {
		t.Fatal("the viewer's socket should be tried without waiting")
	}
	// Publish until the socket, whose peer does not read, is backed up.
	body := []byte(`{"type":"note","pad":"` + strings.Repeat("x", 32<<10) + `"}`)
	for i := 0; !c.nc.backedUp(); i++ {
		if i == 1000 {
			t.Fatal("the socket never backed up")
		}
		if err := hub.Publish(context.Background(), 1, body); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	c.sendPing() // falls due now, and is skipped
	pinged := make(chan time.Duration, 1)
	client.SetPingHandler(func(string) error {
		select {
		case pinged <- time.Since(start):
		default:
		}
		return nil
	})
	go func() {
		for {
			if _, _, err := client.ReadMessage(); err != nil {
				return
			}
		}
	}()
	select {
	case d := <-pinged:
		t.Logf("ping %v after it fell due on a backed-up socket", d.Round(time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Fatal("no ping within 15 s of the viewer reading again; the skipped ping waited for the next tick")
	}
}
