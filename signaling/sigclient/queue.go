package sigclient

import (
	"context"
	"errors"
	"sync"
)

// maxQueued bounds the server messages, and separately the received
// tracks, waiting for the caller: a few thousand is over half an hour of
// quality reports, far more than a caller that reads at all lets pile up.
const maxQueued = 4096

// ErrSlow reports that the caller left maxQueued server messages (or
// tracks) unread: the client was closed rather than grow without bound or
// drop what it received.
var ErrSlow = errors.New("sigclient: too many unread messages or tracks: the client was closed")

// queue is a FIFO that the reader pushes to without ever blocking. It
// holds at most limit items; the push that would exceed it fails, and the
// queue then answers ErrSlow once its items are taken.
type queue[T any] struct {
	limit  int
	mu     sync.Mutex
	items  []T
	err    error         // ErrSlow once an item did not fit
	ready  chan struct{} // holds a token while items is not empty or err is set
	closed <-chan struct{}
}

func newQueue[T any](closed <-chan struct{}, limit int) *queue[T] {
	return &queue[T]{limit: limit, ready: make(chan struct{}, 1), closed: closed}
}

// push adds v; it returns ErrSlow, and keeps nothing more, once the queue
// holds its limit.
func (q *queue[T]) push(v T) error {
	q.mu.Lock()
	if q.err == nil && len(q.items) >= q.limit {
		q.err = ErrSlow
	}
	err := q.err
	if err == nil {
		q.items = append(q.items, v)
	}
	q.mu.Unlock()
	q.wake()
	return err
}

func (q *queue[T]) wake() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop returns the oldest item, waiting for one until ctx ends. Items queued
// before the client closed, or before the queue overflowed, are still
// returned; after them it fails with ErrSlow after an overflow, else with
// ErrClosed.
func (q *queue[T]) pop(ctx context.Context) (T, error) {
	var zero T
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			v := q.items[0]
			q.items[0] = zero
			q.items = q.items[1:]
			more := len(q.items) > 0 || q.err != nil
			q.mu.Unlock()
			if more {
				q.wake()
			}
			return v, nil
		}
		if err := q.err; err != nil {
			q.mu.Unlock()
			q.wake()
			return zero, err
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-q.closed:
			q.mu.Lock()
			empty, err := len(q.items) == 0, q.err
			q.mu.Unlock()
			if empty {
				if err != nil {
					return zero, err
				}
				return zero, ErrClosed
			}
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
}
