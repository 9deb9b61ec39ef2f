package groupcommit

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
)

// TestBatchesWhatWaits: writes that arrive while a commit runs go into the
// next commit together, each caller gets its own result, and a batch that
// fails as a whole is retried item by item.
func TestBatchesWhatWaits(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	stored := map[int]bool{}
	gate := make(chan struct{})
	started := make(chan struct{})
	first := true
	errBad := errors.New("bad item")
	c := New(func(_ context.Context, batch []int) ([]error, error) {
		mu.Lock()
		wait := first
		first = false
		mu.Unlock()
		if wait {
			close(started)
			<-gate // hold the first commit so the others pile up behind it
		}
		for _, v := range batch {
			if v == -1 && len(batch) > 1 {
				return nil, errors.New("the whole batch failed")
			}
		}
		each := make([]error, len(batch))
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, len(batch))
		for i, v := range batch {
			if v == -1 {
				each[i] = errBad
				continue
			}
			stored[v] = true
		}
		return each, nil
	}, 64)
	defer c.Close()

	var wg sync.WaitGroup
	results := make([]error, 21)
	wg.Add(1)
	go func() { defer wg.Done(); results[0] = c.Do(context.Background(), 0) }()
	<-started
	for i := 1; i <= 20; i++ {
		v := i
		if i == 20 {
			v = -1
		}
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = c.Do(context.Background(), v) }()
	}
	for len(c.in) != 20 {
		runtime.Gosched() // the writers queue behind the held commit
	}
	close(gate)
	wg.Wait()
	for i := 0; i < 20; i++ {
		if results[i] != nil || !stored[i] {
			t.Fatalf("write %d: %v, stored %v", i, results[i], stored[i])
		}
	}
	if !errors.Is(results[20], errBad) {
		t.Fatalf("the bad write got %v, want its own error", results[20])
	}
	if len(sizes) < 2 || sizes[0] != 1 {
		t.Fatalf("commit sizes %v: want the first alone", sizes)
	}
}

func TestCloseRefusesLaterWrites(t *testing.T) {
	c := New(func(_ context.Context, b []int) ([]error, error) { return make([]error, len(b)), nil }, 4)
	if err := c.Do(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := c.Do(context.Background(), 2); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
