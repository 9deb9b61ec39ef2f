package media

import "sync"

// cacheSize is how many packets of one RTP stream are kept for
// retransmission: about 1.7 s of a 1.5 Mbit/s layer, well beyond the round
// trip of any link a consult can run on.
const cacheSize = 256

// packetCache keeps the last cacheSize packets of one incoming RTP stream,
// by sequence number, to answer subscribers' NACKs. Each slot's buffer is
// reused, so after warm-up storing a packet allocates nothing.
type packetCache struct {
	mu    sync.Mutex
	slots [cacheSize]cacheSlot
}

type cacheSlot struct {
	seq   uint16
	valid bool
	buf   []byte
}

// put stores a copy of pkt, a whole RTP packet with sequence number seq.
func (c *packetCache) put(seq uint16, pkt []byte) {
	c.mu.Lock()
	s := &c.slots[seq%cacheSize]
	s.seq, s.valid = seq, true
	s.buf = append(s.buf[:0], pkt...)
	c.mu.Unlock()
}

// get appends packet seq to dst and returns the result, or dst unchanged if
// the packet is not (or no longer) cached.
func (c *packetCache) get(seq uint16, dst []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.slots[seq%cacheSize]
	if !s.valid || s.seq != seq {
		return dst
	}
	return append(dst, s.buf...)
}
