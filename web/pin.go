package web

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bedside-health/bedside/cluster"
	"github.com/bedside-health/bedside/metrics"
)

// With several nodes, a visit's call lives in the SFU of one node: the one
// its pin (cluster.Rooms) names. Every route that belongs to the call is
// served there: a node that does not hold the visit passes the request on
// to the one that does (a reverse proxy, WebSocket upgrades included),
// which authenticates it as usual, since cookies and bearer tokens travel
// with it. Media does not pass through: ICE goes straight to the owner's
// own addresses.

// forwardHeader carries, from one node to another, the client's address
// and that the request was passed on, signed with the key the nodes share:
// "v1;{unix seconds};{client IP};{node};{hex HMAC-SHA256}". The MAC covers
// those fields and the request's method, host and target, so a header
// cannot be moved to another request. From anyone else it is ignored.
const forwardHeader = "Bedside-Node-Forwarded"

// forwardSkew is how far a forwarded request's time may be from ours.
const forwardSkew = 30 * time.Second

// Timeouts of requests passed on to another node (variables for tests).
var (
	// forwardHeaderTimeout bounds the wait for the owner's response
	// header: past WHIP's negotiation (negotiateTimeout) and a WebSocket
	// upgrade, an owner that takes a request and never answers.
	forwardHeaderTimeout = 15 * time.Second
	// forwardIdle closes a connection to the owner that has sent nothing
	// for this long. A passed-on socket hears the owner's keepalive ping
	// every 25 s (wsconn) and the owner gives up on a silent client after
	// 62.5 s; past that, the owner is gone (cut off without a reset) and
	// the client should reconnect rather than wait minutes for TCP to
	// notice.
	forwardIdle = 65 * time.Second
)

// pinRetryAfter is what a client is told to wait when its visit's node
// cannot be reached: the pin expires within cluster.DefaultPinTTL of the
// node's last renewal, and the next request claims it (or, if the node
// refuses connections, takes it over once it has missed a renewal:
// takeOver).
const pinRetryAfter = "5"

type pinMode int

const (
	// pinClaim takes the visit for this node if nobody holds it: the
	// routes that start a call, or a stream into it.
	pinClaim pinMode = iota
	// pinFollow goes to the visit's node if one holds it, and stays here
	// otherwise: routes that act on a call only where it is.
	pinFollow
)

// forwardedKey marks, in a request's context, a request another node
// passed on (its value is that node's id): it is never passed on again.
type forwardedKey struct{}

type forwardTargetKey struct{}

// forwardTo is where pinned passes a request on (in its context, under
// forwardTargetKey): the visit, the node holding it, and the request as it
// came and its handler here, should this node take the visit over.
type forwardTo struct {
	url   *url.URL
	visit int64
	owner cluster.Pin
	in    *http.Request
	next  http.Handler
}

type pinMetrics struct {
	proxied   metrics.Counter // requests passed to the visit's node, by route kind
	failures  metrics.Counter // by reason: unreachable, loop, forged
	takeovers metrics.Counter // visits taken from a node found dead
}

func newPinMetrics(r *metrics.Registry, rooms cluster.Rooms) *pinMetrics {
	m := &pinMetrics{
		proxied: r.Counter("bedside_node_proxied_requests_total",
			"Requests passed on to the node holding their visit's call, by route kind.", "kind"),
		failures: r.Counter("bedside_node_proxy_failures_total",
			"Requests for a visit held by another node that could not be passed on (unreachable, loop), and node-forwarding headers ignored as unsigned or forged (forged), by reason.", "reason"),
		takeovers: r.Counter("bedside_room_pins_taken_over_total",
			"Visits this node took over from a node that refused connections and had missed a pin renewal, before its pin expired."),
	}
	if h, ok := rooms.(interface{ Held() int }); ok {
		r.GaugeFunc("bedside_room_pins_held", "Visits whose call is pinned to this node.", func() int64 { return int64(h.Held()) })
	}
	return m
}

// forwardKey derives the key that signs forwarded requests from the
// server key every node shares; without a server key nothing is signed
// or believed.
func forwardKey(secret []byte) []byte {
	if len(secret) == 0 {
		return nil
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("bedside node forwarding v1"))
	return m.Sum(nil)
}

func (s *server) forwardMAC(ts, client, node, method, host, target string) string {
	m := hmac.New(sha256.New, s.forwardKey)
	for _, f := range []string{"v1", ts, client, node, method, host, target} {
		m.Write([]byte(f))
		m.Write([]byte{'\n'})
	}
	return hex.EncodeToString(m.Sum(nil))
}

