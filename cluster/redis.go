package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Redis is a Bus spanning nodes through Redis pub/sub. Each node keeps one
// pub/sub connection, subscribed to the topics its local subscribers want,
// and fans messages out locally, so a message crosses the network once per
// node, not once per subscriber.
type Redis struct {
	client *goredis.Client
	ps     *goredis.PubSub
	local  *Local
	log    *slog.Logger

	mu     sync.Mutex
	counts map[string]int // local subscribers per topic
	done   chan struct{}
}

var _ Bus = (*Redis)(nil)

// NewRedis connects to the Redis server at url (redis://host:port/db).
func NewRedis(ctx context.Context, url string, log *slog.Logger) (*Redis, error) {
	client, err := dialRedis(ctx, url, dialPatient)
	if err != nil {
		return nil, err
	}
	r := &Redis{
		client: client,
		ps:     client.Subscribe(ctx),
		local:  NewLocal(),
		log:    log,
		counts: make(map[string]int),
		done:   make(chan struct{}),
	}
	go r.receive()
	return r, nil
}

func (r *Redis) receive() {
	defer close(r.done)
	// Channel reconnects by itself after Redis goes away and comes back,
	// resubscribing to the current topics.
	for msg := range r.ps.Channel(goredis.WithChannelSize(1024)) {
		_ = r.local.Publish(context.Background(), msg.Channel, []byte(msg.Payload))
	}
}

// Publish sends msg to topic on every node.
func (r *Redis) Publish(ctx context.Context, topic string, msg []byte) error {
	if err := r.client.Publish(ctx, topic, msg).Err(); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// Subscribe returns a subscription to topic, subscribing this node in Redis
// when it is the topic's first local subscriber.
func (r *Redis) Subscribe(topic string, buffer int) *Subscription {
	s := r.local.Subscribe(topic, buffer)
	inner := s.cancel
	s.cancel = func(s *Subscription) {
		inner(s)
		r.release(topic)
	}
	r.mu.Lock()
	r.counts[topic]++
	first := r.counts[topic] == 1
	r.mu.Unlock()
	if first {
		if err := r.ps.Subscribe(context.Background(), topic); err != nil {
			r.log.Warn("redis subscribe failed; will retry on reconnect", "topic", topic, "err", err)
		}
	}
	return s
}

func (r *Redis) release(topic string) {
	r.mu.Lock()
	r.counts[topic]--
	last := r.counts[topic] == 0
	if last {
		delete(r.counts, topic)
	}
	r.mu.Unlock()
	if last {
		if err := r.ps.Unsubscribe(context.Background(), topic); err != nil {
			r.log.Warn("redis unsubscribe failed", "topic", topic, "err", err)
		}
	}
}

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	return r.client.Ping(ctx).Err()
}

// Close ends the pub/sub connection and the client.
func (r *Redis) Close() error {
	err := r.ps.Close()
	<-r.done
	return errors.Join(err, r.client.Close())
}

// dialing says how a client's commands wait on Redis.
type dialing int

const (
	// dialPatient commands wait as long as go-redis's defaults allow.
	dialPatient dialing = iota
	// dialQuick commands give up within about a second (one retry): for the
	// callers that must never hold up a call on a Redis that went away,
	// and carry on locally instead.
	dialQuick
	// dialQuickOnce commands give up as quickly and are never retried: for a
	// script that must not run twice, which a retry does when Redis ran
	// the first try after its reply was given up on.
	dialQuickOnce
)

// dialRedis connects to the Redis server at url (redis://host:port/db) and
// checks that it answers.
func dialRedis(ctx context.Context, url string, how dialing) (*goredis.Client, error) {
	opts, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	if how != dialPatient {
		opts.ContextTimeoutEnabled = true
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.MaxRetries = time.Second, time.Second, time.Second, 1
	}
	if how == dialQuickOnce {
		opts.MaxRetries = -1 // none (0 is go-redis's default of 3)
	}
	client := goredis.NewClient(opts)
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("reach redis: %w", err)
	}
	return client, nil
}
