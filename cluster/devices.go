package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Devices keeps each device's connection unique across the nodes, as each
// node keeps it unique among its own: a device's new connection on one node
// ends its old one on another before it reads where the device's sequence
// stands, so one connection at a time accepts and publishes its messages.
type Devices interface {
	// Claim makes this node's new connection the device's. It returns once
	// the connection it replaces on another node has ended, its last
	// readings committed, or after the wait when that node does not answer
	// (it died). replaced is called, at most once and on another
	// goroutine, when a newer connection claims the device elsewhere: the
	// caller closes its connection then. release must be called once the
	// connection has ended and committed what it accepted.
	Claim(ctx context.Context, device int64, replaced func()) (release func(), err error)
}

// Defaults of RedisDevices.
const (
	// DefaultDeviceClaimTTL is how long a device's claim outlives its
	// node's last renewal; the node renews its claims every third of it.
	DefaultDeviceClaimTTL = 15 * time.Second
	// DefaultDeviceReleaseWait is how long a new connection waits for the
	// node of the device's old one to end it.
	DefaultDeviceReleaseWait = 5 * time.Second
)

// RedisDevices is Devices through Redis. The key {prefix}{device} names
// the device's current connection, a token "{node}/{n}", for a TTL its
// node renews. Claiming sets the key (last claim wins) and reads the token
// it replaces; the new connection then asks on the channel {prefix}events
// for that connection to be ended ("release D T") and waits for
// "released D T", which the old connection's node publishes when it
// releases a device whose key no longer names it. So a claim crossing
// another loses nothing: whichever claim Redis takes second ends the
// first's connection, which, still waiting for the one before, ends only
// after it. A lost message costs at most the wait; the renewal, finding the
// key naming another connection, ends the old one then.
type RedisDevices struct {
	client *goredis.Client
	ps     *goredis.PubSub
	node   string
	prefix string
	ttl    time.Duration
	wait   time.Duration
	log    *slog.Logger
	drop   *goredis.Script
	renew  *goredis.Script

	mu      sync.Mutex
	n       int64
	held    map[string]*deviceHold       // this node's connections, by token
	waiting map[int64]map[*waiter]string // claims waiting, by device, with the token each waits for
	closed  bool
	// releasing counts releases talking to Redis; drained is closed once
	// Close has begun and nothing is held or releasing.
	releasing int
	drained   chan struct{}

	stop chan struct{}
	done sync.WaitGroup
}

var _ Devices = (*RedisDevices)(nil)

type deviceHold struct {
	device int64
	// claimed is set (under RedisDevices.mu) once the claim's SET has
	// returned: until then the key may still name the connection this one
	// replaces, and a renewal must neither renew nor end it.
	claimed  bool
	once     sync.Once
	replaced func()
}

func (h *deviceHold) end() { h.once.Do(h.replaced) }

// waiter is a claim waiting for the release of the token it replaced; it
// remembers the releases seen before it knew which token that was.
type waiter struct {
	seen map[string]bool
	c    chan struct{}
}

// DevicesConfig are the settings of RedisDevices.
type DevicesConfig struct {
	Prefix string        // key and channel prefix; "bedside:device:" by default
	TTL    time.Duration // DefaultDeviceClaimTTL if zero
	Wait   time.Duration // DefaultDeviceReleaseWait if zero
}

// dropDeviceScript: KEYS claim, ARGV token, channel, device. Deletes the
// claim if it names token; otherwise a newer connection replaced it and
// may be waiting: tell it this one has ended.
const dropDeviceScript = `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return redis.call('DEL', KEYS[1]) end
redis.call('PUBLISH', ARGV[2], 'released ' .. ARGV[3] .. ' ' .. ARGV[1])
return 0
`

// renewDeviceScript: KEYS claim, ARGV token, ttl ms. Renews the claim if
// it names token, takes it back if Redis lost it; 0 if another connection
// holds it.
const renewDeviceScript = `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0
`

