package vitals

import (
	"bytes"
	"context"
)

// HandleBinary processes one binary frame, a waveform frame
// (docs/protocol.md, "Binary waveform frames"), under the same contract as
// Handle: the frame's seq is handled exactly once and in order with the
// JSON envelopes' (they share one sequence), a frame that cannot be
// decoded is rejected as {"error", "seq"}, and one whose seq cannot be
// read gets a lone {"error"}.
func (in *Ingester) HandleBinary(ctx context.Context, frame []byte) (replies [][]byte) {
	seq, err := WaveFrameSeq(frame)
	if err != nil {
		in.err = nil
		return [][]byte{errorReply(err.Error(), 0)}
	}
	if seq > in.dev.LastSeq+1 {
		frame = bytes.Clone(frame) // held past this call: not the caller's buffer
	}
	replies, in.err = in.handleSeq(ctx, seq, held{bin: frame})
	return replies
}
