package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// recheckFixture re-checks open sockets every few milliseconds.
func recheckFixture(t *testing.T) *fixture {
	return newFixtureWith(t, func(d *Deps) { d.Recheck = 5 * time.Millisecond })
}

// TestSignOutEverywhereClosesOpenSockets: a physician's open vitals socket
// closes once their sessions are ended elsewhere.
func TestSignOutEverywhereClosesOpenSockets(t *testing.T) {
	f := recheckFixture(t)
	viewer, status := dialVitals(t, f, "doc@example.org")
	if viewer == nil {
		t.Fatalf("vitals socket: %d", status)
	}
	if _, err := f.st.DeleteUserSessions(t.Context(), f.doc.ID); err != nil {
		t.Fatal(err)
	}
	awaitCloseCode(t, viewer.Conn, websocket.ClosePolicyViolation, "session ended")
}

// TestRevokedDeviceIsDisconnected: revoking a streaming device's token
// closes its connection, and it cannot reconnect.
func TestRevokedDeviceIsDisconnected(t *testing.T) {
	f := recheckFixture(t)
	dev := dialDevice(t, f, f.devToken)
	if ack := lastAck(t, sendFrame(t, dev, envelope(1, "8867-4", 70, "/min", ""))); ack != 1 {
		t.Fatalf("ack %d", ack)
	}
	if err := f.st.RevokeCredential(t.Context(), f.devID, time.Now()); err != nil {
		t.Fatal(err)
	}
	awaitCloseCode(t, dev, websocket.ClosePolicyViolation, "revoked")
	_, resp, err := websocket.DefaultDialer.Dial(f.wsURL("/ws/device"), http.Header{"Authorization": {"Bearer " + f.devToken}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("reconnecting with a revoked token: %v, want 401", err)
	}
}

// TestRecheckKeepsTheSocketsCredentials: a socket's re-checks run long
// after its handler returned, on what the socket kept of its opening
// request (socketPeer), not the request. A device that gave its token as
// ?token= is closed for its revoked token, not as a browser whose session
// ended; a physician's vitals socket is closed for its cancelled visit, not
// for a session it no longer carries.
func TestRecheckKeepsTheSocketsCredentials(t *testing.T) {
	f := recheckFixture(t)
	viewer, status := dialVitals(t, f, "doc@example.org")
	if viewer == nil {
		t.Fatalf("vitals socket: %d", status)
	}
	dev, _, err := websocket.DefaultDialer.Dial(f.wsURL("/ws/device?token="+url.QueryEscape(f.devToken)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	_ = dev.SetReadDeadline(time.Now().Add(10 * time.Second))
	var first reply
	if err := dev.ReadJSON(&first); err != nil || first.Ack == nil {
		t.Fatalf("first ack: %+v, %v", first, err)
	}
	if ack := lastAck(t, sendFrame(t, dev, envelope(1, "8867-4", 70, "/min", ""))); ack != 1 {
		t.Fatalf("ack %d", ack)
	}
	if err := f.st.RevokeCredential(t.Context(), f.devID, time.Now()); err != nil {
		t.Fatal(err)
	}
	awaitCloseCode(t, dev, websocket.ClosePolicyViolation, "revoked")
	if _, err := f.st.SetAppointmentStatus(t.Context(), f.visit.ID, scheduling.StatusCancelled, store.Change{Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	awaitCloseCode(t, viewer.Conn, websocket.ClosePolicyViolation, "no longer open")
}

// TestCancelledVisitClosesTheCall: cancelling a visit closes the patient's
// open call socket (the join session ended with its link).
func TestCancelledVisitClosesTheCall(t *testing.T) {
	f := recheckFixture(t)
	ws, _, err := websocket.DefaultDialer.Dial(f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.joinClient(t, f.visit)))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if _, err := f.st.SetAppointmentStatus(t.Context(), f.visit.ID, scheduling.StatusCancelled, store.Change{Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	// Either reason is right: a check may read the session just before
	// the cancellation and the visit just after it.
	awaitCloseCode(t, ws, websocket.ClosePolicyViolation, "session ended", "no longer open")
}

// fakeSocket is a closer that records how it was closed.
type fakeSocket struct {
	done   chan struct{}
	closed chan string
}

func newFakeSocket() *fakeSocket {
	return &fakeSocket{done: make(chan struct{}), closed: make(chan string, 1)}
}

func (f *fakeSocket) Done() <-chan struct{} { return f.done }

func (f *fakeSocket) CloseWith(code int, reason string) {
	f.closed <- fmt.Sprint(code, " ", reason)
	close(f.done)
}

// TestSocketChecksShareOneQueue: sockets re-checked from one queue are
// each checked again and again while allowed, closed with 1008 and the
// reason on their first refusal, and no longer checked once closed, while
// the others go on; a socket with a shorter interval is checked first.
func TestSocketChecksShareOneQueue(t *testing.T) {
	var q socketChecks
	log := slog.New(slog.DiscardHandler)
	ctx := t.Context()
	const every = 10 * time.Millisecond
	type sock struct {
		f      *fakeSocket
		checks chan int
	}
	add := func(every time.Duration, refuseAt int) sock {
		s := sock{newFakeSocket(), make(chan int, 100)}
		n := 0
		q.add(log, socketCheck{ctx: ctx, conn: s.f, still: func(context.Context) error {
			n++
			s.checks <- n
			if n == refuseAt {
				return errVisitOver
			}
			return nil
		}}, every)
		return s
	}
	stays, refused, ended := add(every, 0), add(every, 2), add(every, 0)
	quick := add(time.Millisecond, 0)
	if got := <-quick.checks; got != 1 {
		t.Fatalf("quick socket's first check = %d", got)
	}
	close(ended.f.done)
	wait := func(s sock, n int) {
		t.Helper()
		for {
			select {
			case got := <-s.checks:
				if got >= n {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("fewer than %d checks", n)
			}
		}
	}
	wait(refused, 2)
	select {
	case why := <-refused.f.closed:
		if why != fmt.Sprint(websocket.ClosePolicyViolation, " ", errVisitOver.Error()) {
			t.Errorf("closed with %q", why)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the refused socket was not closed")
	}
	wait(stays, 5)
	wait(quick, 20)
	if n := len(refused.checks); n != 0 {
		t.Errorf("the refused socket was checked %d more times", n)
	}
	if n := len(ended.checks); n > 1 {
		t.Errorf("the ended socket was checked %d times after it ended", n)
	}
}
