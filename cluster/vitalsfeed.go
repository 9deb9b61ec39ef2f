package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/bedside-health/bedside/vitals/live"
	"github.com/bedside-health/bedside/vitals/ward"
)

// Deliverer receives the entries of shared streams (live.Hub).
type Deliverer interface {
	Deliver(patient int64, epoch string, e live.Entry)
}

// FeedConfig tunes a RedisFeed. Zero fields take defaults.
type FeedConfig struct {
	// Prefix begins every key and channel (default "bedside:vitals:").
	Prefix string
	// HistoryMessages and HistoryBytes bound each stream's shared history
	// (defaults as live.Config's).
	HistoryMessages, HistoryBytes int
	// Expiry drops a stream with no message for this long, with its
	// history and epoch (default 15 min).
	Expiry time.Duration
}

// RedisFeed shares live vitals streams between nodes through Redis (it
// implements live.Feed). Each patient's stream is a hash holding its epoch,
// last offset and history size, and a Redis stream holding its history,
// with entry IDs <offset>-0. One script assigns the offset, encodes the
// message with it, appends it to the history, trims the history to its
// bounds and publishes it on the patient's channel, all atomically, so
// every node sees the same offsets and can resume from the same history.
// Each node keeps one pub/sub connection, subscribed to the channels of
// the patients it has viewers for, whichever node their devices use.
type RedisFeed struct {
	client *goredis.Client
	ps     *goredis.PubSub
	hub    Deliverer
	cfg    FeedConfig
	log    *slog.Logger
	script *goredis.Script

	mu      sync.Mutex
	watched map[int64]int
	done    chan struct{}
}

var _ live.Feed = (*RedisFeed)(nil)

// NewRedisFeed connects to the Redis server at url and delivers the
// streams this node watches to hub.
func NewRedisFeed(ctx context.Context, url string, hub Deliverer, cfg FeedConfig, log *slog.Logger) (*RedisFeed, error) {
	// Vitals must not wait on a Redis that went away: calls give up
	// quickly and the hub carries on locally. Never retried: a retried
	// append that Redis ran twice would put a message in the stream twice.
	client, err := dialRedis(ctx, url, dialQuickOnce)
	if err != nil {
		return nil, err
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "bedside:vitals:"
	}
	lc := live.Config{HistoryMessages: cfg.HistoryMessages, HistoryBytes: cfg.HistoryBytes}
	lh := live.NewHub(lc).Config()
	cfg.HistoryMessages, cfg.HistoryBytes = lh.HistoryMessages, lh.HistoryBytes
	if cfg.Expiry <= 0 {
		cfg.Expiry = 15 * time.Minute
	}
	f := &RedisFeed{
		client: client, ps: client.Subscribe(ctx), hub: hub, cfg: cfg, log: log,
		script:  goredis.NewScript(appendScript),
		watched: make(map[int64]int), done: make(chan struct{}),
	}
	go f.receive()
	return f, nil
}

// appendScript: KEYS meta, log; ARGV new epoch, patient, body, bulky (0/1),
// renew (0/1), max messages, max bytes, expiry ms, channel, now ms.
// Returns {epoch, offset, message}; offset 0 when it only renewed.
const appendScript = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if (not epoch) or ARGV[5] == '1' then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0, 'bytes', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[8])
  redis.call('PUBLISH', ARGV[9], epoch .. ' 0 0 0\n')
end
local body = ARGV[3]
if body == '' then
  return {epoch, 0, ''}
end
local off = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local inner = string.match(body, '^%s*{%s*(.-)%s*$')
local msg = '{"patient":' .. ARGV[2] .. ',"offset":' .. off
if inner == nil or string.sub(inner, 1, 1) == '}' then
  msg = msg .. '}'
else
  msg = msg .. ',' .. inner
end
redis.call('XADD', KEYS[2], off .. '-0', 'm', msg, 't', ARGV[10], 'b', ARGV[4])
local bytes = redis.call('HINCRBY', KEYS[1], 'bytes', string.len(msg))
local n = redis.call('XLEN', KEYS[2])
while n > 1 and (n > tonumber(ARGV[6]) or bytes > tonumber(ARGV[7])) do
  local old = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  redis.call('XDEL', KEYS[2], old[1][1])
  bytes = redis.call('HINCRBY', KEYS[1], 'bytes', -string.len(old[1][2][2]))
  n = n - 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[8])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
