package live

// Entry is one message of a stream, as a feed hands it over.
type Entry struct {
	Offset int64
	At     int64  // Unix milliseconds when the stream took it
	Bulky  bool   // a waveform chunk: fresh viewers get only the last few seconds
	Msg    []byte // the encoded message, patient and offset inside
}

// ring is a stream's history: the newest messages, bounded in count and in
// bytes. It is built so that the garbage collector has nothing to trace
// per message, however many it holds: a message's bytes live in a few
// large blocks, and its record (offset, time, where its bytes are) holds
// no pointer. A full history of a streaming patient is some 2,400 records
// and 40 blocks, where a slice per message would be 2,400 objects to mark
// at every collection, times the number of patients.
//
// Blocks are only ever appended to: the bytes of a message never change
// once written, so the slice of a block handed to viewers stays valid for
// as long as they hold it, after the ring has dropped the block. A block is
// dropped once no record refers to it.
//
// Both the records and the blocks grow as messages come, so a stream that
// holds little (an idle patient) costs little. While a ring holds less
// than gatherMax bytes, a new block also takes a copy of the messages it
// holds, and the older blocks are dropped (a viewer still holding one of
// their messages keeps that block, unchanged): an idle patient's device
// event, first reading and NEWS2 score (about 1.1 KB) share one block
// instead of filling blocks of 256, 512 and 1,024 bytes.
type ring struct {
	recs     []rec
	head, n  int
	blocks   [][]byte // oldest first; blocks[i] is block number base+i
	base     uint32
	bytes    int // bytes of the messages held
	maxMsgs  int
	maxBytes int
}

// rec is where a ring keeps one message: no pointers.
type rec struct {
	offset int64
	at     int64
	blk    uint32 // block number
	pos    int32  // start in the block
	len    int32
	bulky  bool
}

const (
	// ringStart is the number of records a ring allocates for its first
	// message: enough for what a patient whose device is connected but idle
	// holds (its connection event and a reading or two); a streaming
	// device grows it within its first second.
	ringStart = 4
	// blockStart and blockMax bound the size of a new block, which is
	// twice the last one: small for an idle patient, and at most some 40
	// blocks for a full history.
	blockStart = 256
	blockMax   = 16 << 10
	// gatherMax is the most a ring holds for a new block to take a copy
	// of it: copying stays cheap, and only a stream's first messages do.
	gatherMax = 4 << 10
	// encodeRoom is what Encode adds to a body, at most.
	encodeRoom = 64
)

// newRing returns an empty ring, which allocates on its first push.
func newRing(maxMsgs, maxBytes int) ring {
	return ring{maxMsgs: maxMsgs, maxBytes: maxBytes}
}

func (r *ring) at(i int) *rec { return &r.recs[(r.head+i)%len(r.recs)] }

// msg is the message of record e, which stays valid after the ring drops it.
func (r *ring) msg(e *rec) []byte {
	b := r.blocks[e.blk-r.base]
	return b[e.pos : e.pos+e.len : e.pos+e.len]
}

// entry is record i as an Entry.
func (r *ring) entry(i int) Entry {
	e := r.at(i)
	return Entry{Offset: e.offset, At: e.at, Bulky: e.bulky, Msg: r.msg(e)}
}

// push keeps a copy of e's message and returns the copy.
func (r *ring) push(e Entry) []byte {
	r.makeRoom(len(e.Msg))
	tail := r.tail(len(e.Msg))
	pos := len(*tail)
	*tail = append(*tail, e.Msg...)
	return r.record(e.Offset, e.At, e.Bulky, pos, len(e.Msg))
}

// pushEncoded encodes body as message offset of patient straight into the
// ring (Encode without an allocation of its own) and returns the message.
func (r *ring) pushEncoded(patient, offset, at int64, bulky bool, body []byte) []byte {
	r.makeRoom(len(body) + encodeRoom)
	tail := r.tail(len(body) + encodeRoom)
	pos := len(*tail)
	*tail = AppendEncoded(*tail, patient, offset, body)
	return r.record(offset, at, bulky, pos, len(*tail)-pos)
}

// makeRoom drops the oldest messages until one of size more fits both
// bounds (an oversized message still goes in, alone).
func (r *ring) makeRoom(size int) {
	for r.n > 0 && (r.n == r.maxMsgs || r.bytes+size > r.maxBytes) {
		r.popFront()
	}
	if r.n == len(r.recs) {
		r.grow()
	}
}

// tail returns the block to append a message of up to size bytes to,
// starting a new one when the newest lacks the room. Bytes already written
// are never moved: a new block is a new allocation.
func (r *ring) tail(size int) *[]byte {
	if k := len(r.blocks); k > 0 {
		if b := &r.blocks[k-1]; cap(*b)-len(*b) >= size {
			return b
		}
	}
	next := blockStart
	if k := len(r.blocks); k > 0 {
		next = min(2*cap(r.blocks[k-1]), blockMax)
	}
	if r.n > 0 && r.bytes+size <= gatherMax {
		return r.gather(max(next, r.bytes+size))
	}
	r.blocks = append(r.blocks, make([]byte, 0, max(next, size)))
	return &r.blocks[len(r.blocks)-1]
}

// gather copies the messages held into a new block of capacity size, the
// only block left, and returns it. The old blocks are not written again.
func (r *ring) gather(size int) *[]byte {
	b := make([]byte, 0, size)
	blk := r.base + uint32(len(r.blocks))
	for i := range r.n {
		e := r.at(i)
		m := r.msg(e)
		e.blk, e.pos = blk, int32(len(b))
		b = append(b, m...)
	}
	clear(r.blocks)
	r.blocks = append(r.blocks[:0], b)
	r.base = blk
	return &r.blocks[0]
}

// record adds the record of a message just written at pos of the newest
// block, and returns the message.
func (r *ring) record(offset, at int64, bulky bool, pos, size int) []byte {
	e := r.at(r.n)
	*e = rec{offset: offset, at: at, blk: r.base + uint32(len(r.blocks)-1), pos: int32(pos), len: int32(size), bulky: bulky}
	r.n++
	r.bytes += size
	return r.msg(e)
}

// grow doubles the records (an empty ring gets ringStart), up to maxMsgs,
// putting them in order from index 0.
func (r *ring) grow() {
	recs := make([]rec, min(max(2*len(r.recs), ringStart), r.maxMsgs))
	for i := range r.n {
		recs[i] = *r.at(i)
	}
	r.recs, r.head = recs, 0
}

func (r *ring) popFront() {
	e := r.at(0)
	r.bytes -= int(e.len)
	r.head = (r.head + 1) % len(r.recs)
	r.n--
	// Drop the blocks no record refers to any more, but keep the newest
	// for the next message.
	keep := uint32(len(r.blocks) - 1)
	if r.n > 0 {
		keep = r.at(0).blk - r.base
	}
	if keep > 0 {
		clear(r.blocks[:keep])
		r.blocks = r.blocks[keep:]
		r.base += keep
	}
}

func (r *ring) reset() {
	r.head, r.n, r.bytes = 0, 0, 0
	clear(r.blocks)
	r.blocks = r.blocks[:0]
}

// first is the oldest offset held, or 0 when empty.
func (r *ring) first() int64 {
	if r.n == 0 {
		return 0
	}
	return r.at(0).offset
}

// index returns the index of offset off, or -1.
func (r *ring) index(off int64) int {
	if r.n == 0 {
		return -1
	}
	i := int(off - r.at(0).offset)
	if i < 0 || i >= r.n || r.at(i).offset != off {
		return -1
	}
	return i
}
