package sigclient

import (
	"context"
	"errors"
	"testing"
)

// TestQueueOverflow: the push beyond the limit fails with ErrSlow and
// keeps nothing more; pop returns what was queued, then ErrSlow.
func TestQueueOverflow(t *testing.T) {
	closed := make(chan struct{})
	q := newQueue[int](closed, 3)
	for i := range 3 {
		if err := q.push(i); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	if err := q.push(3); !errors.Is(err, ErrSlow) {
		t.Fatalf("push beyond the limit: %v, want ErrSlow", err)
	}
	if err := q.push(4); !errors.Is(err, ErrSlow) {
		t.Fatalf("push after the overflow: %v, want ErrSlow", err)
	}
	close(closed)
	for i := range 3 {
		if v, err := q.pop(context.Background()); err != nil || v != i {
			t.Fatalf("pop %d: %d %v", i, v, err)
		}
	}
	if _, err := q.pop(context.Background()); !errors.Is(err, ErrSlow) {
		t.Fatalf("pop after the queued items: %v, want ErrSlow", err)
	}
}
