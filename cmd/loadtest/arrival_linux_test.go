package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestArrivalConnKeepsTheKernelsReceiveTime: a read returns when the
// kernel received its data, not when the reader got to read it.
func TestArrivalConnKeepsTheKernelsReceiveTime(t *testing.T) {
	c, kept, peer := arrivalPair(t)
	if c != net.Conn(kept) {
		t.Fatalf("dialArrival gave %T, want the receive-time connection it kept", c)
	}
	if _, ok := kept.received(); ok {
		t.Error("a receive time before anything was read")
	}

	keepTimestampsOn(t)
	buf := make([]byte, 16)

	sent := time.Now()
	if _, err := peer.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	waitReadable(t, kept)
	// The data is in the kernel; the reader comes to it later.
	time.Sleep(20 * time.Millisecond)
	readAt := time.Now()
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	got, ok := kept.received()
	if !ok {
		t.Fatal("no receive time kept")
	}
	if got.Before(sent.Add(-time.Millisecond)) || !got.Before(readAt) {
		t.Errorf("received at %v; want between the write (%v) and the read (%v)", got, sent, readAt)
	}

	// Deadlines hold, as on the connection's own Read.
	_ = c.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past its deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	peer.Close()
	if _, err := c.Read(buf); err != io.EOF {
		t.Errorf("read after the peer closed: %v, want io.EOF", err)
	}
	c.Close()
	if _, err := c.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after close: %v, want net.ErrClosed", err)
	}
}

// arrivalPair is a loopback connection dialled with dialArrival, the
// receive-time connection it kept, and its peer; they close when the test
// ends.
func arrivalPair(t *testing.T) (net.Conn, *arrivalConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var kept *arrivalConn
	c, err := dialArrival(&net.Dialer{}, &kept)(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	if kept == nil {
		t.Fatal("dialArrival kept no receive-time connection")
	}
	return c, kept, peer
}

// keepTimestampsOn waits until the kernel gives reads receive times, and
// keeps them on until the test ends. Once the first socket asks for them,
// Linux turns them on for the whole system from a work queue, a moment
// later: until then segments come without one (and the loadtest leaves out
// a phase's arrival latencies if any delivery lacks one).
func keepTimestampsOn(t *testing.T) {
	t.Helper()
	c, kept, peer := arrivalPair(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	b := []byte{0}
	for ctx.Err() == nil {
		if _, err := peer.Write(b); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(b); err != nil {
			t.Fatal(err)
		}
		if _, ok := kept.received(); ok {
			return
		}
	}
	t.Fatal("no receive time on any read within 10 s")
}

// waitReadable waits until c's socket holds unread bytes (SIOCINQ, as TIOCINQ).
func waitReadable(t *testing.T, c *arrivalConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		var n int32
		var errno syscall.Errno
		if err := c.raw.Control(func(fd uintptr) {
			_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
		}); err != nil || errno != 0 {
			t.Fatalf("TIOCINQ: %v %v", err, errno)
		}
		if n > 0 {
			return
		}
		runtime.Gosched()
	}
	t.Fatal("no bytes arrived within 10 s")
}

func TestReceivedAtRefusesWhatIsNotATimestamp(t *testing.T) {
	for name, oob := range map[string][]byte{
		"nothing":     nil,
		"truncated":   make([]byte, syscall.SizeofCmsghdr-1),
		"file rights": syscall.UnixRights(0),
	} {
		if got := receivedAt(oob); !got.IsZero() {
			t.Errorf("%s: %v, want none", name, got)
		}
	}
}
