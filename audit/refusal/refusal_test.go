package refusal_test

import (
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/audit/refusal"
	"github.com/bedside-health/bedside/store"
)

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// TestRefusalsBounded: whatever the flood, the refusals held in memory
// stay within the tracked addresses (and one count per route beyond
// them), the trail gets one row per tracked address and event, and the
// windows' counts add up to every refusal.
func TestRefusalsBounded(t *testing.T) {
	clock := &testClock{t: time.Now()}
	var written []store.AuditEvent
	q := refusal.New(refusal.Default, clock.now, func(e store.AuditEvent) { written = append(written, e) })
	q.Addresses, q.Allow = 64, 3
	const flood = 20000
	for i := range flood {
		addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String()
		if i%3 == 0 {
			addr = "2001:db8::" + strconv.FormatInt(int64(i%5), 16) // one /64
		}
		if q.Wait("device", addr) > 0 {
			continue
		}
		q.Refuse("device", addr, store.AuditEvent{ActorRole: audit.RoleAnonymous, Action: audit.ActionCreate,
			Resource: "Observation", Address: addr, Outcome: audit.OutcomeDenied})
		if got := q.Tracked(); got > q.Addresses+1 {
			t.Fatalf("after %d refusals, %d counts held, want at most %d", i+1, got, q.Addresses+1)
		}
	}
	during := len(written)
	if during > q.Addresses+1 {
		t.Fatalf("%d rows written during the window, want at most %d", during, q.Addresses+1)
	}
	clock.add(q.Window)
	q.Flush()
	if q.Tracked() != 0 {
		t.Fatalf("%d counts held once the window closed", q.Tracked())
	}
	total := 0
	for _, e := range written {
		_, n := audit.RepeatCount(e.Resource)
		total += max(n, 1)
	}
	if total != flood || len(written) > 2*(q.Addresses+1) {
		t.Fatalf("%d rows counting %d, want at most %d rows counting %d", len(written), total, 2*(q.Addresses+1), flood)
	}
}

// BenchmarkRefusals measures the answer to a throttled address (a map
// lookup under a lock, no store) and the memory a full table of tracked
// addresses holds.
func BenchmarkRefusals(b *testing.B) {
	clock := &testClock{t: time.Now()}
	q := refusal.New(refusal.Default, clock.now, func(store.AuditEvent) {})
	e := store.AuditEvent{ActorRole: audit.RoleAnonymous, Action: audit.ActionCreate, Resource: "Observation", Outcome: audit.OutcomeDenied}
	b.Run("throttled", func(b *testing.B) {
		for range q.Allow {
			q.Refuse("device", "192.0.2.7", e)
		}
		for b.Loop() {
			if q.Wait("device", "192.0.2.7") == 0 {
				b.Fatal("not throttled")
			}
		}
	})
	b.Run("table", func(b *testing.B) {
		for b.Loop() {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			q := refusal.New(refusal.Default, clock.now, func(store.AuditEvent) {})
			for i := range q.Addresses {
				addr := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}).String()
				e.Address = addr
				q.Refuse("device", addr, e)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(q.Addresses), "bytes/address")
			runtime.KeepAlive(q)
		}
	})
}
