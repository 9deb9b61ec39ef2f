package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"

	"github.com/bedside-health/bedside/cluster"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/vitals/live"
)

// nodeFlags adds --node-url to fs; the returned function checks it once
// the flags and REDIS_URL are read. With several nodes (REDIS_URL), each
// visit's call is held by one node, and the others pass the visit's
// requests on to it at its node URL; there is no default, since the listen
// address (":8080") does not say how the other nodes reach this one.
func nodeFlags(fs *flag.FlagSet, getenv func(string) string, c *config) func() error {
	fs.StringVar(&c.nodeURL, "node-url", getenv("BEDSIDE_NODE_URL"),
		"how the other nodes reach this one, e.g. http://10.0.0.5:8080 (BEDSIDE_NODE_URL); required with REDIS_URL")
	return func() error {
		if c.redisURL == "" {
			return nil // one node: nothing to pass on
		}
		if c.nodeURL == "" {
			return fmt.Errorf("serve: REDIS_URL is set, so this node needs --node-url (BEDSIDE_NODE_URL): the URL the other nodes reach it by, " +
				"such as http://10.0.0.5:8080; each visit's call is held by one node and the others pass its requests there")
		}
		u, err := url.Parse(c.nodeURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("serve: node URL %q: want scheme://host:port only, such as http://10.0.0.5:8080", c.nodeURL)
		}
		c.nodeURL = u.Scheme + "://" + u.Host
		return nil
	}
}

// startRooms pins visits to nodes: in Redis with REDIS_URL, renewed while
// hub holds the visit's call; else every visit is held here. stop releases
// this node's pins (once; later calls do nothing).
func startRooms(ctx context.Context, c config, hub *signaling.Hub, log *slog.Logger) (rooms cluster.Rooms, stop func(), err error) {
	if c.redisURL == "" {
		return cluster.LocalRooms{}, func() {}, nil
	}
	r, err := cluster.NewRedisRooms(ctx, c.redisURL, cluster.Pin{Node: live.NewEpoch(), URL: c.nodeURL},
		cluster.RoomsConfig{Presence: func(a int64) cluster.Presence { // read by the others' lists of today's visits
			return cluster.Presence{Waiting: len(hub.Waiting(a)), InCall: len(hub.InCall(a))}
		}}, log)
	if err != nil {
		return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	go r.Run(ctx, func(a int64) bool { return len(hub.Waiting(a))+len(hub.InCall(a))+len(hub.Streams(a)) > 0 })
	var once sync.Once
	return r, func() {
		once.Do(func() {
			if err := r.Close(); err != nil {
				log.Warn("release visit pins", "err", err)
			}
		})
	}, nil
}
