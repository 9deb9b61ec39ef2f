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
// frame), hands it to ing and sends the replies. It returns nil when the
// device closes normally, and otherwise why the connection ended.
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
	for {
		kind, frame, err := conn.Read(ctx)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.Is(err, websocket.ErrReadLimit):
				return fmt.Errorf("device frame too large: %w", err)
			case errors.Is(err, wsconn.ErrTooFast):
				_ = conn.Send(errorReply(tooFast, 0))
				conn.CloseWith(websocket.ClosePolicyViolation, tooFast)
				return fmt.Errorf("device frames: %w", err)
			case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway):
				return nil
			}
			return fmt.Errorf("read device frame: %w", err)
		}
		handle := ing.Handle
		if kind == websocket.BinaryMessage {
			handle = ing.HandleBinary // a waveform frame
		}
		for _, r := range handle(ctx, frame) {
			if err := conn.Send(r); err != nil {
				return fmt.Errorf("send reply: %w", err)
			}
		}
		if herr := ing.Err(); herr != nil {
			code, reason := websocket.CloseTryAgainLater, "sequence gap too large; resend from the last ack"
			if errors.Is(herr, ErrStore) {
				code, reason = websocket.CloseInternalServerErr, "could not store; reconnect and resend from the last ack"
			}
			conn.CloseWith(code, reason)
			return herr
		}
	}
}
