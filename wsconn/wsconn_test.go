package wsconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// serve runs handle on the server side of one real WebSocket and returns the
// client side.
func serve(t *testing.T, opts Options, handle func(*Conn)) *websocket.Conn {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := New(ws, opts)
		defer c.Close()
		handle(c)
		close(done)
	}))
	t.Cleanup(func() {
		srv.Close()
	})
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close(); <-done })
	return ws
}

func TestSendDeliversInOrder(t *testing.T) {
	ws := serve(t, Options{}, func(c *Conn) {
		for i := range 100 {
			if err := c.Send([]byte{byte(i)}); err != nil {
				t.Errorf("send %d: %v", i, err)
			}
		}
		_, _, _ = c.Read(context.Background()) // until the client closes
	})
	for i := range 100 {
		_, b, err := ws.ReadMessage()
		if err != nil || len(b) != 1 || b[0] != byte(i) {
			t.Fatalf("message %d: %v %v", i, b, err)
		}
	}
}

func TestSlowPeerIsDroppedNotWaitedFor(t *testing.T) {
	result := make(chan error, 1)
	serve(t, Options{QueueLen: 4, WriteTimeout: time.Second}, func(c *Conn) {
		// The client never reads: the socket buffers fill, then the queue.
		big := make([]byte, 64<<10)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if err := c.Send(big); err != nil {
				result <- err
				return
			}
		}
		result <- errors.New("send never failed")
	})
	select {
	case err := <-result:
		if !errors.Is(err, ErrSlow) && !errors.Is(err, ErrClosed) {
			t.Fatalf("send to a stalled peer: %v, want ErrSlow or ErrClosed", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("send blocked on a stalled peer")
	}
}

func TestReadLimitClosesWith1009(t *testing.T) {
	ws := serve(t, Options{ReadLimit: 1024}, func(c *Conn) {
		if _, _, err := c.Read(context.Background()); err == nil {
			t.Error("oversized message was read")
		}
	})
	if err := ws.WriteMessage(websocket.TextMessage, make([]byte, 2048)); err != nil {
		t.Fatal(err)
	}
	_, _, err := ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("got %v, want close 1009", err)
	}
}

func TestCloseWithSendsReason(t *testing.T) {
	ws := serve(t, Options{}, func(c *Conn) {
		c.CloseWith(websocket.ClosePolicyViolation, "replaced")
		if err := c.Send([]byte("late")); !errors.Is(err, ErrClosed) {
			t.Errorf("send after close: %v, want ErrClosed", err)
		}
	})
	_, _, err := ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != "replaced" {
		t.Fatalf("got %v, want close 1008 'replaced'", err)
	}
}

// TestRateRefusesMessagesBeyondIt: with a bucket of three that never
// refills, three messages are read, the fourth gives ErrTooFast with the
// connection still open (the reply arrives), and the bucket is shared by
// every connection given it.
func TestRateRefusesMessagesBeyondIt(t *testing.T) {
	lim := NewRate(0, 3)
	got := make(chan string, 8)
	ws := serve(t, Options{Rate: lim}, func(c *Conn) {
		for {
			_, b, err := c.Read(context.Background())
			if errors.Is(err, ErrTooFast) {
				got <- "too fast"
				_ = c.Send([]byte("slow down"))
				continue
			}
			if err != nil {
				return
			}
			got <- string(b)
		}
	})
	for _, m := range []string{"a", "b", "c", "d"} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"a", "b", "c", "too fast"} {
		if g := <-got; g != want {
			t.Fatalf("read %q, want %q", g, want)
		}
	}
	if _, b, err := ws.ReadMessage(); err != nil || string(b) != "slow down" {
		t.Fatalf("reply after ErrTooFast: %q, %v", b, err)
	}
	// A second connection with the same limiter has nothing left.
	ws2 := serve(t, Options{Rate: lim}, func(c *Conn) {
		_, _, err := c.Read(context.Background())
		got <- fmt.Sprint(err)
	})
	if err := ws2.WriteMessage(websocket.TextMessage, []byte("e")); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != ErrTooFast.Error() {
		t.Fatalf("second connection's first read: %s, want %v", g, ErrTooFast)
	}
}

// TestReadLentReadsEachMessage: messages of every size up to the limit
// arrive whole and in order through lent arrays, each array reused once
// released, and a message over the limit closes with 1009 as Read does.
func TestReadLentReadsEachMessage(t *testing.T) {
	const limit = 40 << 10
	sizes := []int{0, 1, 300, 1024, 1025, 5000, limit}
	got := make(chan []byte, len(sizes))
	ws := serve(t, Options{ReadLimit: limit}, func(c *Conn) {
		for {
			kind, m, err := c.ReadLent(context.Background())
			if err != nil {
				close(got)
				return
			}
			if kind != websocket.BinaryMessage {
				t.Errorf("kind %d", kind)
			}
			got <- bytes.Clone(m.Data)
			m.Data[0:cap(m.Data)][0] = 0xff // what a reuse would overwrite
			m.Release()
		}
	})
	for i, n := range sizes {
		msg := make([]byte, n)
		for j := range msg {
			msg[j] = byte(i + j)
		}
		if err := ws.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			t.Fatal(err)
		}
		if b := <-got; !bytes.Equal(b, msg) {
			t.Fatalf("message %d of %d bytes: got %d bytes, not as sent", i, n, len(b))
		}
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, make([]byte, limit+1)); err != nil {
		t.Fatal(err)
	}
	_, _, err := ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("got %v, want close 1009", err)
	}
	if _, open := <-got; open {
		t.Fatal("the oversized message was read")
	}
}
