package web

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// TestViewerNetConnNeverWaits writes far more than a socket buffers to a
// peer that is not reading: no write waits, the bytes the socket did not
// take are kept and reported once, and when the peer reads, flush
// delivers every byte in order.
func TestViewerNetConnNeverWaits(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("writes are tried on Unix sockets only")
	}
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
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	server := <-accepted
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
