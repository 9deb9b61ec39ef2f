package web

import (
	"context"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/gorilla/websocket"
)

// Idle WebSockets are kept small (docs/benchmarks.md, "Memory per idle
// connection"). A socket's handler sets it up and then serves its read
// loop from a goroutine of its own and returns: the handler's goroutine,
// whose stack grew on the way (HTTP parsing, session, audit, store), ends,
// and with it net/http's per-connection state, while the read loop's
// fresh goroutine parks in a read on a small stack. Sockets read through
// small buffers of their own and write through pooled buffers, held only
// while a frame is written.
const (
	viewerReadBuffer = 256 // viewers send only small requests and pongs; a control frame (125 bytes) fits
	deviceReadBuffer = 512 // a device frame is a few hundred bytes
)

// socketWriteBuffers lends write buffers to every vitals viewer and device
// socket for the time of one frame.
var socketWriteBuffers sync.Pool

// socketUpgrader upgrades to a WebSocket that reads through a readBuffer
// bytes buffer of its own and writes through a pooled buffer.
func (s *server) socketUpgrader(readBuffer int) *websocket.Upgrader {
	return &websocket.Upgrader{CheckOrigin: s.originAllowed, ReadBufferSize: readBuffer, WriteBufferPool: &socketWriteBuffers}
}

// socketScopes ends the sockets served past their handlers when their
// http.Server shuts down. The zero value is ready.
type socketScopes struct {
	mu    sync.Mutex
	bySrv map[*http.Server]context.Context
}

// of returns the context that ends when srv shuts down.
func (sc *socketScopes) of(srv *http.Server) context.Context {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if ctx, ok := sc.bySrv[srv]; ok {
		return ctx
	}
	if sc.bySrv == nil {
		sc.bySrv = make(map[*http.Server]context.Context)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv.RegisterOnShutdown(cancel)
	sc.bySrv[srv] = ctx
	return ctx
}

// socketPeer is what a socket keeps of its opening request for its
// re-checks and audit records once the handler has returned: r's session
// and guest cookies, its Authorization header, its token query parameter
// and its remote address, in about 200 bytes, and a context of its own.
//
// Neither the request nor its context is kept: an idle socket would hold
// for hours all of its headers and URL and the context chain net/http
// built for it (the connection's and the request's contexts, cancelled
// once the handler returns), about 2 KB a patient (docs/benchmarks.md,
// "Memory per idle connection").
type socketPeer struct {
	// ctx carries no values and ends when the server shuts down
	// (http.Server's Shutdown, which does not track hijacked connections).
	// It is the server's context, shared by its sockets: one of its own
	// for each socket, to end with it, cost a device socket about 400
	// bytes (the context, its Done channel, and the map of children the
	// read loop's context.AfterFunc adds to it), and nothing waits on it
	// for the socket's end: what a socket starts ends with its conn.
	ctx           context.Context
	remoteAddr    string
	cookie        string // the Cookie header with only sessionCookie and guestCookie
	authorization string
	query         string // token=X, if the request had one
}

// socketRequest returns what a socket keeps of r (socketPeer). Call done
// when the socket has ended.
func (s *server) socketRequest(r *http.Request) (p *socketPeer, done func()) {
	ctx := context.Background()
	if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok {
		ctx = s.sockets.of(srv)
	}
	if r.Context().Err() != nil {
		// Already shutting down.
		var cancel func()
		ctx, cancel = context.WithCancel(ctx)
		cancel()
	}
	p = &socketPeer{ctx: ctx, remoteAddr: strings.Clone(r.RemoteAddr), authorization: strings.Clone(r.Header.Get("Authorization"))}
	var cookies []string
	for _, name := range [...]string{sessionCookie, guestCookie} {
		if ck, err := r.Cookie(name); err == nil {
			cookies = append(cookies, (&http.Cookie{Name: ck.Name, Value: ck.Value}).String())
		}
	}
	// Cloned: http.Cookie's String reserves 110 bytes beyond the cookie,
	// and Join returns a single cookie's string as it is.
	p.cookie = strings.Clone(strings.Join(cookies, "; "))
	if q := r.URL.Query(); q.Has("token") {
		p.query = url.Values{"token": {q.Get("token")}}.Encode()
	}
	return p, socketEnded
}

// socketEnded is the done of every socketPeer: a socket holds nothing of
// its own that outlives it past its conn.
func socketEnded() {}

// request rebuilds, for one re-check or audit record, a request of p.ctx
// with what p kept of the socket's opening request: what lookupSession,
// guestFrom, bearerToken and audit.Address read.
func (p *socketPeer) request() *http.Request {
	h := make(http.Header, 2)
	if p.cookie != "" {
		h["Cookie"] = []string{p.cookie}
	}
	if p.authorization != "" {
		h["Authorization"] = []string{p.authorization}
	}
	r := &http.Request{Method: http.MethodGet, URL: &url.URL{RawQuery: p.query}, Header: h, RemoteAddr: p.remoteAddr}
	// Marked as a re-check's: not its person's activity (session.go).
	return r.WithContext(context.WithValue(p.ctx, recheckKey{}, true))
}

// goServe runs serve, a socket's read loop, on a goroutine of its own, then
// end. As net/http does for a handler, it recovers a panic and logs it, so
// one socket cannot take the server down; end runs either way.
func (s *server) goServe(ctx context.Context, serve, end func()) {
	go func() {
		defer end()
		defer func() {
			if p := recover(); p != nil {
				s.Log.ErrorContext(ctx, "panic serving a socket", "panic", p, "stack", string(debug.Stack()))
			}
		}()
		serve()
	}()
}
