package vitals

import (
	"context"

	"github.com/gorilla/websocket"
)

// HandleBinary processes one binary frame, a waveform frame
// (docs/protocol.md, "Binary waveform frames"), under the same contract as
// Handle: the frame's seq is handled exactly once and in order with the
// JSON envelopes' (they share one sequence), a frame that cannot be
// decoded is rejected as {"error", "seq"}, and one whose seq cannot be
// read gets a lone {"error"}.
func (in *Ingester) HandleBinary(ctx context.Context, frame []byte) (replies [][]byte) {
	return in.handleNow(ctx, websocket.BinaryMessage, frame)
}
