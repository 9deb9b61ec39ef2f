package web

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestViewerNetConnNeverWaits writes far more than a socket buffers to a
// peer that is not reading: no write waits, the bytes the socket did not
// take are kept and reported once, and when the peer reads, flush
// delivers every byte in order.
func TestViewerNetConnNeverWaits(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("writes are tried on Unix sockets only")
	}
	server, peer := tcpPair(t)
	n := newViewerNetConn(server)
	defer n.Close()
	if n.tw == nil {
		t.Fatal("a TCP connection should be tried")
	}
	var kept int
	n.kept = func() { kept++ }

	var want bytes.Buffer
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	for i := 0; i < 256 && !n.backedUp(); i++ {             // at most 16 MiB
		chunk[0] = byte(i)
		start := time.Now()
		if m, err := n.Write(chunk); err != nil || m != len(chunk) {
			t.Fatalf("write %d: %d, %v", i, m, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("write %d waited %v", i, d)
		}
		want.Write(chunk)
	}
	if !n.backedUp() || kept != 1 {
		t.Fatalf("after %d bytes to a peer not reading: backed up %v, kept reported %d times; want true, 1", want.Len(), n.backedUp(), kept)
	}
	// More while backed up is kept behind, in order, without a report.
	chunk[0] = 'x'
	if _, err := n.Write(chunk); err != nil || kept != 1 {
		t.Fatalf("write while backed up: %v, kept reported %d times", err, kept)
	}
	want.Write(chunk)

	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(peer, int64(want.Len())))
		got <- b
	}()
	if err := n.flush(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n.backedUp() {
		t.Fatal("still backed up after flush")
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("peer read %d bytes, not the %d written in order", len(b), want.Len())
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	peer, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	server = <-accepted
	t.Cleanup(func() { server.Close() })
	return server, peer
}

// backUp writes to n until its peer, which does not read, has made it keep
// bytes, and returns what was written.
func backUp(t *testing.T, n *viewerNetConn) []byte {
	t.Helper()
	var written bytes.Buffer
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	for i := 0; !n.backedUp(); i++ {
		if i == 256 {
			t.Fatal("16 MiB to a peer not reading, and nothing kept")
		}
		chunk[0] = byte(i)
		if _, err := n.Write(chunk); err != nil {
			t.Fatal(err)
		}
		written.Write(chunk)
	}
	return written.Bytes()
}

// TestViewerNetConnDeadlines: the deadline gorilla/websocket sets before
// each frame never reaches a socket whose writes are tried (one already
// passed does not fail them); flush still gives up on a peer that does not
// read; and a flush that succeeded leaves no deadline behind to fail the
// writes tried after it.
func TestViewerNetConnDeadlines(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("writes are tried on Unix sockets only")
	}
	t.Run("stuck peer", func(t *testing.T) {
		server, _ := tcpPair(t)
		n := newViewerNetConn(server)
		if err := n.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := n.Write([]byte("frame")); err != nil {
			t.Fatalf("a tried write failed on a passed deadline: %v", err)
		}
		backUp(t, n)
		start := time.Now()
		err := n.flush(100 * time.Millisecond)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("flush to a peer that does not read: %v after %v, want a timeout", err, time.Since(start))
		}
	})
	t.Run("after flush", func(t *testing.T) {
		server, peer := tcpPair(t)
		n := newViewerNetConn(server)
		want := backUp(t, n)
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(io.LimitReader(peer, int64(len(want)+5)))
			got <- b
		}()
		// Long enough for the peer to read what the socket holds on a
		// busy machine; the test then waits it out.
		const timeout = 2 * time.Second
		if err := n.flush(timeout); err != nil {
			t.Fatal(err)
		}
		// Let the flush's deadline pass: a write tried now must not find it.
		time.Sleep(timeout + 100*time.Millisecond)
		if _, err := n.Write([]byte("after")); err != nil {
			t.Fatalf("write tried after the flush's deadline: %v", err)
		}
		if b := <-got; !bytes.Equal(b, append(want, "after"...)) {
			t.Fatalf("peer read %d bytes, want the %d written, in order", len(b), len(want)+5)
		}
	})
}

// TestViewerNetConnWriteText: frames that writeText writes reach a
// gorilla/websocket client whole, as text messages holding the JSON array
// of the messages, at every length the frame header encodes differently
// (7-bit, 16-bit and 64-bit lengths, and their edges); and once gorilla
// has written a close frame no frame follows it.
func TestViewerNetConnWriteText(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("writes are tried on Unix sockets only")
	}
	nets := make(chan *viewerNetConn, 1)
	wss := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj := &viewerHijacker{ResponseWriter: w}
		ws, err := (&websocket.Upgrader{}).Upgrade(hj, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		nets <- hj.conn
		wss <- ws
	}))
	defer srv.Close()
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	n, ws := <-nets, <-wss
	defer ws.Close()
	if n.tw == nil {
		t.Fatal("a TCP connection should be tried")
	}
	msg := func(size int) []byte { return []byte(`"` + strings.Repeat("x", size-2) + `"`) }
	for _, msgs := range [][][]byte{
		{msg(2)},
		{msg(123)},                        // 125 bytes: the largest 7-bit length
		{msg(124)},                        // 126: the smallest 16-bit one
		{msg(60), msg(63)},                // 126, with a comma
		{msg(0xffff - 2)},                 // 65535: the largest 16-bit one
		{msg(0xffff - 1)},                 // 65536: a 64-bit one
		{msg(300), msg(70 << 10), msg(5)}, // larger than writeFrame gives it, as it may be given
	} {
		want := append(append([]byte{'['}, bytes.Join(msgs, []byte{','})...), ']')
		written := make(chan error, 1)
		go func() {
			err := n.writeText(msgs, textFrameSize(msgs))
			if err == nil {
				err = n.flush(10 * time.Second) // what the socket did not take at once
			}
			written <- err
		}()
		kind, got, err := client.ReadMessage()
		if err != nil || kind != websocket.TextMessage || !bytes.Equal(got, want) {
			t.Fatalf("frame of %d bytes: read kind %d, %d bytes, %v; want the text message written", len(want), kind, len(got), err)
		}
		if err := <-written; err != nil {
			t.Fatalf("frame of %d bytes: %v", len(want), err)
		}
	}
	if err := ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := n.writeText([][]byte{msg(10)}, 12); !errors.Is(err, websocket.ErrCloseSent) {
		t.Fatalf("a frame after the close frame: %v, want ErrCloseSent", err)
	}
	if _, _, err := client.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("after the close frame the client read %v, want the close", err)
	}
}
