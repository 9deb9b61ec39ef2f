package web

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// handlersRunning counts the goroutines still inside a socket handler
// (its own frame, not the goroutine it started to serve the socket).
func handlersRunning() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		for _, h := range []string{".handleDeviceWS(", ".handleVitalsWS(", ".handleVitalsMultiWS(", ".handleGuestVitalsWS(", ".serveViewer("} {
			if strings.Contains(g, h) {
				count++
				break
			}
		}
	}
	return count
}

// TestIdleSocketsLeaveTheirHandlers: once a device's and its viewers'
// sockets are open and idle, no handler is still running for them: each
// socket is read from a goroutine of its own, started small, and the
// handler's goroutine, its stack grown by the HTTP, session, audit and
// store work of setting the socket up, has ended (docs/benchmarks.md,
// memory per idle connection). The sockets still work: a reading sent
// after that reaches both viewers.
func TestIdleSocketsLeaveTheirHandlers(t *testing.T) {
	f := newFixture(t)
	dev := dialDevice(t, f, f.devToken)
	single, _ := dialVitals(t, f, "doc@example.org")
	multi, _ := dialVitalsPath(t, f, "doc@example.org", "/ws/vitals")
	if err := multi.WriteJSON(map[string]any{"type": "subscribe", "appointment": f.visit.ID}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []*viewerClient{single, multi} {
		newTally(t).readUntilStream(v)
	}
	deadline := time.Now().Add(10 * time.Second)
	for n := handlersRunning(); n != 0; n = handlersRunning() {
		if time.Now().After(deadline) {
			t.Fatalf("%d socket handlers still running with the sockets idle, want 0", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := dev.WriteMessage(websocket.TextMessage, []byte(envelope(1, "8867-4", 72, "/min", ""))); err != nil {
		t.Fatal(err)
	}
	readAcks(t, dev, 1)
	for _, v := range []*viewerClient{single, multi} {
		ty := newTally(t)
		ty.readUntil(v, ty.seenAll(72, 72))
	}
}

// TestShutdownClosesDeviceSockets: sockets served past their handlers
// still end with the server: its Shutdown tells a device it is going
// away, so the device reconnects elsewhere and resends from its last ack.
func TestShutdownClosesDeviceSockets(t *testing.T) {
	f := newFixture(t)
	dev := dialDevice(t, f, f.devToken)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.srv.Config.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	_ = dev.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := dev.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Fatalf("device read %v after the server shut down, want close 1001 (going away)", err)
		}
		return
	}
}