redis.call('PUBLISH', ARGV[9], epoch .. ' ' .. off .. ' ' .. ARGV[10] .. ' ' .. ARGV[4] .. '\n' .. msg)
return {epoch, off, msg}
`

func (f *RedisFeed) metaKey(p int64) string { return f.cfg.Prefix + strconv.FormatInt(p, 10) }
func (f *RedisFeed) logKey(p int64) string  { return f.cfg.Prefix + strconv.FormatInt(p, 10) + ":log" }
func (f *RedisFeed) channel(p int64) string { return f.cfg.Prefix + strconv.FormatInt(p, 10) }

// Append adds body to the patient's shared stream (see live.Feed).
func (f *RedisFeed) Append(ctx context.Context, patient int64, body []byte, bulky, renew bool) (string, live.Entry, error) {
	now := time.Now().UnixMilli()
	res, err := f.script.Run(ctx, f.client, []string{f.metaKey(patient), f.logKey(patient)},
		live.NewEpoch(), patient, body, flag(bulky), flag(renew), f.cfg.HistoryMessages, f.cfg.HistoryBytes,
		f.cfg.Expiry.Milliseconds(), f.channel(patient), now).Slice()
	if err != nil {
		return "", live.Entry{}, fmt.Errorf("append to vitals stream of patient %d: %w", patient, err)
	}
	if len(res) != 3 {
		return "", live.Entry{}, fmt.Errorf("append to vitals stream of patient %d: unexpected reply %v", patient, res)
	}
	epoch, _ := res[0].(string)
	off, _ := res[1].(int64)
	msg, _ := res[2].(string)
	return epoch, live.Entry{Offset: off, At: now, Bulky: bulky, Msg: []byte(msg)}, nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Watch subscribes this node to the patient's channel (kept through
// outages: the subscription is renewed when Redis comes back) and returns
// the stream as Redis holds it.
func (f *RedisFeed) Watch(ctx context.Context, patient int64) (live.Snapshot, error) {
	f.mu.Lock()
	f.watched[patient]++
	first := f.watched[patient] == 1
	f.mu.Unlock()
	if first {
		if err := f.ps.Subscribe(ctx, f.channel(patient)); err != nil {
			f.log.Warn("vitals subscribe failed; renewed when redis is back", "patient", patient, "err", err)
		}
	}
	var meta *goredis.SliceCmd
	var hist *goredis.XMessageSliceCmd
	_, err := f.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		meta = p.HMGet(ctx, f.metaKey(patient), "epoch", "offset")
		hist = p.XRange(ctx, f.logKey(patient), "-", "+")
		return nil
	})
	if err != nil {
		return live.Snapshot{}, fmt.Errorf("read vitals stream of patient %d: %w", patient, err)
	}
	vals := meta.Val()
	var snap live.Snapshot
	if len(vals) == 2 {
		snap.Epoch, _ = vals[0].(string)
		if s, ok := vals[1].(string); ok {
			snap.Last, _ = strconv.ParseInt(s, 10, 64)
		}
	}
	snap.History = entries(hist.Val())
	return snap, nil
}

// Unwatch unsubscribes from the patient's channel once no stream of this
// node needs it.
func (f *RedisFeed) Unwatch(patient int64) {
	f.mu.Lock()
	f.watched[patient]--
	last := f.watched[patient] <= 0
	if last {
		delete(f.watched, patient)
	}
	f.mu.Unlock()
	if last {
		if err := f.ps.Unsubscribe(context.Background(), f.channel(patient)); err != nil {
			f.log.Warn("vitals unsubscribe failed", "patient", patient, "err", err)
		}
	}
}

// Range returns the current epoch and the history's entries in (after, upto].
func (f *RedisFeed) Range(ctx context.Context, patient int64, after, upto int64) (string, []live.Entry, error) {
	var epoch *goredis.StringCmd
	var hist *goredis.XMessageSliceCmd
	_, err := f.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		epoch = p.HGet(ctx, f.metaKey(patient), "epoch")
		hist = p.XRange(ctx, f.logKey(patient), strconv.FormatInt(after+1, 10)+"-0", strconv.FormatInt(upto, 10)+"-0")
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return "", nil, fmt.Errorf("read vitals history of patient %d: %w", patient, err)
	}
	return epoch.Val(), entries(hist.Val()), nil
}

func entries(ms []goredis.XMessage) []live.Entry {
	out := make([]live.Entry, 0, len(ms))
	for _, m := range ms {
		id, _, _ := strings.Cut(m.ID, "-")
		off, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			continue
		}
		msg, _ := m.Values["m"].(string)
		t, _ := m.Values["t"].(string)
		at, _ := strconv.ParseInt(t, 10, 64)
		b, _ := m.Values["b"].(string)
		out = append(out, live.Entry{Offset: off, At: at, Bulky: b == "1", Msg: []byte(msg)})
	}
	return out
}

// receive hands each published entry to the hub. The channel survives
// Redis going away: go-redis reconnects and subscribes again, and the hub
// repairs what was missed from the history or reports it as a gap.
func (f *RedisFeed) receive() {
	defer close(f.done)
	for m := range f.ps.Channel(goredis.WithChannelSize(4096)) {
		patient, err := strconv.ParseInt(strings.TrimPrefix(m.Channel, f.cfg.Prefix), 10, 64)
		if err != nil {
			continue
		}
		head, msg, ok := strings.Cut(m.Payload, "\n")
		fields := strings.Fields(head)
		if !ok || len(fields) != 4 {
			continue
		}
		off, err1 := strconv.ParseInt(fields[1], 10, 64)
		at, err2 := strconv.ParseInt(fields[2], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		e := live.Entry{Offset: off, At: at, Bulky: fields[3] == "1"}
		if off > 0 {
			e.Msg = []byte(msg)
		}
		f.hub.Deliver(patient, fields[0], e)
	}
}

// Ping checks that Redis answers.
func (f *RedisFeed) Ping(ctx context.Context) error { return f.client.Ping(ctx).Err() }

// Close ends the subscription and the client.
func (f *RedisFeed) Close() error {
	err := f.ps.Close()
	<-f.done
	return errors.Join(err, f.client.Close())
}

// RedisNEWS2 links the NEWS2 wards of the nodes through Redis (it
// implements ward.Peers): a patient's lead is a key holding the leading
// node's id that expires unless renewed; physicians' changes go to every
// node on one channel; the lead's snapshot is a key the others read.
type RedisNEWS2 struct {
	client *goredis.Client
	ps     *goredis.PubSub
	node   string
	prefix string
	ttl    time.Duration
	log    *slog.Logger
	claim  *goredis.Script
	done   chan struct{}
}

// NewRedisNEWS2 connects to the Redis server at url as node (an id unique
// in the cluster) and hands each change made on another node to apply.
// Keys and the channel begin with prefix (default "bedside:news2:").
func NewRedisNEWS2(ctx context.Context, url, node, prefix string, apply func(ctx context.Context, patientID int64, msg []byte) error, log *slog.Logger) (*RedisNEWS2, error) {
	// As the feed: give up quickly, the ward carries on alone.
	client, err := dialRedis(ctx, url, dialQuick)
	if err != nil {
		return nil, err
	}
	if prefix == "" {
		prefix = "bedside:news2:"
	}
	n := &RedisNEWS2{client: client, node: node, prefix: prefix, ttl: 30 * time.Second, log: log,
		claim: goredis.NewScript(claimScript), done: make(chan struct{})}
	if err := n.claim.Load(ctx, client).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("load news2 lead script: %w", err)
	}
	n.ps = client.Subscribe(ctx, prefix+"changes")
	if _, err := n.ps.Receive(ctx); err != nil {
		n.ps.Close()
		client.Close()
		return nil, fmt.Errorf("subscribe to news2 changes: %w", err)
	}
	go n.receive(apply)
	return n, nil
}

// claimScript: KEYS lead, snapshot; ARGV node, ttl ms, claim (0/1),
// snapshot ("" for none). Renews or takes the lead for node if it holds
// it or, claiming, nobody does; then saves the snapshot, or keeps the one
// saved alive as long as the lead, so that a stable patient's snapshot
// does not expire. Returns the leading node ("" if none).
const claimScript = `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] or ((not v) and ARGV[3] == '1') then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  if ARGV[4] ~= '' then
    redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[2])
  else
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
  end
  return ARGV[1]
