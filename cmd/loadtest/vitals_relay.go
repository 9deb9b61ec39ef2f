package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/metrics"
)

// relay is the floor: a WebSocket server that forwards each frame of
// patient i's device, untouched, to viewer i. No parsing, storage, history
// or queue, one read and one write per frame, so what it costs is what the
// sockets cost. Clients send no Origin header; the default origin check
// refuses any browser page from another site.
type relay struct {
	mu      sync.Mutex
	viewers map[string]*websocket.Conn
	up      websocket.Upgrader
}

func newRelay() http.Handler {
	r := &relay{viewers: map[string]*websocket.Conn{}}
	mux := http.NewServeMux()
	// Its scheduler waits and stops of the world, as the server's /metrics
	// gives them, to hold the server's to.
	reg := metrics.NewRegistry()
	metrics.RegisterSchedulerLatency(reg)
	metrics.RegisterStoppedWorld(reg)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_ = reg.WriteText(w)
	})
	mux.HandleFunc("GET /view/{i}", r.view)
	mux.HandleFunc("GET /device/{i}", r.device)
	return mux
}

func (r *relay) view(w http.ResponseWriter, req *http.Request) {
	ws, err := r.up.Upgrade(w, req, nil)
	if err != nil {
		return
	}
	i := req.PathValue("i")
	r.mu.Lock()
	r.viewers[i] = ws
	r.mu.Unlock()
	// Read only to see the close.
	for {
		if _, _, err := ws.NextReader(); err != nil {
			break
		}
	}
	r.mu.Lock()
	if r.viewers[i] == ws {
		delete(r.viewers, i)
	}
	r.mu.Unlock()
	ws.Close()
}

func (r *relay) device(w http.ResponseWriter, req *http.Request) {
	ws, err := r.up.Upgrade(w, req, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	i := req.PathValue("i")
	for {
		kind, b, err := ws.ReadMessage()
		if err != nil {
			return
		}
		r.mu.Lock()
		v := r.viewers[i]
		r.mu.Unlock()
		if v == nil {
			continue
		}
		// This goroutine is viewer i's only writer.
		_ = v.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_ = v.WriteMessage(kind, b)
	}
}

// runRelay serves the relay on --addr until ctx ends, printing the address
// it listens on as its first line.
func runRelay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	fmt.Fprintf(stdout, "relay listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: newRelay(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("relay: %w", err)
	}
	return nil
}
