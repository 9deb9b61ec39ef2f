package web

import (
	"context"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/wsconn"
)

// replacedReason closes a device's connection that a newer one replaced,
// on this node (deviceRegistry.claim) or on another (Deps.Devices).
const replacedReason = "replaced by a newer connection"

// claimDevice makes conn the device's only connection: on this node
// (deviceRegistry.claim) and, with several nodes (Deps.Devices), in the
// cluster, so a device that reconnects through another node has its old
// connection there closed, and committed, before this one reads the
// device's sequence. Should the other node not answer, the claim goes on
// after Devices' wait: the store still takes each sequence once. release
// is to be called once conn's handler is done.
func (s *server) claimDevice(ctx context.Context, id int64, conn *wsconn.Conn) (release func()) {
	local := s.devices.claim(id, conn)
	if s.Devices == nil {
		return local
	}
	cluster, err := s.Devices.Claim(ctx, id, func() {
		conn.CloseWith(websocket.ClosePolicyViolation, replacedReason)
	})
	if err != nil {
		// Redis is unwell: serve the device here rather than not at all.
		s.Log.WarnContext(ctx, "claim device across nodes", "device", id, "err", err)
		return local
	}
	return func() {
		// The other nodes hear of the end only now: once this
		// connection's last commit is done.
		cluster()
		local()
	}
}
