package web

import (
	"fmt"
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
