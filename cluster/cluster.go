// Package cluster is the message bus between Bedside nodes: in-process by
// default, Redis when configured. Messages are opaque bytes on named topics.
package cluster

import (
	"context"
	"sync"
)

// Bus publishes messages to topics and delivers them to subscribers on every
// node. Delivery to a subscriber never blocks the publisher: a subscriber
// whose buffer is full loses the message and its Dropped count grows.
type Bus interface {
	Publish(ctx context.Context, topic string, msg []byte) error
	Subscribe(topic string, buffer int) *Subscription
	Ping(ctx context.Context) error
	Close() error
}

// Subscription receives a topic's messages on C until Close.
type Subscription struct {
	C       <-chan []byte
	c       chan []byte
	topic   string
	mu      sync.Mutex
	dropped int
	closed  bool
	cancel  func(*Subscription)
}

// Dropped reports how many messages were lost because C was full.
func (s *Subscription) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Close stops delivery and closes C.
func (s *Subscription) Close() {
	s.cancel(s)
}

func (s *Subscription) deliver(msg []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	select {
	case s.c <- msg:
	default:
		s.dropped++
	}
}

func (s *Subscription) shut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.c)
	}
}

// Local is the in-process Bus used on a single machine.
type Local struct {
	mu   sync.RWMutex
	subs map[string]map[*Subscription]struct{}
}

var _ Bus = (*Local)(nil)

// NewLocal returns an empty in-process bus.
func NewLocal() *Local {
	return &Local{subs: make(map[string]map[*Subscription]struct{})}
}

// Publish delivers msg to every current subscriber of topic.
func (l *Local) Publish(ctx context.Context, topic string, msg []byte) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for s := range l.subs[topic] {
		s.deliver(msg)
	}
	return nil
}

// Subscribe returns a subscription buffering up to buffer messages.
func (l *Local) Subscribe(topic string, buffer int) *Subscription {
	c := make(chan []byte, buffer)
	s := &Subscription{C: c, c: c, topic: topic, cancel: l.unsubscribe}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.subs[topic] == nil {
		l.subs[topic] = make(map[*Subscription]struct{})
	}
	l.subs[topic][s] = struct{}{}
	return s
}

func (l *Local) unsubscribe(s *Subscription) {
	l.mu.Lock()
	if m := l.subs[s.topic]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(l.subs, s.topic)
		}
	}
	l.mu.Unlock()
	s.shut()
}

// Ping always succeeds: the local bus cannot be unreachable.
func (l *Local) Ping(ctx context.Context) error { return nil }

// Close is a no-op for the local bus.
func (l *Local) Close() error { return nil }
