package live

// Entry is one message of a stream as its history keeps it.
type Entry struct {
	Offset int64
	At     int64  // Unix milliseconds when the stream took it
	Bulky  bool   // a waveform chunk: fresh viewers get only the last few seconds
	Msg    []byte // the encoded message, patient and offset inside
}

// ring is a stream's history: the newest entries, bounded in count and in
// bytes of Msg. Its buffer grows as entries come, up to maxMsgs, so a
// stream that holds little (an idle patient) costs little: a full buffer
// of the default 2,400 entries is some 115 KB.
type ring struct {
	buf      []Entry
	head, n  int
	bytes    int
	maxMsgs  int
	maxBytes int
}

// ringStart is the buffer a ring allocates for its first entry: enough
// for what a patient whose device is connected but idle holds (its
// connection event and a reading or two), and a streaming device grows it
// within its first second.
const ringStart = 4

// newRing returns an empty ring, which allocates on its first push.
func newRing(maxMsgs, maxBytes int) ring {
	return ring{maxMsgs: maxMsgs, maxBytes: maxBytes}
}

// grow doubles the buffer (an empty one gets ringStart entries), up to
// maxMsgs, putting the entries in order from index 0.
func (r *ring) grow() {
	buf := make([]Entry, min(max(2*len(r.buf), ringStart), r.maxMsgs))
	for i := range r.n {
		buf[i] = *r.at(i)
	}
	r.buf, r.head = buf, 0
}

func (r *ring) at(i int) *Entry { return &r.buf[(r.head+i)%len(r.buf)] }

func (r *ring) push(e Entry) {
	for r.n > 0 && (r.n == r.maxMsgs || r.bytes+len(e.Msg) > r.maxBytes) {
		r.popFront()
	}
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)%len(r.buf)] = e
	r.n++
	r.bytes += len(e.Msg)
}

func (r *ring) popFront() {
	e := r.at(0)
	r.bytes -= len(e.Msg)
	*e = Entry{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
}

func (r *ring) reset() {
	for r.n > 0 {
		r.popFront()
	}
	r.head = 0
}

// first is the oldest offset held, or 0 when empty.
func (r *ring) first() int64 {
	if r.n == 0 {
		return 0
	}
	return r.at(0).Offset
}

// from returns the index of offset off, or -1.
func (r *ring) index(off int64) int {
	if r.n == 0 {
		return -1
	}
	i := int(off - r.at(0).Offset)
	if i < 0 || i >= r.n || r.at(i).Offset != off {
		return -1
	}
	return i
}
