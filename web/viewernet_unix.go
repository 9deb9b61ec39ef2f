//go:build unix

package web

import (
	"errors"
	"net"
	"syscall"
)

// rawConnOf returns the descriptor of a plain TCP or Unix connection, nil
// for anything else.
func rawConnOf(c net.Conn) syscall.RawConn {
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return nil
	}
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// tryWriter writes what of a buffer a socket takes without waiting. It is
// reused for every write of one connection, so trying allocates nothing.
type tryWriter struct {
	raw     syscall.RawConn
	write   func(fd uintptr) bool // w.once, made once
	p       []byte
	done    int
	blocked bool
	err     error
}

func newTryWriter(raw syscall.RawConn) *tryWriter {
	if raw == nil {
		return nil
	}
	w := &tryWriter{raw: raw}
	w.write = w.once
	return w
}

// try writes p: done bytes, and blocked if the socket took no more.
func (w *tryWriter) try(p []byte) (done int, blocked bool, err error) {
	w.p, w.done, w.blocked, w.err = p, 0, false, nil
	err = w.raw.Write(w.write)
	done, blocked = w.done, w.blocked
	if err == nil {
		err = w.err
	}
	w.p, w.err = nil, nil
	return done, blocked, err
}

func (w *tryWriter) once(fd uintptr) bool {
	for w.done < len(w.p) {
		k, err := syscall.Write(int(fd), w.p[w.done:])
		if k > 0 {
			w.done += k
		}
		switch {
		case err == nil && k > 0:
		case errors.Is(err, syscall.EINTR):
		case errors.Is(err, syscall.EAGAIN) || err == nil: // full (or took nothing): keep the rest
			w.blocked = true
			return true
		default:
			w.err = err
			return true
		}
	}
	return true
}