end
return v or ''
`

func (n *RedisNEWS2) leadKey(p int64) string { return n.prefix + strconv.FormatInt(p, 10) + ":lead" }
func (n *RedisNEWS2) snapKey(p int64) string {
	return n.prefix + strconv.FormatInt(p, 10) + ":snapshot"
}

// Leads reports (and with claim takes, or renews) the patients' leads,
// in one pipelined round trip.
func (n *RedisNEWS2) Leads(ctx context.Context, qs []ward.LeadCheck) ([]ward.Lead, error) {
	cmds := make([]*goredis.Cmd, len(qs))
	_, err := n.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, q := range qs {
			cmds[i] = n.claim.EvalSha(ctx, p, []string{n.leadKey(q.Patient), n.snapKey(q.Patient)},
				n.node, n.ttl.Milliseconds(), flag(q.Claim), q.Snapshot)
		}
		return nil
	})
	if err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
		// Redis restarted and forgot the script: load it and ask again.
		if err = n.claim.Load(ctx, n.client).Err(); err == nil {
			return n.Leads(ctx, qs)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("news2 leads of %d patients: %w", len(qs), err)
	}
	out := make([]ward.Lead, len(qs))
	for i, c := range cmds {
		v, err := c.Text()
		if err != nil {
			return nil, fmt.Errorf("news2 lead of patient %d: %w", qs[i].Patient, err)
		}
		out[i] = ward.Lead{Self: v == n.node, Other: v != "" && v != n.node}
	}
	return out, nil
}

var _ ward.Peers = (*RedisNEWS2)(nil)

// Share publishes a change to the other nodes.
func (n *RedisNEWS2) Share(ctx context.Context, patientID int64, msg []byte) error {
	payload := n.node + " " + strconv.FormatInt(patientID, 10) + "\n" + string(msg)
	if err := n.client.Publish(ctx, n.prefix+"changes", payload).Err(); err != nil {
		return fmt.Errorf("share news2 change of patient %d: %w", patientID, err)
	}
	return nil
}

// SaveSnapshot keeps the lead's snapshot as long as its lead.
func (n *RedisNEWS2) SaveSnapshot(ctx context.Context, patientID int64, msg []byte) error {
	if err := n.client.Set(ctx, n.snapKey(patientID), msg, n.ttl).Err(); err != nil {
		return fmt.Errorf("save news2 snapshot of patient %d: %w", patientID, err)
	}
	return nil
}

// Snapshot reads the lead's last snapshot; nil if there is none.
func (n *RedisNEWS2) Snapshot(ctx context.Context, patientID int64) ([]byte, error) {
	b, err := n.client.Get(ctx, n.snapKey(patientID)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read news2 snapshot of patient %d: %w", patientID, err)
	}
	return b, nil
}

// receive applies the changes other nodes share.
func (n *RedisNEWS2) receive(apply func(ctx context.Context, patientID int64, msg []byte) error) {
	defer close(n.done)
	for m := range n.ps.Channel() {
		head, msg, ok := strings.Cut(m.Payload, "\n")
		from, pid, ok2 := strings.Cut(head, " ")
		patient, err := strconv.ParseInt(pid, 10, 64)
		if !ok || !ok2 || err != nil || from == n.node {
			continue
		}
		if err := apply(context.Background(), patient, []byte(msg)); err != nil {
			n.log.Warn("news2 change from another node", "patient", patient, "from", from, "err", err)
		}
	}
}

// Close ends the subscription and the client.
func (n *RedisNEWS2) Close() error {
	err := n.ps.Close()
	<-n.done
	return errors.Join(err, n.client.Close())
}
