package sigclient

import (
	"context"
	"sync"
)

// queue is an unbounded FIFO, so that the reader never blocks on a caller
// that does not drain it.
type queue[T any] struct {
	mu     sync.Mutex
	items  []T
	ready  chan struct{} // holds a token while items is not empty
	closed <-chan struct{}
}

func newQueue[T any](closed <-chan struct{}) *queue[T] {
	return &queue[T]{ready: make(chan struct{}, 1), closed: closed}
}

func (q *queue[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop returns the oldest item, waiting for one until ctx ends. Items queued
// before the client closed are still returned; after that it fails with
// ErrClosed.
func (q *queue[T]) pop(ctx context.Context) (T, error) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			v := q.items[0]
			var zero T
			q.items[0] = zero
			q.items = q.items[1:]
			more := len(q.items) > 0
			q.mu.Unlock()
			if more {
				select {
				case q.ready <- struct{}{}:
				default:
				}
			}
			return v, nil
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-q.closed:
			q.mu.Lock()
			empty := len(q.items) == 0
			q.mu.Unlock()
			if empty {
				var zero T
				return zero, ErrClosed
			}
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
}
