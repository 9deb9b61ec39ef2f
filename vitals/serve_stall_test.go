package vitals

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/wsconn"
)

// stallGate blocks the server's writes to the device while closed, as a
// socket whose peer has stopped reading does once its buffers are full.
type stallGate struct {
	mu     sync.Mutex
	closed bool
	open   chan struct{}
}

func (g *stallGate) shut() { g.mu.Lock(); g.closed, g.open = true, make(chan struct{}); g.mu.Unlock() }
func (g *stallGate) release() {
	g.mu.Lock()
	if g.closed {
		g.closed = false
		close(g.open)
	}
	g.mu.Unlock()
}
func (g *stallGate) wait() {
	g.mu.Lock()
	closed, open := g.closed, g.open
	g.mu.Unlock()
	if closed {
		<-open
	}
}

type stallConn struct {
	net.Conn
	g *stallGate
}

func (c stallConn) Write(b []byte) (int, error) { c.g.wait(); return c.Conn.Write(b) }

type stallListener struct {
	net.Listener
	g *stallGate
}

func (l stallListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return stallConn{c, l.g}, nil
}

// TestCommitsGoOnWhileTheDeviceDoesNotRead: a device whose socket
// takes no more writes (it stopped reading) still has what it sends stored
// at the ack interval, as the store and the NEWS2 observer see it: the
// ack waits in the socket's queue, the commits do not wait for it.
func TestCommitsGoOnWhileTheDeviceDoesNotRead(t *testing.T) {
	g := &stallGate{}
	st := newMemStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan error, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conn := wsconn.New(ws, wsconn.Options{WriteTimeout: 5 * time.Second})
		defer conn.Close()
		in := NewIngester(st, &memPub{}, Device{ID: devID, PatientID: patientID, Name: "hub", LastSeq: st.last(devID)})
		in.WithAckInterval(20 * time.Millisecond)
		ended <- ServeDevice(ctx, conn, in)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(stallListener{ln, g})
	t.Cleanup(func() { g.release(); cancel(); srv.Close(); <-ended })
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+strings.TrimPrefix(ln.Addr().String(), "http://"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var first reply
	if err := ws.ReadJSON(&first); err != nil || first.Ack == nil {
		t.Fatalf("first ack: %+v %v", first, err)
	}
	g.shut() // the device stops reading
	stored := func(seq int64, within time.Duration) bool {
		for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			if st.last(devID) >= seq {
				return true
			}
		}
		return false
	}
	if err := ws.WriteMessage(websocket.TextMessage, env(1, hrObs)); err != nil {
		t.Fatal(err)
	}
	if !stored(1, 2*time.Second) {
		t.Fatal("seq 1 not stored")
	}
	if err := ws.WriteMessage(websocket.TextMessage, env(2, hrObs)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if !stored(2, time.Second) {
		t.Fatalf("seq 2, sent after the socket stopped taking writes, not stored within %v (ack interval 20 ms)", time.Since(start).Round(time.Millisecond))
	}
}
