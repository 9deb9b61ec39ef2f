//go:build !unix

package web

import (
	"net"
	"syscall"
)

// rawConnOf returns nil: writes are only tried on Unix sockets.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

// tryWriter is never made outside Unix.
type tryWriter struct{}

func newTryWriter(syscall.RawConn) *tryWriter { return nil }

func (*tryWriter) try([]byte) (int, bool, error) { panic("unreachable") }
