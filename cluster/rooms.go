package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Pin names the node that holds a visit's call: its id, unique in the
// cluster, and the internal URL other nodes reach it by.
type Pin struct {
	Node string
	URL  string
}

// Rooms decides which node holds each visit's call, so that everyone in a
// visit reaches the same SFU whichever node their request landed on.
type Rooms interface {
	// Claim returns the node holding the appointment's call, taking the
	// visit for this node if nobody holds it. When self, release must be
	// called once the caller no longer needs the visit; until then the
	// pin is kept. release is never nil.
	Claim(ctx context.Context, appointment int64) (owner Pin, self bool, release func(), err error)
	// Owner returns the node holding the appointment's call without
	// claiming it; ok is false when nobody does.
	Owner(ctx context.Context, appointment int64) (owner Pin, ok bool, err error)
	// Self is this node's pin.
	Self() Pin
}

// LocalRooms is the Rooms of a single node: every visit is held here.
type LocalRooms struct{}

var _ Rooms = LocalRooms{}

// Claim always answers this node.
func (LocalRooms) Claim(context.Context, int64) (Pin, bool, func(), error) {
	return Pin{}, true, func() {}, nil
}

// Owner always answers this node.
func (LocalRooms) Owner(context.Context, int64) (Pin, bool, error) { return Pin{}, true, nil }

// Self is the empty pin: one node needs no name.
func (LocalRooms) Self() Pin { return Pin{} }

// DefaultPinTTL is how long a visit's pin outlives its node's last
// renewal; the node renews its pins every third of it.
const DefaultPinTTL = 15 * time.Second

// RedisRooms pins each visit to one node in Redis: the key
// {prefix}{appointment} holds "{node} {url}" for the pin's TTL. The first
// node that needs a visit takes the key (SET NX); it renews the key while
// it holds the visit's call (Run) and deletes it when the call has ended,
// or when the node shuts down (Close). A node that dies stops renewing, and
// the pin expires for the next node to claim.
type RedisRooms struct {
	client   *goredis.Client
	self     Pin
	prefix   string
	ttl      time.Duration
	presence func(appointment int64) Presence
	log      *slog.Logger
	claim    *goredis.Script
	renew    *goredis.Script
	drop     *goredis.Script
	take     *goredis.Script

	mu     sync.Mutex
	held   map[int64]*pinUse // appointments pinned here, or being claimed
	closed bool              // Close began: no new pins
	// inflight counts Claims and TakeOvers talking to Redis, which Close
	// waits for before it closes the client.
	inflight sync.WaitGroup
}

// errRoomsClosed answers a claim on a node giving up its pins: a pin taken
// now would outlive the node, renewed and released by nobody.
var errRoomsClosed = errors.New("this node is shutting down and takes no visits")

// pinUse is a visit's pin as this node knows it.
type pinUse struct {
	users int  // Claims not yet released
	ours  bool // the pin names this node
	// gen counts the times a Claim or TakeOver found the pin ours, so a
	// renewal told "another node holds it" does not forget a pin a Claim
	// took back meanwhile.
	gen int
}

var _ Rooms = (*RedisRooms)(nil)

// RoomsConfig are the settings of RedisRooms.
type RoomsConfig struct {
	Prefix string        // key prefix; "bedside:room:" by default
	TTL    time.Duration // DefaultPinTTL if zero
	// Presence says who is in a visit's call on this node; with it, the
	// node publishes that for each visit it holds at every renewal, for
	// the other nodes to read (RedisRooms.Presence).
	Presence func(appointment int64) Presence
}

// Presence is who is in a visit's call: waiting to be admitted, and in it.
type Presence struct {
	Waiting, InCall int
}

