package signaling_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
	"github.com/bedside-health/bedside/wsconn"
)

// rawDial opens a bare WebSocket to the hub and returns it with its first
// message.
func rawDial(t *testing.T, s *testServer, id string, appointment int64) (*websocket.Conn, signaling.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, s.url(id, id, signaling.RolePatient, appointment), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	var m signaling.Message
	if err := ws.ReadJSON(&m); err != nil {
		t.Fatalf("%s: first message: %v", id, err)
	}
	return ws, m
}

// awaitClose reads ws until it closes and returns the close error.
func awaitClose(t *testing.T, ws *websocket.Conn) *websocket.CloseError {
	t.Helper()
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("connection ended without a close frame: %v", err)
		}
		return ce
	}
}

// TestLimitsRefuseNewParticipants: each node limit refuses the participant
// that would exceed it with an error message and close 1013, counts the
// refusal under the limit's name, and never refuses someone reconnecting
// in place of their own older connection.
func TestLimitsRefuseNewParticipants(t *testing.T) {
	s := newTestServer(t)
	var mu sync.Mutex
	var refused []string
	s.hub.SetLimits(signaling.Limits{Visits: 2, PerVisit: 2, Participants: 3}, func(limit string) {
		mu.Lock()
		refused = append(refused, limit)
		mu.Unlock()
	})
	admitted := func(id string, appointment int64) *websocket.Conn {
		t.Helper()
		ws, m := rawDial(t, s, id, appointment)
		if m.Type != signaling.TypeWelcome {
			t.Fatalf("%s: first message %+v, want welcome", id, m)
		}
		return ws // the welcome follows registration: id now counts
	}
	refusedWith := func(id string, appointment int64, limit string) {
		t.Helper()
		ws, m := rawDial(t, s, id, appointment)
		// A full node asks to try again; a full visit says who must go.
		advice := "try again"
		if limit == "per-visit" {
			advice = "already has 2 participants"
		}
		if m.Type != signaling.TypeError || !strings.Contains(m.Error, advice) || !strings.Contains(m.Error, limit) {
			t.Fatalf("%s: first message %+v, want an error naming %q and saying %q", id, m, limit, advice)
		}
		if ce := awaitClose(t, ws); ce.Code != websocket.CloseTryAgainLater {
			t.Fatalf("%s: closed with %d, want 1013", id, ce.Code)
		}
		if err := s.awaitServed(t, id); !errors.Is(err, signaling.ErrFull) {
			t.Fatalf("%s: Serve returned %v, want ErrFull", id, err)
		}
	}

	admitted("p1", 1)
	admitted("p2", 1)
	refusedWith("p3", 1, "per-visit")
	p4 := admitted("p4", 2)
	refusedWith("p5", 3, "visits")
	refusedWith("p6", 2, "participants")
	// p1 again replaces its own connection though the node is full.
	admitted("p1", 1)
	if err := s.awaitServed(t, "p1"); !errors.Is(err, signaling.ErrReplaced) {
		t.Fatalf("p1's old connection: %v, want ErrReplaced", err)
	}
	// Once p4 leaves there is room again.
	if err := p4.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")); err != nil {
		t.Fatal(err)
	}
	if err := s.awaitServed(t, "p4"); err != nil {
		t.Fatalf("p4 leaving: %v", err)
	}
	admitted("p6", 2)

	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(refused, ","); got != "per-visit,visits,participants" {
		t.Fatalf("refusals counted %q", got)
	}
}

// TestDefaultPerVisitLimit: without SetLimits a visit holds six people.
func TestDefaultPerVisitLimit(t *testing.T) {
	s := newTestServer(t)
	for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
		if _, m := rawDial(t, s, id, 7); m.Type != signaling.TypeWelcome {
			t.Fatalf("%s: %+v, want welcome", id, m)
		}
	}
	if _, m := rawDial(t, s, "g", 7); m.Type != signaling.TypeError {
		t.Fatalf("seventh participant got %+v, want an error", m)
	}
}

