package web

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestDeviceReconnectOnAnotherNodeReplacesTheOld: a device that reconnects
// through the load balancer to another node (its network changed, the old
// link is half open) has its old connection there closed with "replaced",
// as on one node, and the new one reads where the sequence stands only
// once the old one has committed what it handled: node A, which commits
// once an hour here, has handled message 2 but not yet acknowledged it,
// and node B starts from 2. Without that, both connections would take and
// publish the device's resent messages, and viewers would see them twice.
func TestDeviceReconnectOnAnotherNodeReplacesTheOld(t *testing.T) {
	f := newFixture(t)
	prefix := fmt.Sprintf("test:room:%d:", time.Now().UnixNano())
	a := startNodeWith(t, f, "node-a", prefix, 5*time.Second, func(d *Deps) { d.DeviceAckInterval = time.Hour })
	b := startNode(t, f, "node-b", prefix, 5*time.Second)
	dial := func(url string) (*websocket.Conn, int64) {
		t.Helper()
		ws, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + f.devToken}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		var first reply
		if err := ws.ReadJSON(&first); err != nil || first.Ack == nil {
			t.Fatalf("first message %+v (%v)", first, err)
		}
		return ws, *first.Ack
	}
	old, _ := dial(a.ws("/ws/device"))
	// After a quiet spell the first message is committed at once.
	if ack := lastAck(t, sendFrame(t, old, envelope(1, "8867-4", 70, "/min", ""))); ack != 1 {
		t.Fatalf("ack %d", ack)
	}
	// The second is refused at once, and its sequence waits for the next
	// commit, an hour away.
	if err := old.WriteMessage(websocket.TextMessage, []byte(envelope(2, "8867-4", 500, "/min", ""))); err != nil {
		t.Fatal(err)
	}
	var refused reply
	if err := old.ReadJSON(&refused); err != nil || refused.Seq == nil || *refused.Seq != 2 {
		t.Fatalf("reply to message 2: %+v (%v), want its refusal", refused, err)
	}
	_, from := dial(b.ws("/ws/device"))
	if from != 2 {
		t.Errorf("the new connection on node B starts after %d, want 2: it read the sequence before node A's connection committed", from)
	}
	awaitCloseCode(t, old, websocket.ClosePolicyViolation, "replaced")
}
