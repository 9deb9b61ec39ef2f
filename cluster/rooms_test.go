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

func newRooms(t *testing.T, node, prefix string, ttl time.Duration) *RedisRooms {
	t.Helper()
	return newRoomsWith(t, node, RoomsConfig{Prefix: prefix, TTL: ttl})
}

func newRoomsWith(t *testing.T, node string, cfg RoomsConfig) *RedisRooms {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r, err := NewRedisRooms(ctx, redisURL(t), Pin{Node: node, URL: "http://" + node + ".internal:8080"},
		cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis is required in CI: %v", err)
		}
		t.Skipf("no redis: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestRoomPins: the first node to need a visit holds it; the other is
// told where it is; the pin stays while in use, goes when the call has
// ended, and expires when its node stops renewing.
func TestRoomPins(t *testing.T) {
	ctx := context.Background()
	prefix := fmt.Sprintf("test:room:%d:", time.Now().UnixNano())
	ttl := 600 * time.Millisecond
	a := newRooms(t, "node-a", prefix, ttl)
	b := newRooms(t, "node-b", prefix, ttl)

	owner, self, release, err := a.Claim(ctx, 7)
	if err != nil || !self || owner != a.Self() {
		t.Fatalf("first claim: %+v self=%v err=%v", owner, self, err)
	}
	owner, self, _, err = b.Claim(ctx, 7)
	if err != nil || self || owner != a.Self() {
		t.Fatalf("second node's claim: %+v self=%v err=%v, want node-a", owner, self, err)
	}
	if o, ok, err := b.Owner(ctx, 7); err != nil || !ok || o != a.Self() {
		t.Fatalf("owner seen from b: %+v %v %v", o, ok, err)
	}
	if a.Held() != 1 || b.Held() != 0 {
		t.Fatalf("held: a %d, b %d", a.Held(), b.Held())
	}
	// In use: renewals keep it past its TTL.
	for range 4 {
		a.Renew(ctx, nil)
		time.Sleep(ttl / 3) // the TTL running down is what is tested
	}
	if o, ok, _ := b.Owner(ctx, 7); !ok || o != a.Self() {
		t.Fatalf("pin in use lost after renewals: %+v %v", o, ok)
	}
	// Released but the call still here (resume grace): kept.
	release()
	release() // twice is harmless
	a.Renew(ctx, func(int64) bool { return true })
	if o, ok, _ := b.Owner(ctx, 7); !ok || o != a.Self() {
		t.Fatalf("pin of a call still held lost: %+v %v", o, ok)
	}
	// The call ended: the pin goes at the next round.
	a.Renew(ctx, func(int64) bool { return false })
	if o, ok, _ := b.Owner(ctx, 7); ok {
		t.Fatalf("pin kept after its call ended: %+v", o)
	}
	if a.Held() != 0 {
		t.Fatalf("a still counts %d pins", a.Held())
	}
	if _, self, _, _ := b.Claim(ctx, 7); !self {
		t.Fatal("b could not take the freed visit")
	}

	// A node that stops renewing loses its pin after the TTL.
	if _, self, _, _ := a.Claim(ctx, 8); !self {
		t.Fatal("a could not claim visit 8")
	}
	deadline := time.Now().Add(5 * time.Second)
	var bRelease func()
	for {
		if _, self, release, _ := b.Claim(ctx, 8); self {
			bRelease = release // in use: b renews it below
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pin of a node that stopped renewing never expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// a finds out at its next round that the pin moved, and forgets it.
	// (b renews first: a pin gone from Redis altogether a would take back.)
	b.Renew(ctx, nil)
	a.Renew(ctx, func(int64) bool { return true })
	if a.Held() != 0 {
		t.Fatalf("a still counts the lost pin: %d", a.Held())
	}
	bRelease()
	// Closing releases every pin at once.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if o, ok, _ := a.Owner(ctx, 8); ok {
		t.Fatalf("pin kept after its node closed: %+v", o)
	}
}

func TestLocalRoomsAlwaysHere(t *testing.T) {
	_, self, release, err := LocalRooms{}.Claim(context.Background(), 1)
	release()
	if !self || err != nil {
		t.Fatalf("local claim: self=%v err=%v", self, err)
	}
	if _, ok, _ := (LocalRooms{}).Owner(context.Background(), 1); !ok {
		t.Fatal("local owner: none")
	}
}

// TestRoomPinURLs: a pin is only believed when it names a node by a plain
// http(s)://host[:port]; anything else in the key (written by something
// other than a node) is an error, never a place to send requests to.
func TestRoomPinURLs(t *testing.T) {
	ctx := context.Background()
	prefix := fmt.Sprintf("test:room:%d:", time.Now().UnixNano())
	a := newRooms(t, "node-a", prefix, time.Minute)
	for i, v := range []string{
		"node-x file:///etc/passwd",
		"node-x gopher://10.0.0.9:70",
		"node-x http://10.0.0.9:8080/steal?x=",
		"node-x http://user:pw@10.0.0.9:8080",
		"node-x http://",
		"node-x //10.0.0.9:8080",
		"node-x http://10.0.0.9:8080#frag",
	} {
		id := int64(100 + i)
		if err := a.client.Set(ctx, a.key(id), v, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if o, ok, err := a.Owner(ctx, id); err == nil || ok {
			t.Errorf("Owner with the pin %q: %+v %v %v, want an error", v, o, ok, err)
		}
		if o, self, _, err := a.Claim(ctx, id); err == nil || self {
			t.Errorf("Claim with the pin %q: %+v %v %v, want an error", v, o, self, err)
		}
	}
	for i, v := range []string{"node-y http://10.0.0.9:8080", "node-y https://node-y.internal", "node-y http://[fd00::9]:8080/"} {
		id := int64(200 + i)
		if err := a.client.Set(ctx, a.key(id), v, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if o, ok, err := a.Owner(ctx, id); err != nil || !ok || o.Node != "node-y" {
			t.Errorf("Owner with the pin %q: %+v %v %v", v, o, ok, err)
		}
	}
	if a.Held() != 0 {
		t.Errorf("pins held after claims of others' visits: %d", a.Held())
	}
	if _, err := NewRedisRooms(ctx, redisURL(t), Pin{Node: "n", URL: "http://10.0.0.9:8080/x"}, RoomsConfig{Prefix: prefix}, nil); err == nil {
		t.Error("a node URL with a path was accepted")
	}
}

// TestRoomPresence: the node holding a visit publishes who is waiting and
// in its call at each renewal; another node reads it, a visit held by
// nobody or by the asking node has none (that node's own hub answers),
// and it goes with the pin.
func TestRoomPresence(t *testing.T) {
	ctx := context.Background()
	prefix := fmt.Sprintf("test:room:%d:", time.Now().UnixNano())
	ttl := time.Minute
	var waiting atomic.Int32
	a := newRoomsWith(t, "node-a", RoomsConfig{Prefix: prefix, TTL: ttl, Presence: func(appointment int64) Presence {
		if appointment == 7 {
			return Presence{Waiting: int(waiting.Load()), InCall: 1}
		}
		return Presence{}
	}})
	b := newRooms(t, "node-b", prefix, ttl)
	_, self, release, err := a.Claim(ctx, 7)
	if err != nil || !self {
		t.Fatalf("claim: %v %v", self, err)
	}
	if _, self, _, err := b.Claim(ctx, 9); err != nil || !self {
		t.Fatalf("claim: %v %v", self, err)
	}
	waiting.Store(2)
	a.Renew(ctx, func(int64) bool { return true })
	got, err := b.Presence(ctx, []int64{7, 8, 9})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[7] != (Presence{Waiting: 2, InCall: 1}) {
		t.Fatalf("presence seen from b: %+v, want visit 7 only, 2 waiting and 1 in the call", got)
	}
	if got, _ := a.Presence(ctx, []int64{7}); len(got) != 0 {
		t.Fatalf("presence of its own visit seen from a: %+v, want none (its hub knows)", got)
	}
	waiting.Store(0)
	a.Renew(ctx, func(int64) bool { return true })
	if got, _ := b.Presence(ctx, []int64{7}); got[7] != (Presence{InCall: 1}) {
		t.Fatalf("presence after the waiting left: %+v", got)
	}
	// The call ended: presence goes with the pin.
	release()
	a.Renew(ctx, func(int64) bool { return false })
	if got, _ := b.Presence(ctx, []int64{7}); len(got) != 0 {
		t.Fatalf("presence after the pin went: %+v", got)
	}
	// A presence left by a node that no longer holds the visit is not
	// believed: another node holds it now.
	if _, self, _, _ := a.Claim(ctx, 10); !self {
		t.Fatal("claim 10")
	}
	waiting.Store(1)
	a.Renew(ctx, func(int64) bool { return true })
	if err := a.client.Set(ctx, a.key(10), "node-c http://node-c.internal:8080", ttl).Err(); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Presence(ctx, []int64{10}); len(got) != 0 {
		t.Fatalf("presence published by a node that lost the pin: %+v", got)
	}
}

// TestRoomTakeOver: a node may take a visit's pin from a node it found
// dead only while the pin still names that node and that node has missed
// a renewal round (less than half the TTL left); a pin renewed on time,
// or held by another node, stays.
func TestRoomTakeOver(t *testing.T) {
	ctx := context.Background()
	prefix := fmt.Sprintf("test:room:%d:", time.Now().UnixNano())
	ttl := 1200 * time.Millisecond
	a := newRooms(t, "node-a", prefix, ttl)
	b := newRooms(t, "node-b", prefix, ttl)
	if _, self, _, err := a.Claim(ctx, 7); err != nil || !self {
		t.Fatalf("claim: %v %v", self, err)
	}
	if taken, _, err := b.TakeOver(ctx, 7, a.Self()); err != nil || taken {
		t.Fatalf("took over a pin renewed just now: %v %v", taken, err)
	}
	if taken, _, err := b.TakeOver(ctx, 7, Pin{Node: "node-c", URL: "http://node-c.internal:8080"}); err != nil || taken {
		t.Fatalf("took over a pin from a node that does not hold it: %v %v", taken, err)
	}
	// node-a stops renewing; once it has missed a round (600 ms), b may take it.
	var release func()
	deadline := time.Now().Add(ttl)
	for {
		taken, rel, err := b.TakeOver(ctx, 7, a.Self())
		if err != nil {
			t.Fatal(err)
		}
		if taken {
			release = rel
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never took over the pin of a node that stopped renewing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if o, ok, _ := a.Owner(ctx, 7); !ok || o != b.Self() {
		t.Fatalf("pin after the takeover: %+v %v", o, ok)
	}
	if b.Held() != 1 {
		t.Fatalf("b holds %d pins, want 1", b.Held())
	}
	// a finds out at its next round that the pin moved.
	a.Renew(ctx, func(int64) bool { return true })
	if a.Held() != 0 {
		t.Fatalf("a still counts the taken pin: %d", a.Held())
	}
	release()
	b.Renew(ctx, func(int64) bool { return false })
	if _, ok, _ := a.Owner(ctx, 7); ok {
		t.Fatal("the taken pin stayed after its call ended")
	}
}

// TestRoomsClosedClaimNothing: once a node has given up its pins on its
// way down, a request still in flight there takes no new pin, which would
// outlive the node (nobody renews it, nobody releases it).
func TestRoomsClosedClaimNothing(t *testing.T) {
	ctx := context.Background()
	prefix := fmt.Sprintf("test:room:%d:", time.Now().UnixNano())
	a := newRooms(t, "node-a", prefix, time.Minute)
	b := newRooms(t, "node-b", prefix, time.Minute)
	if _, self, _, err := a.Claim(ctx, 7); err != nil || !self {
		t.Fatalf("claim: %v %v", self, err)
	}
	// Many pins, so that giving them up takes a while; requests keep
	// arriving meanwhile.
	for id := int64(1000); id < 3000; id++ {
		if _, self, _, err := a.Claim(ctx, id); err != nil || !self {
			t.Fatalf("claim %d: %v %v", id, self, err)
		}
	}
	closed := make(chan error)
	go func() { closed <- a.Close() }()
	var late []int64
	for id := int64(100000); ; id++ {
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
			late = append(late, id) // and one after
			for _, id := range late {
				if _, self, _, err := a.Claim(ctx, id); self && err == nil {
					t.Fatalf("visit %d claimed after close", id)
				}
			}
			goto check
		default:
		}
		late = append(late, id)
		if _, _, _, err := a.Claim(ctx, id); err != nil || len(late) > 5000 {
			if err := <-closed; err != nil {
				t.Fatal(err)
			}
			goto check
		}
	}
check:
	late = append(late, 7)
	for _, id := range late {
		if o, ok, err := b.Owner(ctx, id); err != nil || ok {
			t.Errorf("visit %d after node-a closed: %+v %v %v, want no pin", id, o, ok, err)
		}
	}
}

// Redis losing a pin (a restart without persistence, a failover) while
// this node still hosts the visit's call: the next renewal takes the pin
// back, so a request reaching another node is sent here rather than
// starting a second copy of the call on that node's SFU.
func TestLostPinIsTakenBackWhileCallRuns(t *testing.T) {
	ctx := context.Background()
	prefix := fmt.Sprintf("test:room:lost:%d:", time.Now().UnixNano())
	ttl := 600 * time.Millisecond
	a := newRooms(t, "node-a", prefix, ttl)
	b := newRooms(t, "node-b", prefix, ttl)
	_, self, release, err := a.Claim(ctx, 9) // the patient's socket, still open
	if err != nil || !self {
		t.Fatal(self, err)
	}
	defer release()
	if err := a.client.Del(ctx, a.key(9)).Err(); err != nil { // Redis lost the key
		t.Fatal(err)
	}
	a.Renew(ctx, func(int64) bool { return true })
	if got, err := a.client.Get(ctx, a.key(9)).Result(); err != nil || got != a.value() {
		t.Fatalf("pin after renewal = %q, %v; want node-a's %q", got, err, a.value())
	}
	a.Renew(ctx, func(int64) bool { return true })
	if a.Held() != 1 {
		t.Fatalf("node-a holds %d pins after renewals, want 1", a.Held())
	}
	owner, self, _, err := b.Claim(ctx, 9)
	if err != nil || self || owner.Node != "node-a" {
		t.Fatalf("node-b's claim of visit 9: owner %+v, self %v, err %v; want node-a's", owner, self, err)
	}
}

// afterRenew runs f once, right after the first renewal script answers,
// before Renew acts on the answer.
type afterRenew struct {
	hash string
	once sync.Once
	f    func()
}

func (h *afterRenew) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (h *afterRenew) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}
func (h *afterRenew) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		err := next(ctx, cmd)
		if args := cmd.Args(); len(args) > 1 && cmd.Name() == "evalsha" && args[1] == h.hash {
			h.once.Do(h.f)
		}
		return err
	}
}

// A renewal told "another node holds it" must not forget a pin that a
// Claim on this node took back after the answer and before Renew acted on
// it: forgotten, the pin would go unrenewed and expire under a running
// call, and the next request elsewhere would start a second copy.
func TestRenewalKeepsPinClaimedMeanwhile(t *testing.T) {
	ctx := context.Background()
	prefix := fmt.Sprintf("test:room:race:%d:", time.Now().UnixNano())
	a := newRooms(t, "node-a", prefix, time.Minute)
	_, self, release, err := a.Claim(ctx, 9)
	if err != nil || !self {
		t.Fatal(self, err)
	}
	defer release()
	// Another node's pin, as after a failover, so the renewal answers 0.
	if err := a.client.Set(ctx, a.key(9), "node-b http://node-b.internal:8080", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	var claimed bool
	a.client.AddHook(&afterRenew{hash: a.renew.Hash(), f: func() {
		// That pin expires, and a request here claims the visit again.
		if err := a.client.Del(ctx, a.key(9)).Err(); err != nil {
			t.Error(err)
		}
		var again func()
		_, claimed, again, _ = a.Claim(ctx, 9)
		again()
	}})
	a.Renew(ctx, func(int64) bool { return true })
	if !claimed {
		t.Fatal("the claim after the renewal script did not take the pin")
	}
	if a.Held() != 1 {
		t.Fatalf("node-a holds %d pins, want 1: the renewal forgot the pin the claim took", a.Held())
	}
}
