package wsconn

import (
	"math"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/bedside-health/bedside/mono"
)

// TestRateBurstThenSteady: a full bucket allows its burst at once, then
// one message per interval, and refills to no more than its burst however
// long it waits; as golang.org/x/time/rate's Limiter does.
func TestRateBurstThenSteady(t *testing.T) {
	r := NewRate(10, 3) // one per 100 ms
	now := int64(time.Hour)
	for i := range 3 {
		if !r.allow(now) {
			t.Fatalf("message %d of the burst refused", i+1)
		}
	}
	if r.allow(now) {
		t.Fatal("a fourth message at once was allowed")
	}
	if r.allow(now + int64(99*time.Millisecond)) {
		t.Fatal("allowed 99 ms later, before a token came")
	}
	if !r.allow(now + int64(100*time.Millisecond)) {
		t.Fatal("refused 100 ms later, with a token back")
	}
	if r.allow(now + int64(100*time.Millisecond)) {
		t.Fatal("the refilled token was taken twice")
	}
	later := now + int64(time.Minute)
	for i := range 3 {
		if !r.allow(later) {
			t.Fatalf("after a minute, message %d of the burst refused", i+1)
		}
	}
	if r.allow(later) {
		t.Fatal("after a minute, more than the burst was allowed")
	}
}

// TestRateEdges: a rate of 0 never refills, +Inf never refuses, a burst
// below 1 allows nothing, and a very slow rate does not overflow.
func TestRateEdges(t *testing.T) {
	now := int64(time.Second)
	never := NewRate(0, 2)
	if !never.allow(now) || !never.allow(now) || never.allow(now+int64(24*365*time.Hour)) {
		t.Fatal("a rate of 0: want its burst of 2, then nothing, even a year later")
	}
	inf := NewRate(math.Inf(1), 1)
	for i := range 1000 {
		if !inf.allow(now) {
			t.Fatalf("an infinite rate refused message %d", i+1)
		}
	}
	if NewRate(100, 0).allow(now) {
		t.Fatal("a burst of 0 allowed a message")
	}
	slow := NewRate(1e-9, 1_000_000)
	for i := range 1000 {
		if !slow.allow(now) {
			t.Fatalf("a slow rate with a large burst refused message %d", i+1)
		}
	}
}

// TestRateShared: goroutines sharing one bucket are allowed its burst in
// all, no more.
func TestRateShared(t *testing.T) {
	r := NewRate(0, 1000)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for range 500 {
				if r.allow(int64(mono.Since())) {
					n++
				}
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if allowed != 1000 {
		t.Fatalf("8 goroutines were allowed %d messages in all, want the burst of 1000", allowed)
	}
}

// BenchmarkRate is one message's check, as a connection makes it for each
// message read, against golang.org/x/time/rate's Limiter as it was used
// (AllowN with the time from the monotonic clock).
func BenchmarkRate(b *testing.B) {
	b.Run("wsconn", func(b *testing.B) {
		r := NewRate(1e9, 2000)
		for b.Loop() {
			if !r.allow(int64(mono.Since())) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("x-time-rate", func(b *testing.B) {
		lim := rate.NewLimiter(1e9, 2000)
		for b.Loop() {
			if !lim.AllowN(mono.Now(), 1) {
				b.Fatal("refused")
			}
		}
	})
}