// TestRateDisconnectsAFloodingClient: a client sending beyond its
// connection's rate is told so and closed with 1008, and Serve reports it.
func TestRateDisconnectsAFloodingClient(t *testing.T) {
	var mu sync.Mutex
	var refused []string
	s := newTestServerWith(t, wsconn.Options{Rate: wsconn.NewRate(0, 5)})
	s.hub.SetLimits(signaling.Limits{}, func(limit string) {
		mu.Lock()
		refused = append(refused, limit)
		mu.Unlock()
	})
	ws, m := rawDial(t, s, "p1", 1)
	if m.Type != signaling.TypeWelcome {
		t.Fatalf("first message %+v", m)
	}
	for range 6 {
		// An unknown message type draws an error reply but keeps the
		// connection; only the rate ends it.
		if err := ws.WriteJSON(signaling.Message{Type: "nonsense"}); err != nil {
			t.Fatal(err)
		}
	}
	var sawTooMany bool
	for {
		var got signaling.Message
		if err := ws.ReadJSON(&got); err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
				t.Fatalf("connection ended with %v, want close 1008", err)
			}
			break
		}
		if got.Type == signaling.TypeError && strings.Contains(got.Error, "too many messages") {
			sawTooMany = true
		}
	}
	if !sawTooMany {
		t.Fatal("no 'too many messages' error before the close")
	}
	if err := s.awaitServed(t, "p1"); !errors.Is(err, signaling.ErrTooFast) {
		t.Fatalf("Serve returned %v, want ErrTooFast", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(refused, ",") != "rate" {
		t.Fatalf("refusals counted %q, want rate", refused)
	}
}

// TestGuestsLeaveThePhysicianAndPatientPlaces: guests, waiting or
// admitted, take at most four of a visit's six places; a fifth guest is
// refused, saying so, while the physician and the patient, arriving last,
// still get in.
func TestGuestsLeaveThePhysicianAndPatientPlaces(t *testing.T) {
	s := newTestServer(t)
	const visit = 65
	roles := []string{signaling.RoleInterpreter, signaling.RoleFamily, signaling.RoleGuestPhysician, signaling.RoleFamily}
	for i, role := range roles {
		c := s.dial(t, fmt.Sprintf("g%d", i+1), fmt.Sprintf("Guest %d", i+1), role, visit)
		if w := await(t, c, signaling.TypeWelcome); w.State != signaling.StateWaiting {
			t.Fatalf("guest %d: %+v, want waiting", i+1, w)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, s.url("g5", "Guest 5", signaling.RoleFamily, visit), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var first signaling.Message
	if err := ws.ReadJSON(&first); err != nil {
		t.Fatal(err)
	}
	if first.Type != signaling.TypeError || !strings.Contains(first.Error, "all the guests it holds (4 besides the physician and the patient)") {
		t.Fatalf("fifth guest got %+v, want an error saying the visit has its 4 guests", first)
	}
	if ce := awaitClose(t, ws); ce.Code != websocket.CloseTryAgainLater {
		t.Fatalf("fifth guest closed with %d, want 1013", ce.Code)
	}
	if err := s.awaitServed(t, "g5"); !errors.Is(err, signaling.ErrVisitFull) {
		t.Fatalf("fifth guest: Serve returned %v, want ErrVisitFull", err)
	}
	pat := s.dial(t, "u2", "Pat Lee", signaling.RolePatient, visit)
	if w := await(t, pat, signaling.TypeWelcome); w.State != signaling.StateWaiting {
		t.Fatalf("patient: %+v, want waiting", w)
	}
	phys := s.dial(t, "u1", "Dr Ada", signaling.RolePhysician, visit)
	if w := await(t, phys, signaling.TypeWelcome); w.State != signaling.StateAdmitted {
		t.Fatalf("physician: %+v, want admitted", w)
	}
	if n := len(s.hub.Waiting(visit)); n != 5 {
		t.Fatalf("%d waiting, want the 4 guests and the patient", n)
	}
}

// whipOffer is an exam camera's WHIP offer: one VP8 video track, sent
// only, with its candidates gathered.
func whipOffer(t *testing.T) string {
	t.Helper()
	api, err := sigclient.NewAPI(true)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	video, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "camera", "camera")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(video, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return pc.LocalDescription().SDP
}

// TestStreamsLeaveThePhysicianAndPatientPlaces: exam cameras and viewers
// are held to the visit's places like guests. With 6 places and only the
// physician in the visit, one place stays kept for the absent patient:
// cameras and guests together fill the other 4 and the next of either is
// refused, yet the patient still gets in.
func TestStreamsLeaveThePhysicianAndPatientPlaces(t *testing.T) {
	s := newTestServer(t)
	const visit = 66
	phys := s.dial(t, "u1", "Dr Ada", signaling.RolePhysician, visit)
	if w := await(t, phys, signaling.TypeWelcome); w.State != signaling.StateAdmitted {
		t.Fatalf("physician: %+v, want admitted", w)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for i := range 3 {
		if _, _, err := s.hub.OpenStream(ctx, signaling.StreamPublish, visit, "u1", "Dr A", whipOffer(t)); err != nil {
			t.Fatalf("camera %d of 3: %v", i+1, err)
		}
	}
	g := s.dial(t, "g1", "Guest 1", signaling.RoleInterpreter, visit)
	if w := await(t, g, signaling.TypeWelcome); w.State != signaling.StateWaiting {
		t.Fatalf("guest: %+v, want waiting", w)
	}
	// Physician, 3 cameras and a guest: 5 of 6, the sixth is the patient's.
	if _, _, err := s.hub.OpenStream(ctx, signaling.StreamPublish, visit, "u1", "Dr A", whipOffer(t)); !errors.Is(err, signaling.ErrFull) {
		t.Fatalf("a fourth camera with the patient's place the only one free: %v, want ErrFull", err)
	}
	ws, first := rawDialAs(t, s, "g2", signaling.RoleFamily, visit)
	if first.Type != signaling.TypeError || !strings.Contains(first.Error, "all the guests it holds") {
		t.Fatalf("a second guest with the patient's place the only one free: %+v, want a full-visit error", first)
	}
	awaitClose(t, ws)
	if n := len(s.hub.Streams(visit)); n != 3 {
		t.Fatalf("%d streams open, want 3", n)
	}
	pat := s.dial(t, "u2", "Pat Lee", signaling.RolePatient, visit)
	if w := await(t, pat, signaling.TypeWelcome); w.Type != signaling.TypeWelcome {
		t.Fatalf("patient: %+v, want welcome", w)
	}
	// Now the visit is full for everyone.
	if _, _, err := s.hub.OpenStream(ctx, signaling.StreamView, visit, "u2", "Pat", whipOffer(t)); !errors.Is(err, signaling.ErrFull) {
		t.Fatalf("a viewer in a full visit: %v, want ErrFull", err)
	}
}

// rawDialAs is rawDial with a role.
func rawDialAs(t *testing.T, s *testServer, id, role string, appointment int64) (*websocket.Conn, signaling.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, s.url(id, id, role, appointment), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	var m signaling.Message
	if err := ws.ReadJSON(&m); err != nil {
		t.Fatalf("%s: first message: %v", id, err)
	}
	return ws, m
}
