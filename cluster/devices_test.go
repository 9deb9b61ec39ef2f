package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

func newDevices(t *testing.T, cfg DevicesConfig) *RedisDevices {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	d, err := NewRedisDevices(ctx, redisURL(t), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis is required in CI: %v", err)
		}
		t.Skipf("no redis: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func devicePrefix() string { return fmt.Sprintf("test:device:%d:", time.Now().UnixNano()) }

// conn is a device connection in a test: it claims the device on a node,
// and when replaced, commits and releases, as web's handler does.
type conn struct {
	once      sync.Once
	replaced  chan struct{}
	committed atomic.Bool
	claimed   chan struct{}
	took      time.Duration
}

func connect(t *testing.T, d *RedisDevices, device int64) *conn {
	c := &conn{replaced: make(chan struct{}), claimed: make(chan struct{})}
	end := func() { c.once.Do(func() { close(c.replaced) }) }
	t.Cleanup(end) // the test is over: the connection ends, before its node closes
	go func() {
		start := time.Now()
		release, err := d.Claim(context.Background(), device, end)
		c.took = time.Since(start)
		close(c.claimed)
		if err != nil {
			t.Errorf("claim: %v", err)
			return
		}
		<-c.replaced
		c.committed.Store(true)
		release()
	}()
	return c
}

func (c *conn) awaitClaimed(t *testing.T) {
	t.Helper()
	select {
	case <-c.claimed:
	case <-time.After(10 * time.Second):
		t.Fatal("claim did not return")
	}
}

func (c *conn) wasReplaced() bool {
	select {
	case <-c.replaced:
		return true
	default:
		return false
	}
}

// TestDeviceClaimEndsTheOldConnectionFirst: a claim on another node has
// the device's connection there ended, and returns only once it has
// committed and released.
func TestDeviceClaimEndsTheOldConnectionFirst(t *testing.T) {
	prefix := devicePrefix()
	a := newDevices(t, DevicesConfig{Prefix: prefix, Wait: 20 * time.Second})
	b := newDevices(t, DevicesConfig{Prefix: prefix, Wait: 20 * time.Second})
	old := connect(t, a, 1)
	old.awaitClaimed(t)
	cur := connect(t, b, 1)
	cur.awaitClaimed(t)
	if !old.committed.Load() {
		t.Fatal("the new connection's claim returned before the old one committed")
	}
	if cur.took > 10*time.Second {
	}
	if cur.wasReplaced() {
		t.Fatal("the new connection was replaced")
	}
	// Another device is nobody's.
	other := connect(t, a, 2)
	other.awaitClaimed(t)
	if old2 := other.wasReplaced(); old2 {
		t.Fatal("a claim of another device replaced this one")
	}
}

// TestDeviceClaimsCrossing: two nodes claim a device held by a third at
// once: the later claim wins and the earlier one's connection is ended,
// after the first's, and neither waits for its time-out.
func TestDeviceClaimsCrossing(t *testing.T) {
	prefix := devicePrefix()
	cfg := DevicesConfig{Prefix: prefix, Wait: 20 * time.Second}
	a, b, c := newDevices(t, cfg), newDevices(t, cfg), newDevices(t, cfg)
	old := connect(t, a, 1)
	old.awaitClaimed(t)
	x, y := connect(t, b, 1), connect(t, c, 1)
	x.awaitClaimed(t)
	y.awaitClaimed(t)
	if !old.committed.Load() {
		t.Fatal("the first connection was not ended")
	}
	// The loser's end is what the winner waited for.
	if x.wasReplaced() == y.wasReplaced() {
		t.Fatalf("replaced: %v and %v, want exactly one of the crossing claims", x.wasReplaced(), y.wasReplaced())
	}
	if x.took > 10*time.Second || y.took > 10*time.Second {
		t.Fatalf("claims took %v and %v: one waited for its time-out", x.took, y.took)
	}
}

// TestDeviceClaimOfADeadNodesDevice: a node that does not answer (it
// died holding the device) holds up the new connection for the wait only.
func TestDeviceClaimOfADeadNodesDevice(t *testing.T) {
	prefix := devicePrefix()
	wait := 300 * time.Millisecond
	b := newDevices(t, DevicesConfig{Prefix: prefix, Wait: wait})
	rdb := goredis.NewClient(mustParse(t))
	defer rdb.Close()
	// The claim of a node that died holding the device.
	if err := rdb.Set(context.Background(), prefix+"1", "deadnode/1", 10*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	cur := connect(t, b, 1)
	cur.awaitClaimed(t)
	if cur.took < wait {
		t.Fatalf("claim returned after %v, before the wait of %v, with nobody releasing", cur.took, wait)
	}
}

// TestDeviceClaimRenewal: a connection whose replacement's message was
// lost is ended at its node's next renewal, and a claim Redis lost (a
// restart without persistence) is taken back.
func TestDeviceClaimRenewal(t *testing.T) {
	prefix := devicePrefix()
	a := newDevices(t, DevicesConfig{Prefix: prefix, TTL: time.Minute})
	rdb := goredis.NewClient(mustParse(t))
	defer rdb.Close()
	ctx := context.Background()
	held := connect(t, a, 1)
	held.awaitClaimed(t)
	token, err := rdb.Get(ctx, prefix+"1").Result()
	if err != nil {
		t.Fatal(err)
	}
	rdb.Del(ctx, prefix+"1")
	a.Renew(ctx)
	if got, _ := rdb.Get(ctx, prefix+"1").Result(); got != token {
		t.Fatalf("after Redis lost the claim and a renewal: %q, want %q", got, token)
	}
	if held.wasReplaced() {
		t.Fatal("taking back a lost claim ended the connection")
	}
	rdb.Set(ctx, prefix+"1", "another/1", 10*time.Second) // a claim whose message never came
	a.Renew(ctx)
	select {
	case <-held.replaced:
	case <-time.After(10 * time.Second):
		t.Fatal("the renewal did not end a connection another claim replaced")
	}
}

// renewBeforeSet runs the node's renewal once, just before a claim's SET
// reaches Redis: the renewal ticker firing while a claim is under way.
type renewBeforeSet struct {
	d    *RedisDevices
	once sync.Once
}

func (h *renewBeforeSet) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *renewBeforeSet) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if cmd.Name() == "set" {
			h.once.Do(func() { h.d.Renew(ctx) })
		}
		return next(ctx, cmd)
	}
}

