package live

import "testing"

// TestStreamsWithoutAFeedShareTheirLoadWait: a hub without a Feed has
// nothing to load for a stream, so its streams share one closed channel
// rather than allocating one each (docs/benchmarks.md, "History, stacks
// and readers of an idle connection").
func TestStreamsWithoutAFeedShareTheirLoadWait(t *testing.T) {
	h := NewHub(Config{})
	for p := int64(1); p <= 2; p++ {
		if err := h.Publish(t.Context(), p, []byte(`{"type":"reading"}`)); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := h.lookup(1, false)
	b, _ := h.lookup(2, false)
	if a == nil || b == nil || a.loadWait != b.loadWait {
		t.Fatalf("streams %p and %p: loadWait %p and %p, want one shared channel", a, b, a.loadWait, b.loadWait)
	}
	select {
	case <-a.loadWait:
	default:
		t.Fatal("a stream without a Feed waits to be loaded")
	}
}