// NewRedisRooms connects to the Redis server at url as the node self.
func NewRedisRooms(ctx context.Context, url string, self Pin, cfg RoomsConfig, log *slog.Logger) (*RedisRooms, error) {
	if self.Node == "" || strings.ContainsAny(self.Node, " \n") || strings.ContainsAny(self.URL, " \n") {
		return nil, fmt.Errorf("room pins: node %q at %q: want an id and a URL without spaces", self.Node, self.URL)
	}
	u, err := NodeURL(self.URL)
	if err != nil {
		return nil, fmt.Errorf("room pins: node %q: %w", self.Node, err)
	}
	self.URL = u
	// A request waiting for its visit's pin gives up quickly and is
	// served here: Redis never holds up a call.
	client, err := dialRedis(ctx, url, dialQuick)
	if err != nil {
		return nil, err
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "bedside:room:"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultPinTTL
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &RedisRooms{client: client, self: self, prefix: cfg.Prefix, ttl: cfg.TTL, presence: cfg.Presence, log: log,
		claim: goredis.NewScript(claimRoomScript), renew: goredis.NewScript(renewRoomScript),
		drop: goredis.NewScript(dropRoomScript), take: goredis.NewScript(takeRoomScript), held: make(map[int64]*pinUse)}, nil
}

// claimRoomScript: KEYS pin; ARGV value, ttl ms. Takes the pin if free,
// renews it if it is ours; returns the pin's holder.
const claimRoomScript = `
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v
`

// renewRoomScript: KEYS pin, presence; ARGV value, ttl ms, presence
// value (none if empty). Renews the pin if it is ours, or takes it back if
// it is gone (Redis lost it: a restart without persistence, a failover)
// since only visits still in use here are renewed; and publishes the
// visit's presence for as long. 1 if it was ours, 2 if taken back, 0 if
// another node holds it.
const renewRoomScript = `
local v = redis.call('GET', KEYS[1])
local n = 0
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  n = 1
elseif not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  n = 2
else
  return 0
end
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2]) end
return n
`

// dropRoomScript: KEYS pin, presence; ARGV value. Deletes the pin and its
// presence if the pin is ours.
const dropRoomScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1], KEYS[2]) end
return 0
`

// takeRoomScript: KEYS pin, presence; ARGV the dead node's value, ours,
// most ms left for a pin its node has stopped renewing, ttl ms. Takes the
// pin if it still names the dead node and has no more than that left;
// 1 if it did.
const takeRoomScript = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local left = redis.call('PTTL', KEYS[1])
if left < 0 or left > tonumber(ARGV[3]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
redis.call('DEL', KEYS[2])
return 1
`

func (r *RedisRooms) key(appointment int64) string {
	return r.prefix + strconv.FormatInt(appointment, 10)
}

// presenceKey holds "{node} {waiting} {in call}" of the visit, published
// by the node holding it, with the pin's TTL.
func (r *RedisRooms) presenceKey(appointment int64) string { return r.key(appointment) + ":presence" }

func (r *RedisRooms) value() string { return r.self.Node + " " + r.self.URL }

// parsePin reads a pin's value. Other nodes send the visit's requests,
// credentials included, to the URL it names, so only a plain
// http(s)://host[:port] is believed: a value no node wrote (a path, user
// info, another scheme) is an error, never a place to send requests.
func parsePin(v string) (Pin, error) {
	node, raw, ok := strings.Cut(v, " ")
	if !ok || node == "" {
		return Pin{}, fmt.Errorf("malformed room pin %q", v)
	}
	u, err := NodeURL(raw)
	if err != nil {
		return Pin{}, fmt.Errorf("room pin of node %q: %w", node, err)
	}
	return Pin{Node: node, URL: u}, nil
}

