package media

import (
	"sync"

	"github.com/pion/rtp"
)

// Send queue bounds, in packets, per subscriber connection. Video holds
// about 0.7 s of a 1.5 Mbit/s stream; audio about 0.6 s of one Opus track.
// Each slot holds a payload of slotSize bytes in place; a larger one (up
// to maxDatagram) grows its slot's buffer, which keeps it.
const (
	videoQueueLen = 128
	audioQueueLen = 32
	slotSize      = 1500
)

// outPacket is one rewritten packet waiting to be written to a subscriber.
type outPacket struct {
	dt  *downTrack
	hdr rtp.Header
	buf []byte // the payload
}

func (p *outPacket) payload() []byte { return p.buf }

// sized sets the payload's length to n bytes, growing the slot's buffer
// if n is more than it has held, and returns it.
func (p *outPacket) sized(n int) []byte {
	if cap(p.buf) < n {
		p.buf = make([]byte, n)
	}
	p.buf = p.buf[:n]
	return p.buf
}

// newRing returns a ring of n slots of slotSize bytes, in one allocation.
func newRing(n int) ring {
	r := ring{items: make([]outPacket, n)}
	mem := make([]byte, n*slotSize)
	for i := range r.items {
		r.items[i].buf = mem[i*slotSize : i*slotSize : (i+1)*slotSize]
	}
	return r
}

// ring is a fixed ring of packets; the one at head may be being written.
type ring struct {
	items       []outPacket
	head, count int
}

// sendQueue decouples the publishers' read loops from one subscriber's
// network writes. Its one writer goroutine does the writing, audio first,
// so a subscriber whose writes are slow or stalled only fills its own
// queue: packets that do not fit are dropped (the down track then waits
// for the next keyframe), and nobody else waits. The lock is never held
// across a write.
type sendQueue struct {
	mu    sync.Mutex
	audio ring
	video ring

	wake chan struct{}
	done chan struct{}
	once sync.Once
}

func newSendQueue() *sendQueue {
	q := &sendQueue{
		audio: newRing(audioQueueLen),
		video: newRing(videoQueueLen),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	go q.run()
	return q
}

// reserve returns a free slot of the audio or video ring with the queue
// locked, or nil (unlocked) if that ring is full. Fill the slot and call
// commit.
func (q *sendQueue) reserve(audio bool) *outPacket {
	q.mu.Lock()
	r := &q.video
	if audio {
		r = &q.audio
	}
	if r.count == len(r.items) {
		q.mu.Unlock()
		return nil
	}
	p := &r.items[(r.head+r.count)%len(r.items)]
	r.count++
	return p
}

// commit releases the lock taken by reserve and wakes the writer.
func (q *sendQueue) commit() {
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// cancel gives back the slot reserve returned, unwritten.
func (q *sendQueue) cancel(audio bool) {
	if audio {
		q.audio.count--
	} else {
		q.video.count--
	}
	q.mu.Unlock()
}

// videoQueued returns how many video packets wait to be written.
func (q *sendQueue) videoQueued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.video.count
}

// close stops the writer; packets still queued are dropped.
func (q *sendQueue) close() { q.once.Do(func() { close(q.done) }) }

// run writes queued packets until close.
func (q *sendQueue) run() {
	for {
		q.mu.Lock()
		r := &q.audio
		if r.count == 0 {
			r = &q.video
		}
		if r.count == 0 {
			q.mu.Unlock()
			select {
			case <-q.wake:
				continue
			case <-q.done:
				return
			}
		}
		p := &r.items[r.head]
		q.mu.Unlock()
		// The slot stays counted while it is written, so reserve cannot
		// hand it out again meanwhile.
		p.dt.write(p)
		q.mu.Lock()
		r.head = (r.head + 1) % len(r.items)
		r.count--
		q.mu.Unlock()
		select {
		case <-q.done:
			return
		default:
		}
	}
}