func (h *renewBeforeSet) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

// TestDeviceClaimRenewalDuringAReconnect: a device reconnects to a node
// while that node's renewal runs. The renewal, finding the key still
// naming the device's old connection, must not take the new connection,
// whose SET has not reached Redis yet, for one replaced elsewhere and end
// it; nor may it end it at the next renewal.
func TestDeviceClaimRenewalDuringAReconnect(t *testing.T) {
	prefix := devicePrefix()
	b := newDevices(t, DevicesConfig{Prefix: prefix, Wait: 200 * time.Millisecond, TTL: time.Minute})
	rdb := goredis.NewClient(mustParse(t))
	defer rdb.Close()
	ctx := context.Background()
	// The device's previous connection, on a node that went away.
	if err := rdb.Set(ctx, prefix+"1", "gonenode/1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	hook := &renewBeforeSet{d: b}
	b.client.AddHook(hook)
	replaced := make(chan struct{})
	var once sync.Once
	release, err := b.Claim(ctx, 1, func() { once.Do(func() { close(replaced) }) })
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ran := false
	hook.once.Do(func() { ran = true })
	if ran {
		t.Fatal("the claim sent no SET: the renewal did not run during it")
	}
	token, err := rdb.Get(ctx, prefix+"1").Result()
	if err != nil || token == "gonenode/1" {
		t.Fatalf("the claim did not take the key: %q, %v", token, err)
	}
	// A renewal once the claim is made renews it.
	b.Renew(ctx)
	if got, _ := rdb.Get(ctx, prefix+"1").Result(); got != token {
		t.Fatalf("after a renewal the key names %q, want the new connection %q", got, token)
	}
	// A renewal ends a connection on a goroutine of its own, so its not
	// happening has no event to wait for: two seconds is ample for a
	// goroutine started to run, even on a loaded machine.
	select {
	case <-replaced:
		t.Fatal("the device's new connection was ended as replaced by a renewal that ran while it claimed the device")
	case <-time.After(2 * time.Second):
	}
}

func mustParse(t *testing.T) *goredis.Options {
	opts, err := goredis.ParseURL(redisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	return opts
}
