//go:build !linux

package main

import (
	"context"
	"net"
	"time"
)

// arrivalConn keeps no receive times off Linux: latencies are the
// reader's clock alone.
type arrivalConn struct{}

func (c *arrivalConn) received() (time.Time, bool) { return time.Time{}, false }

func dialArrival(d *net.Dialer, _ **arrivalConn) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return d.DialContext
}
