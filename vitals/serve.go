package vitals

import (
	"context"
	"errors"
	"fmt"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/wsconn"
)

// tooFast tells a device that sent frames faster than its rate allows what
// to do.
const tooFast = "too many messages: pause, reconnect and resend from the last ack"

// ServeDevice runs one device connection until it closes: it first sends
// {"ack": N}, N the highest sequence already handled for the device, so a
// relay that does not keep its numbering (a browser page) continues from
// N+1; then it reads each frame (a text envelope, or a binary waveform
// frame) and hands it to ing.Accept, which publishes it live at once, and
// sends its replies. What is accepted is stored by ing.Commit off the read
// loop, at once after a quiet spell and then at most once per
// ing's ack interval, each commit acknowledging every message before it
// with one {"ack": N}. It returns nil when the device closes normally, and
// otherwise why the connection ended; before it returns, everything
// accepted is committed.
//
// A frame over conn's read limit makes gorilla/websocket close the
// connection with code 1009 (message too big). A Sink failure closes it with
// 1011 and a gap too large to hold with 1013 (try again later), after the
// replies, so the device reconnects and resends what is not acked. A frame
// beyond conn's message rate (wsconn.ErrTooFast) is not handled: the device
// is told so and the connection closed with 1008 (policy violation), and it
// resends from its last ack after reconnecting, so nothing is lost. When ctx
// ends the connection is closed with 1001 (going away).
func ServeDevice(ctx context.Context, conn *wsconn.Conn, ing *Ingester) error {
	stop := context.AfterFunc(ctx, func() { conn.CloseWith(websocket.CloseGoingAway, "server shutting down") })
	defer stop()
	if err := conn.Send(ackReply(ing.LastSeq())); err != nil {
		return fmt.Errorf("send first ack: %w", err)
	}
	// The committer queues each ack for the socket's writer and goes on:
	// a device that stops reading must not hold up the commits of what it
	// keeps sending (TestCommitsGoOnWhileTheDeviceDoesNotRead).
	c := &committer{ing: ing, every: ing.ackEvery, ctx: context.WithoutCancel(ctx), send: conn.Send,
		fail: func(error) {
			conn.CloseWith(websocket.CloseInternalServerErr, "could not store; reconnect and resend from the last ack")
		}}
	// Whatever way the connection ends, what was accepted is stored.
	defer c.close(context.WithoutCancel(ctx))
	for {
		kind, frame, err := conn.ReadLent(ctx)
		if err != nil {
			if herr := ing.Err(); errors.Is(herr, ErrStore) {
				return herr
			}
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.Is(err, websocket.ErrReadLimit):
				return fmt.Errorf("device frame too large: %w", err)
			case errors.Is(err, wsconn.ErrTooFast):
				_ = conn.Send(errorReply(tooFast, 0))
				c.close(context.WithoutCancel(ctx))
				conn.CloseWith(websocket.ClosePolicyViolation, tooFast)
				return fmt.Errorf("device frames: %w", err)
			case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway):
				return nil
			}
			return fmt.Errorf("read device frame: %w", err)
		}
		replies := ing.Accept(ctx, kind, frame.Data) // copies what it keeps
		frame.Release()
		for _, r := range replies {
			if err := conn.Send(r); err != nil {
				return fmt.Errorf("send reply: %w", err)
			}
		}
		accepted, stored, herr := ing.progress()
		if herr != nil {
			if errors.Is(herr, ErrStore) {
				return herr // the commit has closed the connection
			}
			c.close(context.WithoutCancel(ctx)) // ack what came before the gap
			conn.CloseWith(websocket.CloseTryAgainLater, "sequence gap too large; resend from the last ack")
			return herr
		}
		c.poke(accepted, stored)
	}
}