// NodeURL checks a node's URL, how the other nodes reach it, and returns
// it as scheme://host[:port]: http or https, a host, and nothing else
// (no user info, path, query or fragment).
func NodeURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawPath != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("node URL %q: want http(s)://host[:port] only", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Self is this node's pin.
func (r *RedisRooms) Self() Pin { return r.self }

// Claim returns the appointment's holder, taking the pin if it is free.
func (r *RedisRooms) Claim(ctx context.Context, appointment int64) (Pin, bool, func(), error) {
	// Counted as in use before asking Redis, so that a renewal round
	// cannot delete the pin between the answer and the count.
	u, ok := r.use(appointment)
	if !ok {
		return Pin{}, false, func() {}, fmt.Errorf("claim visit %d: %w", appointment, errRoomsClosed)
	}
	defer r.inflight.Done()
	v, err := r.claim.Run(ctx, r.client, []string{r.key(appointment)}, r.value(), r.ttl.Milliseconds()).Text()
	if err == nil && v == r.value() {
		r.mu.Lock()
		closed := r.closed
		u.ours = !closed
		u.gen++
		r.mu.Unlock()
		if closed { // Close began meanwhile and did not see this pin
			_ = r.drop.Run(ctx, r.client, []string{r.key(appointment), r.presenceKey(appointment)}, r.value()).Err()
			r.unuse(appointment, u)
			return Pin{}, false, func() {}, fmt.Errorf("claim visit %d: %w", appointment, errRoomsClosed)
		}
		var once sync.Once
		return r.self, true, func() { once.Do(func() { r.unuse(appointment, u) }) }, nil
	}
	if err == nil {
		r.mu.Lock()
		u.ours = false // another node holds it (this one may have lost it)
		r.mu.Unlock()
	}
	r.unuse(appointment, u)
	if err != nil {
		return Pin{}, false, func() {}, fmt.Errorf("claim visit %d: %w", appointment, err)
	}
	p, err := parsePin(v)
	return p, false, func() {}, err
}

// TakeOver takes the appointment's pin from dead, a node this one found
// dead (its URL refuses connections), without waiting for the pin to
// expire: only if the pin still names dead and dead has missed a renewal
// round, so that less than half the TTL is left (renewals come every
// third). A live node renews on time, so a node that merely refused one
// connection keeps its visits. When taken, release is as Claim's.
func (r *RedisRooms) TakeOver(ctx context.Context, appointment int64, dead Pin) (taken bool, release func(), err error) {
	u, ok := r.use(appointment)
	if !ok {
		return false, func() {}, nil
	}
	defer r.inflight.Done()
	n, err := r.take.Run(ctx, r.client, []string{r.key(appointment), r.presenceKey(appointment)},
		dead.Node+" "+dead.URL, r.value(), (r.ttl / 2).Milliseconds(), r.ttl.Milliseconds()).Int()
	if err == nil && n == 1 {
		r.mu.Lock()
		closed := r.closed
		u.ours = !closed
		u.gen++
		r.mu.Unlock()
		if closed { // Close began meanwhile and did not see this pin
			_ = r.drop.Run(ctx, r.client, []string{r.key(appointment), r.presenceKey(appointment)}, r.value()).Err()
			r.unuse(appointment, u)
			return false, func() {}, nil
		}
		r.log.Warn("took over the visit of a node that refuses connections and stopped renewing", "appointment", appointment, "node", dead.Node, "url", dead.URL)
		var once sync.Once
		return true, func() { once.Do(func() { r.unuse(appointment, u) }) }, nil
	}
	r.unuse(appointment, u)
	if err != nil {
		return false, func() {}, fmt.Errorf("take over visit %d: %w", appointment, err)
	}
	return false, func() {}, nil
}

// unuse ends one use of u, forgetting it if it is not this node's pin.
// use counts the appointment's pin as in use here and a Redis call as in
// flight (the caller ends it with r.inflight.Done), unless the rooms are
// closing.
func (r *RedisRooms) use(appointment int64) (*pinUse, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, false
	}
	r.inflight.Add(1)
	u := r.held[appointment]
	if u == nil {
		u = &pinUse{}
		r.held[appointment] = u
	}
	u.users++
	return u, true
}

func (r *RedisRooms) unuse(appointment int64, u *pinUse) {
	r.mu.Lock()
	defer r.mu.Unlock()
	u.users--
	if u.users <= 0 && !u.ours && r.held[appointment] == u {
		delete(r.held, appointment)
	}
}

// Owner returns the appointment's holder, if any.
func (r *RedisRooms) Owner(ctx context.Context, appointment int64) (Pin, bool, error) {
	v, err := r.client.Get(ctx, r.key(appointment)).Result()
	if errors.Is(err, goredis.Nil) {
		return Pin{}, false, nil
	}
	if err != nil {
		return Pin{}, false, fmt.Errorf("owner of visit %d: %w", appointment, err)
	}
	p, err := parsePin(v)
	return p, err == nil, err
}

// Presence returns who is in the calls of those appointments held by
// other nodes, as each holder last published it (at most a renewal round,
// a third of the TTL, old). A visit held by nobody, or by this node, or
// whose holder published nothing, is absent: this node's hub answers for
// it. A presence left by a node that no longer holds the visit is not
// believed.
func (r *RedisRooms) Presence(ctx context.Context, appointments []int64) (map[int64]Presence, error) {
	if len(appointments) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, 2*len(appointments))
	for _, a := range appointments {
		keys = append(keys, r.key(a), r.presenceKey(a))
	}
	vs, err := r.client.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("presence of %d visits: %w", len(appointments), err)
	}
	out := make(map[int64]Presence)
	for i, a := range appointments {
		pin, _ := vs[2*i].(string)
		pres, _ := vs[2*i+1].(string)
		holder, _, _ := strings.Cut(pin, " ")
		f := strings.Fields(pres)
		if holder == "" || holder == r.self.Node || len(f) != 3 || f[0] != holder {
			continue
		}
		w, err1 := strconv.Atoi(f[1])
		c, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || w < 0 || c < 0 {
			continue
		}
		out[a] = Presence{Waiting: w, InCall: c}
	}
	return out, nil
}

// Held is the number of visits pinned to this node.
func (r *RedisRooms) Held() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, u := range r.held {
		if u.ours {
			n++
		}
	}
	return n
}

