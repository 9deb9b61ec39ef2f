package main

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// arrivalConn is a TCP connection whose reads keep when the kernel
// received the data they return (SO_TIMESTAMPNS): when a message reached
// this machine, before any goroutine of this process ran to read it. On a
// machine the tool shares with the server, a reader goroutine's clock also
// counts the tool's own wait for a CPU; the kernel's does not.
type arrivalConn struct {
	*net.TCPConn
	raw  syscall.RawConn
	oob  []byte
	last time.Time // the kernel's receipt of the last read's data; zero if it gave none
}

// newArrivalConn enables receive timestamps on c.
func newArrivalConn(c *net.TCPConn) (*arrivalConn, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, os.NewSyscallError("setsockopt SO_TIMESTAMPNS", serr)
	}
	return &arrivalConn{TCPConn: c, raw: raw, oob: make([]byte, syscall.CmsgSpace(16))}, nil
}

// Read reads as the connection's own Read does (its deadlines hold) and
// keeps the receive time the kernel gave with the data: for TCP, that of
// the last segment the read took, so a message is never counted as
// arriving before its last byte did.
func (c *arrivalConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n, oobn int
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = syscall.Recvmsg(int(fd), p, c.oob, 0)
		return rerr != syscall.EAGAIN
	})
	if err == nil && rerr != nil {
		err = os.NewSyscallError("recvmsg", rerr)
	}
	if err != nil {
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	if n == 0 {
		return 0, io.EOF
	}
	c.last = receivedAt(c.oob[:oobn])
	return n, nil
}

// receivedAt reads the SCM_TIMESTAMPNS control message of oob, or zero.
func receivedAt(oob []byte) time.Time {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}
	}
	for _, m := range msgs {
		// A struct timespec of two 64-bit fields (64-bit kernels).
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS && len(m.Data) == 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:]))
			return time.Unix(sec, nsec)
		}
	}
	return time.Time{}
}

// received is when the data last read from c reached the kernel, if c
// keeps it.
func (c *arrivalConn) received() (time.Time, bool) {
	if c == nil || c.last.IsZero() {
		return time.Time{}, false
	}
	return c.last, true
}

// dialArrival dials TCP as d does, keeping receive times in the
// connection it puts in *kept; where the kernel will not keep them, the
// connection is a plain one and *kept stays nil.
func dialArrival(d *net.Dialer, kept **arrivalConn) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc, ok := c.(*net.TCPConn)
		if !ok {
			return c, nil
		}
		a, err := newArrivalConn(tc)
		if err != nil {
			return c, nil
		}
		*kept = a
		return a, nil
	}
}
