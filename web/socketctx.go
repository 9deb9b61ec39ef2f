package web

import (
	"context"
	"net/http"
	"runtime/debug"
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
	viewerReadBuffer = 512 // viewers send only small requests and pongs
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

// socketRequest returns r with a context for serving its socket once the
// handler has returned (net/http then cancels the request's context): it
// keeps r's values and ends when the server shuts down (http.Server's
// Shutdown, which does not track hijacked connections) or when done is
// called. Call done when the socket has ended.
func (s *server) socketRequest(r *http.Request) (sr *http.Request, done func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	if r.Context().Err() != nil {
		cancel() // already shutting down
	}
	srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server)
	if !ok {
		return r.WithContext(ctx), cancel
	}
	stop := context.AfterFunc(s.sockets.of(srv), cancel)
	return r.WithContext(ctx), func() {
		stop()
		cancel()
	}
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