// NewRedisDevices connects to the Redis server at url and renews this
// node's claims until Close.
func NewRedisDevices(ctx context.Context, url string, cfg DevicesConfig, log *slog.Logger) (*RedisDevices, error) {
	// As the pins: a device connection waits a second at most for a
	// Redis gone away, then is served here.
	client, err := dialRedis(ctx, url, dialQuick)
	if err != nil {
		return nil, err
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "bedside:device:"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultDeviceClaimTTL
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultDeviceReleaseWait
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	d := &RedisDevices{client: client, node: hex.EncodeToString(id[:]), prefix: cfg.Prefix, ttl: cfg.TTL, wait: cfg.Wait, log: log,
		drop: goredis.NewScript(dropDeviceScript), renew: goredis.NewScript(renewDeviceScript),
		held: make(map[string]*deviceHold), waiting: make(map[int64]map[*waiter]string), stop: make(chan struct{}), drained: make(chan struct{})}
	d.ps = client.Subscribe(ctx, d.channel())
	if _, err := d.ps.Receive(ctx); err != nil {
		d.ps.Close()
		client.Close()
		return nil, fmt.Errorf("subscribe to device claims: %w", err)
	}
	d.done.Add(2)
	go d.receive()
	go d.renewals()
	return d, nil
}

func (d *RedisDevices) channel() string         { return d.prefix + "events" }
func (d *RedisDevices) key(device int64) string { return d.prefix + strconv.FormatInt(device, 10) }

// Claim sets the device's key to a new token of this node and, if it named
// a connection that may still be open elsewhere, has that ended and waits
// for it (at most the configured wait, or until ctx ends).
func (d *RedisDevices) Claim(ctx context.Context, device int64, replaced func()) (func(), error) {
	h := &deviceHold{device: device, replaced: replaced}
	w := &waiter{seen: make(map[string]bool), c: make(chan struct{})}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, errors.New("device claims: closed")
	}
	d.n++
	token := d.node + "/" + strconv.FormatInt(d.n, 10)
	d.held[token] = h
	if d.waiting[device] == nil {
		d.waiting[device] = make(map[*waiter]string)
	}
	d.waiting[device][w] = ""
	d.mu.Unlock()
	release := func() { d.release(device, token) }
	defer d.unwait(device, w)

	prev, err := d.client.SetArgs(ctx, d.key(device), token, goredis.SetArgs{TTL: d.ttl, Get: true}).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		d.mu.Lock()
		delete(d.held, token)
		d.checkDrained()
		d.mu.Unlock()
		return nil, fmt.Errorf("claim device %d: %w", device, err)
	}
	d.mu.Lock()
	h.claimed = true
	d.mu.Unlock()
	if err != nil {
		return release, nil // no connection anywhere
	}
	if node, _, _ := strings.Cut(prev, "/"); node == d.node {
		d.mu.Lock()
		_, open := d.held[prev]
		d.mu.Unlock()
		if !open {
			return release, nil // ended here already
		}
	}
	d.mu.Lock()
	d.waiting[device][w] = prev
	seen := w.seen[prev]
	d.mu.Unlock()
	if seen {
		return release, nil
	}
	if err := d.client.Publish(ctx, d.channel(), "release "+strconv.FormatInt(device, 10)+" "+prev).Err(); err != nil {
		d.log.WarnContext(ctx, "ask for a device's old connection to end", "device", device, "err", err)
	}
	t := time.NewTimer(d.wait)
	defer t.Stop()
	select {
	case <-w.c:
	case <-t.C:
		d.log.WarnContext(ctx, "device's old connection not released in time; serving the new one", "device", device, "wait", d.wait)
	case <-ctx.Done():
	}
	return release, nil
}

func (d *RedisDevices) unwait(device int64, w *waiter) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.waiting[device], w)
	if len(d.waiting[device]) == 0 {
		delete(d.waiting, device)
	}
}

// checkDrained closes drained once Close has begun and nothing is held
// or releasing. d.mu must be held.
func (d *RedisDevices) checkDrained() {
	if d.closed && len(d.held) == 0 && d.releasing == 0 {
		select {
		case <-d.drained:
		default:
			close(d.drained)
		}
	}
}