// nodeForwarded believes the forwarding header of a request only when a
// fellow node signed it: then the request's address is the client's, and
// the request is marked as passed on. The header never reaches a handler.
func (s *server) nodeForwarded(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.Header.Get(forwardHeader)
		if v == "" {
			next.ServeHTTP(w, r)
			return
		}
		r.Header.Del(forwardHeader)
		client, node, ok := s.verifyForward(v, r)
		if !ok {
			s.pins.failures.Inc("forged")
			s.Log.WarnContext(r.Context(), "node forwarding header ignored: not signed by a fellow node", "peer", r.RemoteAddr, "route", logPath(r))
			next.ServeHTTP(w, r)
			return
		}
		r.RemoteAddr = net.JoinHostPort(client, "0")
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), forwardedKey{}, node)))
	})
}

func (s *server) verifyForward(v string, r *http.Request) (client, node string, ok bool) {
	f := strings.Split(v, ";")
	if len(s.forwardKey) == 0 || len(f) != 5 || f[0] != "v1" {
		return "", "", false
	}
	sec, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return "", "", false
	}
	if d := s.Now().Sub(time.Unix(sec, 0)); d > forwardSkew || d < -forwardSkew {
		return "", "", false
	}
	if net.ParseIP(f[2]) == nil {
		return "", "", false
	}
	want := s.forwardMAC(f[1], f[2], f[3], r.Method, r.Host, r.URL.RequestURI())
	if !hmac.Equal([]byte(want), []byte(f[4])) {
		return "", "", false
	}
	return f[2], f[3], true
}

// idleConn is a connection to another node that fails a read once the
// node has sent nothing for idle (forwardIdle).
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

// newForwarder is the reverse proxy to other nodes: it keeps the request's
// Host (so the owner's origin checks see what the client sent), drops any
// X-Forwarded-* and signs the client's address.
func (s *server) newForwarder() *httputil.ReverseProxy {
	dialer := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	idle := forwardIdle
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(pr.In.Context().Value(forwardTargetKey{}).(*forwardTo).url)
			pr.Out.Host = pr.In.Host
			client := pr.In.RemoteAddr
			if h, _, err := net.SplitHostPort(client); err == nil {
				client = h
			}
			ts := strconv.FormatInt(s.Now().Unix(), 10)
			node := s.Rooms.Self().Node
			mac := s.forwardMAC(ts, client, node, pr.Out.Method, pr.Out.Host, pr.Out.URL.RequestURI())
			pr.Out.Header.Set(forwardHeader, strings.Join([]string{"v1", ts, client, node, mac}, ";"))
		},
		Transport: &http.Transport{
			Proxy: nil, // nodes reach each other directly
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := dialer.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return &idleConn{Conn: c, idle: idle}, nil
			},
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: forwardHeaderTimeout,
			ExpectContinueTimeout: time.Second,
			MaxIdleConnsPerHost:   16,
			// Below forwardIdle, so the pool closes an idle connection
			// before its read deadline would.
			IdleConnTimeout: idle / 2,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			to, _ := r.Context().Value(forwardTargetKey{}).(*forwardTo)
			if to != nil && s.takeOver(w, to, err) {
				return
			}
			s.pins.failures.Inc("unreachable")
			var node *url.URL
			if to != nil {
				node = to.url
			}
			s.Log.WarnContext(r.Context(), "the node holding the visit's call cannot be reached", "route", logPath(r), "node", node, "err", err)
			w.Header().Set("Retry-After", pinRetryAfter)
			http.Error(w, "the server holding this visit's call cannot be reached; try again in a few seconds", http.StatusServiceUnavailable)
		},
	}
}

// pinned serves a request that belongs to a visit's call on the node that
// holds the call: here when this node holds it (or, with pinClaim, takes
// it), otherwise passed on to the holder. visit finds the request's visit;
// without one the request is served here and its handler answers. If the
// pins cannot be read (Redis away) the request is served here: calls go
// on, as on a single node.
func (s *server) pinned(kind string, mode pinMode, visit func(*http.Request) (int64, bool), next http.Handler) http.Handler {
	if _, local := s.Rooms.(cluster.LocalRooms); local {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := visit(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		var (
			owner   cluster.Pin
			self    bool
			release = func() {}
			err     error
		)
		if mode == pinClaim {
			owner, self, release, err = s.Rooms.Claim(r.Context(), id)
		} else {
			var held bool
			owner, held, err = s.Rooms.Owner(r.Context(), id)
			self = !held || owner == s.Rooms.Self()
		}
		if err != nil {
			s.Log.WarnContext(r.Context(), "visit pin unknown; serving here", "appointment", id, "err", err)
			self = true
		}
		if self {
			defer release()
			next.ServeHTTP(w, r)
			return
		}
		if owner.URL == s.Rooms.Self().URL {
			// An earlier run of this node (it held this URL, so it is
			// gone): its visits come back once its pin has missed a
			// renewal, rather than when the pin expires.
			if taken, release := s.tryTakeOver(r, id, owner); taken {
				defer release()
				next.ServeHTTP(w, r)
				return
			}
		}
		target, perr := url.Parse(owner.URL)
		_, passedOn := r.Context().Value(forwardedKey{}).(string)
		switch {
		case passedOn || owner.URL == s.Rooms.Self().URL || perr != nil:
			// Passed on once already (the pin moved meanwhile), or the
			// pin names this node's URL under another id: never again.
			s.pins.failures.Inc("loop")
			s.Log.WarnContext(r.Context(), "visit's call is on another node and the request cannot go there", "appointment", id, "node", owner.Node, "passed_on", passedOn)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "this visit's call is moving between servers; try again in a moment", http.StatusServiceUnavailable)
			return
		}
		s.pins.proxied.Inc(kind)
		to := &forwardTo{url: target, visit: id, owner: owner, next: next}
		to.in = r.WithContext(context.WithValue(r.Context(), forwardTargetKey{}, to))
		s.forwarder.ServeHTTP(w, to.in)
	})
}

