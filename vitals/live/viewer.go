package live

import (
	"sync"
	"sync/atomic"
)

// Viewer is one viewer connection's bounded queue of encoded messages,
// from any number of patients' streams, in the order they were sent. The
// transport waits on Ready, takes what is queued with Take and writes it as
// one frame. A viewer whose queue is full has fallen behind: it is dropped
// from every stream, its queue is emptied and FellBehind is closed, so the
// transport closes the connection and the viewer resumes from its last
// offset. Enqueueing never blocks, so a slow viewer never holds back a
// stream or other viewers.
type Viewer struct {
	mu     sync.Mutex
	q      [][]byte
	max    int
	ready  chan struct{}
	behind chan struct{}
	fell   atomic.Bool // set with behind closed, under mu; read without it by Behind
	left   bool
	subs   map[int64]*stream
	wake   func()
	roomAt int           // queued messages that leave room for a replay (pace.go)
	room   chan struct{} // closed by Take once roomAt is reached
}

func newViewer(max int) *Viewer {
	return &Viewer{
		max:    max,
		ready:  make(chan struct{}, 1),
		behind: make(chan struct{}),
		subs:   make(map[int64]*stream),
	}
}

// Ready receives a value when messages are queued, unless OnReady is set.
func (v *Viewer) Ready() <-chan struct{} { return v.ready }

// OnReady makes the viewer call wake, instead of signalling Ready, when
// messages are queued on an empty queue or when it falls behind, so the
// transport needs no goroutine waiting while nothing is queued. wake must
// not block; set it before the viewer subscribes.
func (v *Viewer) OnReady(wake func()) {
	v.mu.Lock()
	v.wake = wake
	v.mu.Unlock()
}

// FellBehind is closed once the viewer's queue overflowed.
func (v *Viewer) FellBehind() <-chan struct{} { return v.behind }

// Behind reports whether FellBehind is closed, without a look at the
// channel (one more cache line for a transport that asks on every
// message).
func (v *Viewer) Behind() bool { return v.fell.Load() }

// Queued reports how many messages wait.
func (v *Viewer) Queued() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.q)
}

// Take moves up to max queued messages (all if max <= 0) into dst, which
// it returns; dst should be empty, and the caller should clear it after
// writing so the messages can be freed. The queue's storage and dst's are
// swapped when everything is taken, so a steady viewer allocates nothing.
func (v *Viewer) Take(dst [][]byte, max int) [][]byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.q) == 0 {
		return dst
	}
	if max <= 0 || len(v.q) <= max {
		out := v.q
		v.q = dst[:0]
		v.tookLocked()
		return out
	}
	dst = append(dst, v.q[:max]...)
	rest := copy(v.q, v.q[max:])
	clear(v.q[rest:])
	v.q = v.q[:rest]
	v.tookLocked()
	v.signal()
	return dst
}

// Send queues a message of this viewer's own (a reply to a request); false
// if the viewer has fallen behind or left.
func (v *Viewer) Send(msg []byte) bool { return v.enqueue(msg) }

func (v *Viewer) signal() {
	if v.wake != nil {
		v.wake()
		return
	}
	select {
	case v.ready <- struct{}{}:
	default:
	}
}

// enqueue appends msgs, or marks the viewer fallen behind when they do not
// fit; false means it no longer takes messages.
func (v *Viewer) enqueue(msgs ...[]byte) bool {
	v.mu.Lock()
	if v.fell.Load() || v.left {
		v.mu.Unlock()
		return false
	}
	if len(v.q)+len(msgs) > v.max {
		v.fell.Store(true)
		clear(v.q)
		v.q = nil
		close(v.behind)
		wake := v.wake
		v.mu.Unlock()
		if wake != nil {
			wake()
		}
		return false
	}
	wake := len(v.q) == 0
	v.q = append(v.q, msgs...)
	v.mu.Unlock()
	if wake {
		v.signal()
	}
	return true
}

// enqueueOne is enqueue for the hot path: one message, no slice.
func (v *Viewer) enqueueOne(msg []byte) bool {
	v.mu.Lock()
	if v.fell.Load() || v.left {
		v.mu.Unlock()
		return false
	}
	if len(v.q) >= v.max {
		v.fell.Store(true)
		clear(v.q)
		v.q = nil
		close(v.behind)
		wake := v.wake
		v.mu.Unlock()
		if wake != nil {
			wake()
		}
		return false
	}
	// Only the first message wakes the writer: it takes everything queued.
	wake := len(v.q) == 0
	v.q = append(v.q, msg)
	v.mu.Unlock()
	if wake {
		v.signal()
	}
	return true
}
