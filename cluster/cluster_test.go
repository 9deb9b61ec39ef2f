package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"
)

// redisURL finds the Redis the tests use: REDIS_URL, or the local default.
// In CI a missing Redis fails the test; elsewhere it skips.
func redisURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	return url
}

func newRedis(t *testing.T) *Redis {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r, err := NewRedis(ctx, redisURL(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis is required in CI: %v", err)
		}
		t.Skipf("no redis: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func recv(t *testing.T, s *Subscription) []byte {
	t.Helper()
	select {
	case m, ok := <-s.C:
		if !ok {
			t.Fatal("subscription closed")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
	}
	return nil
}

// busContract checks what every Bus must do; pub and sub may be two nodes.
func busContract(t *testing.T, pub, sub Bus) {
	topic := fmt.Sprintf("test.%d", time.Now().UnixNano())
	a := sub.Subscribe(topic, 16)
	b := sub.Subscribe(topic, 16)
	other := sub.Subscribe(topic+".other", 16)
	defer other.Close()
	waitSubscribed(t, pub, sub, a, topic)
	// The probes reached b too, in the same local fan-out as a's.
	if n := len(b.C); n == 0 {
		t.Fatal("probe reached a but not b")
	}
	for len(b.C) > 0 {
		<-b.C
	}
	for i := range 3 {
		if err := pub.Publish(context.Background(), topic, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*Subscription{a, b} {
		for i := range 3 {
			if m := recv(t, s); len(m) != 1 || m[0] != byte(i) {
				t.Fatalf("message %d: got %v", i, m)
			}
		}
	}
	select {
	case m := <-other.C:
		t.Fatalf("another topic received %v", m)
	default:
	}
	a.Close()
	if _, ok := <-a.C; ok {
		t.Fatal("closed subscription still delivers")
	}
	b.Close()
}

// waitSubscribed publishes probes until s receives one, since a remote
// subscription becomes active asynchronously.
func waitSubscribed(t *testing.T, pub, sub Bus, s *Subscription, topic string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		_ = pub.Publish(context.Background(), topic, []byte("probe"))
		select {
		case <-s.C:
			// Drain probes that raced in before the first one was seen.
			for {
				select {
				case <-s.C:
				case <-time.After(100 * time.Millisecond):
					return
				}
			}
		case <-tick.C:
		case <-deadline:
			t.Fatal("subscription never became active")
		}
	}
}

func TestLocalBus(t *testing.T) {
	l := NewLocal()
	busContract(t, l, l)
}

func TestLocalBusSlowSubscriberDropsNotBlocks(t *testing.T) {
	l := NewLocal()
	slow := l.Subscribe("t", 1)
	fast := l.Subscribe("t", 100)
	for i := range 50 {
		_ = l.Publish(context.Background(), "t", []byte{byte(i)})
	}
	if got := slow.Dropped(); got != 49 {
		t.Fatalf("slow subscriber dropped %d, want 49", got)
	}
	if got := len(fast.C); got != 50 {
		t.Fatalf("fast subscriber holds %d, want 50", got)
	}
}

func TestRedisBusAcrossNodes(t *testing.T) {
	n1, n2 := newRedis(t), newRedis(t)
	busContract(t, n1, n2)
	if err := n1.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}