// Run keeps this node's pins until ctx ends: every third of the TTL it
// renews the pin of each visit still in use (a Claim not yet released, or
// holding reports the visit's call here) and deletes the others. A pin
// found taken by another node is forgotten; one Redis lost (absent) is
// taken back, since the visit is still in use here. Run returns
// without deleting anything, so a node that stops renewing keeps its pins
// until they expire; Close deletes them.
func (r *RedisRooms) Run(ctx context.Context, holding func(appointment int64) bool) {
	t := time.NewTicker(r.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.Renew(ctx, holding)
		}
	}
}

// pinGen is a pin's use and its generation when a renewal round began.
type pinGen struct {
	u   *pinUse
	gen int
}

// Renew is one round of Run.
func (r *RedisRooms) Renew(ctx context.Context, holding func(appointment int64) bool) {
	r.mu.Lock()
	as := make([]int64, 0, len(r.held))
	gens := make(map[int64]pinGen, len(r.held))
	for a, u := range r.held {
		if u.ours {
			as = append(as, a)
			gens[a] = pinGen{u, u.gen}
		}
	}
	r.mu.Unlock()
	for _, a := range as {
		if holding == nil || !holding(a) {
			r.mu.Lock()
			u := r.held[a]
			idle := u != nil && u.ours && u.users <= 0
			if idle {
				// Under the lock, so no Claim counts a use of the pin
				// while it goes; bounded by the client's timeouts.
				if err := r.drop.Run(ctx, r.client, []string{r.key(a), r.presenceKey(a)}, r.value()).Err(); err != nil {
					r.log.Warn("release visit pin", "appointment", a, "err", err) // again next round
				} else {
					delete(r.held, a)
				}
			}
			r.mu.Unlock()
			if idle || u == nil {
				continue
			}
		}
		r.renewOne(ctx, a, gens[a])
	}
}

// renewOne renews the pin of appointment a, in use here, whose use and
// generation were pg when the round began.
func (r *RedisRooms) renewOne(ctx context.Context, a int64, pg pinGen) {
	// The renewal may take back a pin Redis lost: not once Close began
	// (it waits for this as for a Claim), nor for a use gone meanwhile.
	r.mu.Lock()
	if u := r.held[a]; r.closed || u != pg.u || !u.ours {
		r.mu.Unlock()
		return
	}
	r.inflight.Add(1)
	defer r.inflight.Done()
	r.mu.Unlock()
	pres := ""
	if r.presence != nil {
		p := r.presence(a)
		pres = r.self.Node + " " + strconv.Itoa(p.Waiting) + " " + strconv.Itoa(p.InCall)
	}
	ok, err := r.renew.Run(ctx, r.client, []string{r.key(a), r.presenceKey(a)}, r.value(), r.ttl.Milliseconds(), pres).Int()
	if err != nil {
		r.log.Warn("renew visit pin", "appointment", a, "err", err)
		return
	}
	switch ok {
	case 2:
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if closed { // Close began meanwhile and did not see this pin
			_ = r.drop.Run(ctx, r.client, []string{r.key(a), r.presenceKey(a)}, r.value()).Err()
			return
		}
		r.log.Warn("visit pin was gone from Redis; taken back, since the visit is still in use here", "appointment", a)
	case 0:
		r.log.Warn("visit pin lost to another node; new requests for the visit go there", "appointment", a)
		r.mu.Lock()
		// Unless a Claim found the pin ours since the round began.
		if u := r.held[a]; u != nil && pg == (pinGen{u, u.gen}) {
			u.ours = false
			if u.users <= 0 {
				delete(r.held, a)
			}
		}
		r.mu.Unlock()
	}
}

// Close deletes every pin of this node, so the next node to need those
// visits claims them at once, and closes the client. Claims from then on
// fail (the request is served where it is, pinning nothing).
func (r *RedisRooms) Close() error {
	r.mu.Lock()
	r.closed = true
	as := make([]int64, 0, len(r.held))
	for a, u := range r.held {
		if u.ours {
			as = append(as, a)
		}
	}
	r.held = map[int64]*pinUse{}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var errs []error
	for _, a := range as {
		if err := r.drop.Run(ctx, r.client, []string{r.key(a), r.presenceKey(a)}, r.value()).Err(); err != nil {
			errs = append(errs, fmt.Errorf("release visit %d: %w", a, err))
		}
	}
	r.inflight.Wait() // a claim meanwhile drops its own pin
	return errors.Join(append(errs, r.client.Close())...)
}