// takeOver serves here a request whose visit's node refused the
// connection (nothing listens there: the node is gone or restarting),
// once this node has taken the visit over (cluster.RedisRooms.TakeOver:
// only if that node has also missed a pin renewal). A timeout is no such
// sign (a slow or cut-off node may still hold the call), nor is a refusal
// from a node that renews its pin. A request with a body, already spent
// on the attempt, is told to come again at once. It reports whether it
// answered.
func (s *server) takeOver(w http.ResponseWriter, to *forwardTo, err error) bool {
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return false
	}
	r := to.in
	taken, release := s.tryTakeOver(r, to.visit, to.owner)
	if !taken {
		return false
	}
	defer release()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Retry-After", "0")
		http.Error(w, "this visit's call has just moved to another server; send the request again", http.StatusServiceUnavailable)
		return true
	}
	to.next.ServeHTTP(w, r)
	return true
}

// tryTakeOver takes the visit from dead if the pins allow it
// (cluster.RedisRooms.TakeOver); when taken, release is as Claim's.
func (s *server) tryTakeOver(r *http.Request, visit int64, dead cluster.Pin) (bool, func()) {
	t, ok := s.Rooms.(interface {
		TakeOver(context.Context, int64, cluster.Pin) (bool, func(), error)
	})
	if !ok {
		return false, nil
	}
	taken, release, err := t.TakeOver(r.Context(), visit, dead)
	if err != nil {
		s.Log.WarnContext(r.Context(), "visit of a node found gone not taken over", "appointment", visit, "node", dead.Node, "err", err)
	}
	if !taken {
		return false, nil
	}
	s.pins.takeovers.Inc()
	return true, release
}

// pathVisit is the {id} visit of the request, if it carries a credential;
// without one there is nothing to route: the handler here refuses it. It
// only finds where a visit is (pinFollow): taking a pin needs callVisit or
// streamVisitOf.
func pathVisit(r *http.Request) (int64, bool) {
	if !hasCredential(r) {
		return 0, false
	}
	return pathID(r)
}

func pathID(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return id, err == nil && id > 0
}

func hasCredential(r *http.Request) bool {
	if r.Header.Get("Authorization") != "" {
		return true
	}
	_, err := r.Cookie(sessionCookie)
	return err == nil
}

// callVisit is the {id} visit of a call socket, if the request's session
// may join it. Only then may the request take the visit's pin (pinClaim):
// a made-up cookie, or someone else's visit, is refused by the handler
// here and pins nothing, so requests for many visits cannot fill Redis
// or pull visits to the node they land on.
func (s *server) callVisit(r *http.Request) (int64, bool) {
	id, ok := pathID(r)
	if !ok || !hasCredential(r) {
		return 0, false
	}
	c, err := s.lookupSession(r)
	if err != nil {
		return 0, false
	}
	a, err := s.Store.AppointmentByID(r.Context(), id)
	return id, err == nil && mayJoin(c, a)
}

// streamVisitOf is callVisit for WHIP and WHEP: the {id} visit, if the
// request's API token is one of its participants'.
func (s *server) streamVisitOf(r *http.Request) (int64, bool) {
	id, ok := pathID(r)
	if !ok || r.Header.Get("Authorization") == "" {
		return 0, false
	}
	c, ok := s.bearerCaller(discardResponse{}, r) // the handler answers the refusal
	if !ok {
		return 0, false
	}
	a, err := s.Store.AppointmentByID(r.Context(), id)
	return id, err == nil && mayStream(c, a)
}

// discardResponse swallows what a check writes when its handler, not the
// check, is to answer.
type discardResponse struct{}

func (discardResponse) Header() http.Header         { return http.Header{} }
func (discardResponse) Write(b []byte) (int, error) { return len(b), nil }
func (discardResponse) WriteHeader(int)             {}

// guestCallVisit is the visit of the request's guest link, if it is a live one.
func (s *server) guestCallVisit(r *http.Request) (int64, bool) {
	_, a, err := s.guestFrom(r)
	return a.ID, err == nil && a.ID > 0
}