// release deletes the device's key if it still names token, or else tells
// the connection that replaced this one that it has ended.
func (d *RedisDevices) release(device int64, token string) {
	d.mu.Lock()
	if _, ok := d.held[token]; !ok {
		d.mu.Unlock()
		return // released already
	}
	delete(d.held, token)
	d.releasing++
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := d.drop.Run(ctx, d.client, []string{d.key(device)}, token, d.channel(), device).Err()
	if err != nil {
		d.log.Warn("release a device's claim", "device", device, "err", err)
	}
	d.mu.Lock()
	d.releasing--
	d.checkDrained()
	d.mu.Unlock()
}

// receive ends the connections other nodes' claims replace and wakes the
// claims waiting for a release.
func (d *RedisDevices) receive() {
	defer d.done.Done()
	for m := range d.ps.Channel() {
		fields := strings.Fields(m.Payload)
		if len(fields) != 3 {
			continue
		}
		device, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		token := fields[2]
		d.mu.Lock()
		switch fields[0] {
		case "release":
			if h := d.held[token]; h != nil && h.device == device {
				go h.end()
			}
		case "released":
			for w, want := range d.waiting[device] {
				w.seen[token] = true
				if want == token {
					select {
					case <-w.c:
					default:
						close(w.c)
					}
				}
			}
		}
		d.mu.Unlock()
	}
}

// renewals renews this node's claims every third of the TTL until Close.
func (d *RedisDevices) renewals() {
	defer d.done.Done()
	t := time.NewTicker(d.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), d.ttl/3)
		d.Renew(ctx)
		cancel()
	}
}

// Renew renews this node's claims in one round trip and ends the
// connections whose claim names another connection now: one whose
// replacement's message was lost. A claim Redis lost is taken back. A
// claim whose SET has not returned yet is left alone: the key may still
// name the connection it replaces.
func (d *RedisDevices) Renew(ctx context.Context) {
	d.mu.Lock()
	tokens := make([]string, 0, len(d.held))
	holds := make([]*deviceHold, 0, len(d.held))
	for token, h := range d.held {
		if !h.claimed {
			continue
		}
		tokens = append(tokens, token)
		holds = append(holds, h)
	}
	d.mu.Unlock()
	if len(tokens) == 0 {
		return
	}
	cmds := make([]*goredis.Cmd, len(tokens))
	_, err := d.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, token := range tokens {
			cmds[i] = d.renew.Eval(ctx, p, []string{d.key(holds[i].device)}, token, d.ttl.Milliseconds())
		}
		return nil
	})
	if err != nil {
		d.log.Warn("renew device claims", "devices", len(tokens), "err", err)
		return
	}
	for i, c := range cmds {
		n, err := c.Int()
		if err != nil || n == 1 {
			continue
		}
		d.mu.Lock()
		_, still := d.held[tokens[i]]
		d.mu.Unlock()
		switch {
		case n == 0 && still:
			go holds[i].end()
		case n == 2 && !still:
			// Released while this renewal ran: take back nothing.
			if err := d.drop.Run(ctx, d.client, []string{d.key(holds[i].device)}, tokens[i], d.channel(), holds[i].device).Err(); err != nil {
				d.log.Warn("drop a device claim renewed as it was released", "device", holds[i].device, "err", err)
			}
		}
	}
}

// closeWait is how long Close waits for the connections still held to
// end and release their devices.
const closeWait = 3 * time.Second

// Close takes no more claims, waits (a few seconds at most) for the
// connections still held to release theirs, as they do when a shutting-down
// server closes them, so that their devices reconnecting elsewhere need not
// wait; then stops renewing and listening, and closes the client. Claims
// still held then expire after the TTL.
func (d *RedisDevices) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.checkDrained()
	d.mu.Unlock()
	t := time.NewTimer(closeWait)
	select {
	case <-d.drained:
	case <-t.C:
	}
	t.Stop()
	close(d.stop)
	err := d.ps.Close()
	d.done.Wait()
	return errors.Join(err, d.client.Close())
}
