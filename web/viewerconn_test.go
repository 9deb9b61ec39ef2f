package web

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"
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
