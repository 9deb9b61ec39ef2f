package web

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	goredis "github.com/redis/go-redis/v9"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/cluster"
	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
	"github.com/bedside-health/bedside/store"
)

// nodeSecret is the server key every node of a test cluster shares.
var nodeSecret = []byte("a test key of thirty-two bytes, or more")

// node is one Bedside server of a test cluster: its own SFU, signaling
// hub and room pins in the shared Redis, on the fixture's store.
type node struct {
	name  string
	srv   *httptest.Server
	hub   *signaling.Hub
	rooms *cluster.RedisRooms
	stop  context.CancelFunc // stops renewing its pins, as a crashed node does
}

// startNode starts a node named name on f's store, its pins under prefix.
func startNode(t *testing.T, f *fixture, name, prefix string, ttl time.Duration) *node {
	t.Helper()
	return startNodeWith(t, f, name, prefix, ttl, nil)
}

// startNodeWith is startNode with the server's Deps adjusted by adjust.
func startNodeWith(t *testing.T, f *fixture, name, prefix string, ttl time.Duration, adjust func(*Deps)) *node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	redis := os.Getenv("REDIS_URL")
	if redis == "" {
		redis = "redis://127.0.0.1:6379/0"
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	var hub *signaling.Hub // who is in its calls, published for the other nodes
	presence := func(a int64) cluster.Presence {
		return cluster.Presence{Waiting: len(hub.Waiting(a)), InCall: len(hub.InCall(a))}
	}
	rooms, err := cluster.NewRedisRooms(ctx, redis, cluster.Pin{Node: name, URL: "http://" + ln.Addr().String()},
		cluster.RoomsConfig{Prefix: prefix, TTL: ttl, Presence: presence}, log)
	if err != nil {
		ln.Close()
		if os.Getenv("CI") != "" {
			t.Fatalf("redis is required in CI: %v", err)
		}
		t.Skipf("no redis: %v", err)
	}
	devices, err := cluster.NewRedisDevices(ctx, redis, cluster.DevicesConfig{Prefix: prefix + "device:"}, log)
	if err != nil {
		rooms.Close()
		ln.Close()
		t.Fatal(err)
	}
	sfu, err := media.New(media.Config{AllowLoopback: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	hub = signaling.NewHub(sfu, log)
	deps := Deps{Log: log, Store: f.st, Bus: cluster.NewLocal(), Calls: hub,
		Secret: nodeSecret, Rooms: rooms, Devices: devices, Audit: &audit.Recorder{Store: f.st, Log: log}}
	if adjust != nil {
		adjust(&deps)
	}
	srv := httptest.NewUnstartedServer(NewServer(deps))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	runCtx, stop := context.WithCancel(context.Background())
	go rooms.Run(runCtx, holdsVisit(hub))
	n := &node{name: name, srv: srv, hub: hub, rooms: rooms, stop: stop}
	t.Cleanup(func() {
		stop()
		srv.CloseClientConnections()
		srv.Close()
		rooms.Close()
		devices.Close()
		sfu.Close()
	})
	return n
}

// holdsVisit is how cmd/bedside tells the pins which visits' calls the
// node holds.
func holdsVisit(h *signaling.Hub) func(int64) bool {
	return func(a int64) bool { return len(h.Waiting(a))+len(h.InCall(a))+len(h.Streams(a)) > 0 }
}

func (n *node) ws(path string) string { return "ws" + strings.TrimPrefix(n.srv.URL, "http") + path }

// metric reads one sample of this node's /metrics (0 if absent).
func (n *node) metric(t *testing.T, sample string) int {
	t.Helper()
	resp, err := http.Get(n.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), sample+" "); ok {
			i, _ := strconv.Atoi(v)
			return i
		}
	}
	return 0
}

// balancer is a load balancer without stickiness: each request goes to
// whichever node the test points it at.
type balancer struct {
	srv    *httptest.Server
	target atomic.Pointer[url.URL]
}

func newBalancer(t *testing.T, to *node) *balancer {
	b := &balancer{}
	b.point(to)
	b.srv = httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(b.target.Load())
		pr.Out.Host = pr.In.Host
	}})
	t.Cleanup(b.srv.Close)
	return b
}

func (b *balancer) point(to *node) { u, _ := url.Parse(to.srv.URL); b.target.Store(u) }

func (b *balancer) ws(path string) string { return "ws" + strings.TrimPrefix(b.srv.URL, "http") + path }

func newCluster(t *testing.T, ttl time.Duration) (*fixture, *node, *node) {
	f := newFixture(t)
	prefix := fmt.Sprintf("test:room:%d:", time.Now().UnixNano())
	return f, startNode(t, f, "node-a", prefix, ttl), startNode(t, f, "node-b", prefix, ttl)
}

// TestCallAcrossNodes: behind a load balancer without stickiness, the
// physician's socket reaches node A and the patient's node B; they are in
// one call on A (B passes the patient's signaling on), media flows between
// them, and each one's resume lands on the other node and resumes the same
// participant.
func TestCallAcrossNodes(t *testing.T) {
	f, a, b := newCluster(t, 0)
	lb := newBalancer(t, a)
	path := fmt.Sprintf("/ws/call/%d", f.visit.ID)
	doctor := dialCall(t, lb.ws(path), f.cookieHeader(f.signIn(t, "doc@example.org")))
	if w := await(t, doctor, signaling.TypeWelcome); w.State != signaling.StateAdmitted {
		t.Fatalf("physician welcome state %q, want admitted", w.State)
	}

	lb.point(b)
	video, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "patient")
	patient := dialCall(t, lb.ws(path), f.cookieHeader(f.joinClient(t, f.visit)), video)
	if w := await(t, patient, signaling.TypeWelcome); w.State != signaling.StateWaiting {
		t.Fatalf("patient welcome state %q, want waiting", w.State)
	}
	wantID := fmt.Sprintf("u%d", f.pat.ID)
	for {
		l := await(t, doctor, signaling.TypeLobby)
		if l.Waiting != nil && len(*l.Waiting) == 1 && (*l.Waiting)[0].Participant == wantID {
			break
		}
	}
	if len(b.hub.Waiting(f.visit.ID))+len(b.hub.InCall(f.visit.ID)) != 0 {
		t.Fatal("node B holds a part of the call")
	}
	doctor.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: wantID})
	await(t, patient, signaling.TypeAdmitted)

	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for n := uint32(0); ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			_ = video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 3000, Marker: true},
				Payload: sigclient.VP8Payload(n, 'f', n%30 == 0, 600)})
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	tr, err := doctor.NextTrack(ctx)
	if err != nil {
		t.Fatalf("the physician on node A got no track from the patient on node B: %v", err)
	}
	for i := range 30 {
		if _, _, err := tr.ReadRTP(); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	if got := b.metric(t, `bedside_node_proxied_requests_total{kind="call"}`); got != 1 {
		t.Errorf("node B passed on %d call sockets, want 1", got)
	}
	if got := a.metric(t, "bedside_room_pins_held"); got != 1 {
		t.Errorf("node A holds %d pins, want 1", got)
	}

	// The physician's network drops; the balancer now picks node B, which
	// passes the resume on to A: the same participant, not a new join.
	doctor.Drop()
	if err := doctor.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if m := resumeOutcome(ctx, t, doctor); m != signaling.TypeResumed {
		t.Fatalf("physician's resume through node B: %s, want resumed", m)
	}
	// And the patient's, now through A, which holds the call.
	lb.point(a)
	patient.Drop()
	if err := patient.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if m := resumeOutcome(ctx, t, patient); m != signaling.TypeResumed {
		t.Fatalf("patient's resume through node A: %s, want resumed", m)
	}
	if in := a.hub.InCall(f.visit.ID); len(in) != 2 {
		t.Fatalf("node A's call after both resumed: %+v, want the physician and the patient", in)
	}
	// Media still flows to the physician.
	if _, _, err := tr.ReadRTP(); err != nil {
		t.Fatal(err)
	}
}

// resumeOutcome is how the server answered c's resume: resumed, or
// resume-failed (or welcome) when it started a new session instead.
func resumeOutcome(ctx context.Context, t *testing.T, c *sigclient.Client) string {
	t.Helper()
	for {
		m, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("no answer to the resume: %v", err)
		}
		switch m.Type {
		case signaling.TypeResumed, signaling.TypeResumeFailed, signaling.TypeWelcome:
			return m.Type
		}
	}
}

// TestPinMovesWhenItsNodeDies: the node holding a call dies; until its
// pin expires (or it has missed a renewal: TestDeadOwnerTakenOverEarly) a
// join through another node is told to retry (503, Retry-After), then
// that node takes the visit and holds the call.
func TestPinMovesWhenItsNodeDies(t *testing.T) {
	// Renewals every 2 s, a takeover from 3 s after the last: the first
	// join below comes well before that, however loaded the machine.
	f, a, b := newCluster(t, 6*time.Second)
	path := fmt.Sprintf("/ws/call/%d", f.visit.ID)
	doc := f.cookieHeader(f.signIn(t, "doc@example.org"))
	doctor := dialCall(t, a.ws(path), doc)
	await(t, doctor, signaling.TypeWelcome)
	if o, ok, err := b.rooms.Owner(t.Context(), f.visit.ID); err != nil || !ok || o.Node != "node-a" {
		t.Fatalf("pin after joining on A: %+v %v %v", o, ok, err)
	}

	// A dies: it stops renewing and answers nobody.
	a.stop()
	a.srv.Listener.Close()
	a.srv.CloseClientConnections()
	doctor.Close()

	_, resp, err := websocket.DefaultDialer.Dial(b.ws(path), doc)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("joining through B while the dead node's pin lasts: %v (%v), want 503 with Retry-After", err, resp)
	}
	var again *websocket.Conn
	deadline := time.Now().Add(10 * time.Second)
	for again == nil {
		ws, resp, err := websocket.DefaultDialer.Dial(b.ws(path), doc)
		switch {
		case err == nil:
			again = ws
		case resp == nil || resp.StatusCode != http.StatusServiceUnavailable:
			t.Fatalf("joining through B: %v", err)
		case time.Now().After(deadline):
			t.Fatal("the dead node's pin never expired")
		default:
			time.Sleep(100 * time.Millisecond) // the client's retry
		}
	}
	defer again.Close()
	var w signaling.Message
	if err := again.ReadJSON(&w); err != nil || w.Type != signaling.TypeWelcome {
		t.Fatalf("rejoin on B: %+v, %v", w, err)
	}
	if o, ok, _ := b.rooms.Owner(t.Context(), f.visit.ID); !ok || o.Node != "node-b" {
		t.Fatalf("pin after the rejoin: %+v %v, want node-b", o, ok)
	}
	if len(b.hub.InCall(f.visit.ID)) != 1 {
		t.Fatal("node B does not hold the physician's call")
	}
	if got := b.metric(t, `bedside_node_proxy_failures_total{reason="unreachable"}`); got < 1 {
		t.Errorf("unreachable owner counted %d times", got)
	}
}

// TestForwardedHeaderOnlyFromNodes: a client's own forwarding header is
// ignored (its address stays its own, and it is passed on like any other
// request), and a request a node passed on is never passed on again.
func TestForwardedHeaderOnlyFromNodes(t *testing.T) {
	f, a, b := newCluster(t, 0)
	path := fmt.Sprintf("/ws/call/%d", f.visit.ID)
	doc := f.cookieHeader(f.signIn(t, "doc@example.org"))
	doctor := dialCall(t, a.ws(path), doc)
	await(t, doctor, signaling.TypeWelcome)

	// A client on 127.0.0.2 claims, unsigned, to be 203.0.113.9.
	from2 := &websocket.Dialer{NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}
	forged := doc.Clone()
	forged.Set(forwardHeader, fmt.Sprintf("v1;%d;203.0.113.9;node-b;%s", time.Now().Unix(), strings.Repeat("ab", 32)))
	visitReads := func() []string {
		events, _, err := f.st.AuditEvents(t.Context(), store.AuditQuery{ActorID: f.doc.ID, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var addrs []string
		for _, e := range events {
			if e.Resource == fmt.Sprintf("Appointment/%d", f.visit.ID) {
				addrs = append(addrs, e.Address)
			}
		}
		return addrs
	}
	before := len(visitReads())
	for i, n := range []*node{a, b} {
		ws, _, err := from2.Dial(n.ws(path), forged)
		if err != nil {
			t.Fatalf("forged header to %s: %v", n.name, err)
		}
		var w signaling.Message
		if err := ws.ReadJSON(&w); err != nil || w.Type != signaling.TypeWelcome {
			t.Fatalf("forged header to %s: %+v, %v", n.name, w, err)
		}
		ws.Close()
		if got := n.metric(t, `bedside_node_proxy_failures_total{reason="forged"}`); got != 1 {
			t.Errorf("%s counted %d forged headers, want 1", n.name, got)
		}
		// Through B too, the socket was served by A, where the call is.
		if got := b.metric(t, `bedside_node_proxied_requests_total{kind="call"}`); got != i {
			t.Errorf("after the forged header to %s node B passed on %d sockets, want %d", n.name, got, i)
		}
	}
	addrs := visitReads()[before:]
	// Both connections are audited under the client's real address: the
	// one B passed on carries it, signed, and A believes that.
	if len(addrs) != 2 || addrs[0] != "127.0.0.2" || addrs[1] != "127.0.0.2" {
		t.Fatalf("audited addresses %q, want the client's 127.0.0.2 twice", addrs)
	}

	// A request signed by a node, landing on a node that does not hold
	// the visit (the pin moved meanwhile), is refused, not passed on again.
	signer := &server{Deps: Deps{Now: time.Now}, forwardKey: forwardKey(nodeSecret)}
	req, _ := http.NewRequest("GET", b.srv.URL+path, nil)
	req.Header = doc.Clone()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	host := strings.TrimPrefix(b.srv.URL, "http://")
	req.Header.Set(forwardHeader, strings.Join([]string{"v1", ts, "127.0.0.9", "node-a",
		signer.forwardMAC(ts, "127.0.0.9", "node-a", "GET", host, path)}, ";"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a passed-on request for a visit held elsewhere: %d, want 503 with Retry-After", resp.StatusCode)
	}
	if got := b.metric(t, `bedside_node_proxy_failures_total{reason="loop"}`); got != 1 {
		t.Errorf("loops counted: %d, want 1", got)
	}
	if got := b.metric(t, `bedside_node_proxied_requests_total{kind="call"}`); got != 1 {
		t.Errorf("node B passed on %d sockets, want still 1", got)
	}
}

// TestGuestRevokedOnAnotherNode: a guest's call is on node A; the
// physician withdraws the link through node B; the guest is removed from
// the call at once (long before the 30 s re-check).
func TestGuestRevokedOnAnotherNode(t *testing.T) {
	f, a, b := newCluster(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	docClient := f.signIn(t, "doc@example.org")
	doctor := dialCall(t, a.ws(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(docClient))
	await(t, doctor, signaling.TypeWelcome)

	tok, hash := auth.NewToken()
	l, err := f.st.CreateGuestLink(ctx, store.GuestLink{AppointmentID: f.visit.ID, TokenHash: hash, Role: store.GuestInterpreter,
		Name: "Ines", IssuedBy: f.doc.ID, CreatedAt: time.Now(), ExpiresAt: f.visit.End.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// The guest's socket lands on B, which passes it on to A.
	guest := dialCall(t, b.ws("/guest/ws"), http.Header{"Cookie": {guestCookie + "=" + tok}})
	if w := await(t, guest, signaling.TypeWelcome); w.State != signaling.StateWaiting {
		t.Fatalf("guest welcome %+v", w)
	}
	if len(a.hub.Waiting(f.visit.ID)) != 1 {
		t.Fatal("the guest is not in node A's waiting room")
	}

	start := time.Now()
	st, _ := guestPost(t, docClient, fmt.Sprintf("%s/consult/%d/guests/%d/revoke", b.srv.URL, f.visit.ID, l.ID), nil)
	if st != http.StatusOK {
		t.Fatalf("revoke through node B: %d", st)
	}
	if e, err := guest.Await(ctx, signaling.TypeError); err != nil || !strings.Contains(e.Error, "withdrawn") {
		t.Fatalf("the guest after the revocation: %+v, %v", e, err)
	}
	select {
	case <-guest.Done():
	case <-ctx.Done():
		t.Fatal("the guest's connection stayed open after the revocation")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the guest left %v after the revocation", d)
	}
	if got := b.metric(t, `bedside_node_proxied_requests_total{kind="guest-revoke"}`); got != 1 {
		t.Errorf("revocations passed on: %d, want 1", got)
	}
}

// TestExamCameraThroughAnotherNode: an exam camera's WHIP request lands
// on node B while the call is on A: the camera reaches the physician on A,
// and its DELETE, landing on B too, ends it there.
func TestExamCameraThroughAnotherNode(t *testing.T) {
	f, a, b := newCluster(t, 0)
	doctor := dialCall(t, a.ws(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.signIn(t, "doc@example.org")))
	await(t, doctor, signaling.TypeWelcome)
	viaB := *f
	viaB.srv = b.srv
	camera := viaB.publishWHIP(t, f.visit.ID, f.apiToken(t, f.doc.ID))
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	tr, err := doctor.NextTrack(ctx)
	if err != nil {
		t.Fatalf("the physician on A received no track from the camera that came through B: %v", err)
	}
	readFrames(t, "physician", tr, 30)
	if len(a.hub.Streams(f.visit.ID)) != 1 || len(b.hub.Streams(f.visit.ID)) != 0 {
		t.Fatalf("streams: A %d, B %d; want the camera on A", len(a.hub.Streams(f.visit.ID)), len(b.hub.Streams(f.visit.ID)))
	}
	resp, _ := viaB.streamRequest(t, http.MethodDelete, camera.location, f.apiToken(t, f.doc.ID), "", "")
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE through B: %d", resp.StatusCode)
	}
	if n := len(a.hub.Streams(f.visit.ID)); n != 0 {
		t.Fatalf("the camera is still on A after its DELETE: %d streams", n)
	}
	if got := b.metric(t, `bedside_node_proxied_requests_total{kind="whip"}`); got != 2 {
		t.Errorf("WHIP requests passed on: %d, want 2 (POST and DELETE)", got)
	}
}

// TestPinsUnknownServeHere: when Redis cannot be asked where a visit is,
// the node serves the call itself, as a single node would.
func TestPinsUnknownServeHere(t *testing.T) {
	f, a, _ := newCluster(t, 0)
	a.stop()
	a.rooms.Close() // Redis is out of reach for A's pins
	doctor := dialCall(t, a.ws(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.signIn(t, "doc@example.org")))
	if w := await(t, doctor, signaling.TypeWelcome); w.State != signaling.StateAdmitted {
		t.Fatalf("physician welcome with the pins unknown: %+v", w)
	}
	if len(a.hub.InCall(f.visit.ID)) != 1 {
		t.Fatal("node A does not hold the call")
	}
}

// TestGuestVitalsThroughAnotherNode: a second physician's vitals socket
// lands on node B while the call that admitted them is on A: B passes it
// on to A, whose hub knows the guest is admitted, and the readings flow.
func TestGuestVitalsThroughAnotherNode(t *testing.T) {
	f, a, b := newCluster(t, 0)
	viaA := *f
	viaA.srv = a.srv
	doctor := dialCall(t, a.ws(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.signIn(t, "doc@example.org")))
	await(t, doctor, signaling.TypeWelcome)
	tok, hash := auth.NewToken()
	l, err := f.st.CreateGuestLink(t.Context(), store.GuestLink{AppointmentID: f.visit.ID, TokenHash: hash, Role: store.GuestPhysician,
		Name: "Dr Bo", IssuedBy: f.doc.ID, CreatedAt: time.Now(), ExpiresAt: f.visit.End.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	cookie := http.Header{"Cookie": {guestCookie + "=" + tok + "; " + guestBrowserCookie + "=guest-browser"}}
	guest := dialCall(t, b.ws("/guest/ws"), cookie)
	await(t, guest, signaling.TypeWelcome)
	doctor.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: guestPeerID(l)})
	await(t, guest, signaling.TypeAdmitted)

	ws, resp, err := websocket.DefaultDialer.Dial(b.ws("/guest/ws/vitals"), cookie)
	if err != nil {
		st := 0
		if resp != nil {
			st = resp.StatusCode
		}
		t.Fatalf("admitted guest physician's vitals socket through node B: %v (%d)", err, st)
	}
	defer ws.Close()
	viewer := &viewerClient{Conn: ws}
	dev := dialDevice(t, &viaA, f.devToken)
	sendFrame(t, dev, envelope(1, "8867-4", 72, "/min", ""))
	if r := nextReading(t, viewer); r.Code != "8867-4" || r.Value != 72 {
		t.Fatalf("guest physician got %+v, want the heart rate 72", r)
	}
	if got := b.metric(t, `bedside_node_proxied_requests_total{kind="guest-vitals"}`); got != 1 {
		t.Errorf("guest vitals sockets passed on: %d, want 1", got)
	}
}

// TestForwardSignature: a forwarding header holds only for the request it
// was signed for, fresh, under the cluster's key.
func TestForwardSignature(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := &server{Deps: Deps{Now: func() time.Time { return now }}, forwardKey: forwardKey(nodeSecret)}
	header := func(signer *server, at time.Time, client, method, host, target string) string {
		ts := strconv.FormatInt(at.Unix(), 10)
		return strings.Join([]string{"v1", ts, client, "node-a", signer.forwardMAC(ts, client, "node-a", method, host, target)}, ";")
	}
	req := httptest.NewRequest("GET", "http://clinic.example/ws/call/7?resume=x", nil)
	good := header(s, now, "198.51.100.7", "GET", "clinic.example", "/ws/call/7?resume=x")
	other := &server{forwardKey: forwardKey([]byte("another cluster's key, thirty-two bytes"))}
	for _, tc := range []struct {
		name, v string
		ok      bool
	}{
		{"signed", good, true},
		{"clock within 30 s", header(s, now.Add(-25*time.Second), "198.51.100.7", "GET", "clinic.example", "/ws/call/7?resume=x"), true},
		{"stale", header(s, now.Add(-31*time.Second), "198.51.100.7", "GET", "clinic.example", "/ws/call/7?resume=x"), false},
		{"another target", header(s, now, "198.51.100.7", "GET", "clinic.example", "/ws/call/8?resume=x"), false},
		{"another host", header(s, now, "198.51.100.7", "GET", "evil.example", "/ws/call/7?resume=x"), false},
		{"another method", header(s, now, "198.51.100.7", "POST", "clinic.example", "/ws/call/7?resume=x"), false},
		{"another key", header(other, now, "198.51.100.7", "GET", "clinic.example", "/ws/call/7?resume=x"), false},
		{"address changed", strings.Replace(good, "198.51.100.7", "198.51.100.8", 1), false},
		{"not an address", header(s, now, "somewhere", "GET", "clinic.example", "/ws/call/7?resume=x"), false},
		{"garbage", "v1;;;;", false},
	} {
		client, _, ok := s.verifyForward(tc.v, req)
		if ok != tc.ok || (ok && client != "198.51.100.7") {
			t.Errorf("%s: client %q ok %v, want ok %v", tc.name, client, ok, tc.ok)
		}
	}
	// Without a server key nothing is believed.
	keyless := &server{Deps: Deps{Now: func() time.Time { return now }}, forwardKey: forwardKey(nil)}
	if _, _, ok := keyless.verifyForward(header(keyless, now, "198.51.100.7", "GET", "clinic.example", "/ws/call/7?resume=x"), req); ok {
		t.Error("a node without a server key believed a forwarding header")
	}
}

// TestPinNeedsAParticipant: only a request whose credential may use the
// visit takes its pin. A made-up cookie or token, or someone else's visit,
// is refused here as on one node, and leaves no pin behind: a flood of
// them cannot fill Redis or pull visits to the node it lands on.
func TestPinNeedsAParticipant(t *testing.T) {
	f, a, b := newCluster(t, time.Minute) // no renewal round (20 s) during the test
	id := f.visit.ID
	pinned := func() bool {
		t.Helper()
		_, ok, err := b.rooms.Owner(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	call := fmt.Sprintf("/ws/call/%d", id)
	for _, tc := range []struct {
		name   string
		header http.Header
		want   int
	}{
		{"a made-up session cookie", http.Header{"Cookie": {sessionCookie + "=made-up"}}, http.StatusUnauthorized},
		{"a bearer token on the call socket", http.Header{"Authorization": {"Bearer made-up"}}, http.StatusUnauthorized},
		{"another physician", f.cookieHeader(f.signIn(t, "doc2@example.org")), http.StatusForbidden},
		{"another patient's session", f.cookieHeader(f.signIn(t, "other@example.org")), http.StatusForbidden},
	} {
		_, resp, err := websocket.DefaultDialer.Dial(a.ws(call), tc.header)
		if err == nil || resp == nil || resp.StatusCode != tc.want {
			t.Fatalf("%s: %v (%v), want %d", tc.name, err, resp, tc.want)
		}
		if pinned() {
			t.Fatalf("%s: the visit got a pin", tc.name)
		}
	}
	viaA := *f
	viaA.srv = a.srv
	otherToken := f.apiToken(t, f.doc2.ID)
	for _, path := range []string{fmt.Sprintf("/whip/%d", id), fmt.Sprintf("/whep/%d", id)} {
		for _, tc := range []struct {
			name, token string
			want        int
		}{
			{"a made-up token", "made-up", http.StatusUnauthorized},
			{"another physician's token", otherToken, http.StatusForbidden},
		} {
			if resp, _ := viaA.streamRequest(t, "POST", path, tc.token, sdpType, "v=0\r\n"); resp.StatusCode != tc.want {
				t.Fatalf("%s %s: %d, want %d", path, tc.name, resp.StatusCode, tc.want)
			}
			if pinned() {
				t.Fatalf("%s %s: the visit got a pin", path, tc.name)
			}
		}
	}
	// The visit's physician does take it.
	doctor := dialCall(t, a.ws(call), f.cookieHeader(f.signIn(t, "doc@example.org")))
	await(t, doctor, signaling.TypeWelcome)
	if o, ok, _ := b.rooms.Owner(t.Context(), id); !ok || o.Node != "node-a" {
		t.Fatalf("pin after the physician joined on A: %+v %v", o, ok)
	}
}

// TestPinNamingNoNodeNotFollowed: a pin whose value no node wrote (here a
// URL with a path and query to splice the request into) is not followed:
// the request, cookies and all, goes nowhere but this node.
func TestPinNamingNoNodeNotFollowed(t *testing.T) {
	f := newFixture(t)
	prefix := fmt.Sprintf("test:room:%d:", time.Now().UnixNano())
	a := startNode(t, f, "node-a", prefix, 0)
	var hits atomic.Int32
	spy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer spy.Close()
	opts, _ := goredis.ParseURL(redisURLForTest())
	rdb := goredis.NewClient(opts)
	defer rdb.Close()
	if err := rdb.Set(t.Context(), prefix+strconv.FormatInt(f.visit.ID, 10), "node-x "+spy.URL+"/steal?to=", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	doctor := dialCall(t, a.ws(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.signIn(t, "doc@example.org")))
	if w := await(t, doctor, signaling.TypeWelcome); w.State != signaling.StateAdmitted {
		t.Fatalf("physician welcome: %+v", w)
	}
	if hits.Load() != 0 || len(a.hub.InCall(f.visit.ID)) != 1 {
		t.Fatalf("requests to the URL in the bad pin: %d; node A holds the call: %v", hits.Load(), len(a.hub.InCall(f.visit.ID)) == 1)
	}
}

func redisURLForTest() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// pinTo points the visit's pin (under prefix) at url, as a node at url
// holding it would.
func pinTo(t *testing.T, prefix string, visit int64, url string) {
	t.Helper()
	opts, _ := goredis.ParseURL(redisURLForTest())
	rdb := goredis.NewClient(opts)
	defer rdb.Close()
	if err := rdb.Set(t.Context(), prefix+strconv.FormatInt(visit, 10), "node-x "+url, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestForwardTimeouts: an owner that takes the connection but never
// answers gets the client a 503 with Retry-After once the response header
// timeout passes, not a request hanging for good; and a passed-on socket
// on which the owner falls silent (no keepalive ping, as when it is cut
// off without a reset) is closed once the idle timeout passes.
func TestForwardTimeouts(t *testing.T) {
	oldHeader, oldIdle := forwardHeaderTimeout, forwardIdle
	forwardHeaderTimeout, forwardIdle = 300*time.Millisecond, 400*time.Millisecond
	defer func() { forwardHeaderTimeout, forwardIdle = oldHeader, oldIdle }()
	f := newFixture(t)
	prefix := fmt.Sprintf("test:room:%d:", time.Now().UnixNano())
	a := startNode(t, f, "node-a", prefix, 0)
	doc := f.cookieHeader(f.signIn(t, "doc@example.org"))
	path := fmt.Sprintf("/ws/call/%d", f.visit.ID)

	hung := make(chan struct{})
	mute := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("silent") == "" {
			select { // takes the request, never answers
			case <-hung:
			case <-r.Context().Done():
			}
			return
		}
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		select { // upgraded, then silent
		case <-hung:
		case <-r.Context().Done():
		}
	}))
	defer mute.Close()
	defer close(hung)
	pinTo(t, prefix, f.visit.ID, mute.URL)

	d := &websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	start := time.Now()
	_, resp, err := d.Dial(a.ws(path), doc)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("socket to an owner that never answers: %v (%v), want 503 with Retry-After", err, resp)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the 503 took %v", took)
	}

	ws, _, err := d.Dial(a.ws(path+"?silent=1"), doc)
	if err != nil {
		t.Fatalf("socket to an owner that upgrades: %v", err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = ws.ReadMessage()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("node A kept a passed-on socket open with its owner silent for 5 s")
	}
}

// TestWaitingShownOnEveryNode: the patient waits in the call held by node
// A; the physician's list of today's visits, rendered by node B, marks
// them waiting (within a renewal round), and stops once they are admitted.
func TestWaitingShownOnEveryNode(t *testing.T) {
	f, a, b := newCluster(t, 900*time.Millisecond) // renewal rounds every 300 ms
	docCookie := f.cookieHeader(f.signIn(t, "doc@example.org"))
	today := func(n *node) bool {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", n.srv.URL+"/today", nil)
		req.Header = docCookie.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("today on %s: %d", n.name, resp.StatusCode)
		}
		return strings.Contains(string(body), `badge waiting`)
	}
	until := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if today(a) || today(b) {
		t.Fatal("a patient is marked waiting before anyone joined")
	}
	path := fmt.Sprintf("/ws/call/%d", f.visit.ID)
	patient := dialCall(t, a.ws(path), f.cookieHeader(f.joinClient(t, f.visit)))
	if w := await(t, patient, signaling.TypeWelcome); w.State != signaling.StateWaiting {
		t.Fatalf("patient welcome state %q, want waiting", w.State)
	}
	if !today(a) {
		t.Fatal("node A, holding the call, does not mark the patient waiting")
	}
	until("node B never marked the patient waiting in node A's call", func() bool { return today(b) })

	doctor := dialCall(t, b.ws(path), docCookie) // passed on to A
	await(t, doctor, signaling.TypeWelcome)
	doctor.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: fmt.Sprintf("u%d", f.pat.ID)})
	await(t, patient, signaling.TypeAdmitted)
	until("node B still marks the admitted patient waiting", func() bool { return !today(b) })
}

// TestClientAddressBehindProxiesAcrossNodes: with a trusted load balancer
// (127.0.0.1) in front, the client address it names in X-Forwarded-For is
// the one the node holding the call audits, though another node passed
// the socket on; a client's own X-Forwarded-For, or Forwarded, from an
// untrusted address (127.0.0.2) is ignored on both nodes.
func TestClientAddressBehindProxiesAcrossNodes(t *testing.T) {
	f := newFixture(t)
	prefix := fmt.Sprintf("test:room:%d:", time.Now().UnixNano())
	lbOnly := func(d *Deps) { d.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} }
	a := startNodeWith(t, f, "node-a", prefix, 0, lbOnly)
	b := startNodeWith(t, f, "node-b", prefix, 0, lbOnly)
	path := fmt.Sprintf("/ws/call/%d", f.visit.ID)
	doc := f.cookieHeader(f.signIn(t, "doc@example.org"))
	doctor := dialCall(t, a.ws(path), doc)
	await(t, doctor, signaling.TypeWelcome)

	audited := func() []string {
		events, _, err := f.st.AuditEvents(t.Context(), store.AuditQuery{ActorID: f.doc.ID, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var addrs []string
		for _, e := range events {
			if e.Resource == fmt.Sprintf("Appointment/%d", f.visit.ID) {
				addrs = append(addrs, e.Address)
			}
		}
		return addrs
	}
	from2 := &websocket.Dialer{NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}
	for _, tc := range []struct {
		name   string
		dialer *websocket.Dialer
		extra  http.Header
		want   string
	}{
		{"through the load balancer", websocket.DefaultDialer, http.Header{"X-Forwarded-For": {"198.51.100.7"}}, "198.51.100.7"},
		{"a client's own X-Forwarded-For", from2, http.Header{"X-Forwarded-For": {"203.0.113.5"}}, "127.0.0.2"},
		{"a client's own Forwarded", from2, http.Header{"Forwarded": {"for=203.0.113.6"}}, "127.0.0.2"},
	} {
		h := doc.Clone()
		for k, v := range tc.extra {
			h[k] = v
		}
		before := len(audited())
		ws, _, err := tc.dialer.Dial(b.ws(path), h) // B passes it on to A
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var w signaling.Message
		if err := ws.ReadJSON(&w); err != nil || w.Type != signaling.TypeWelcome {
			t.Fatalf("%s: %+v, %v", tc.name, w, err)
		}
		ws.Close()
		if got := audited()[before:]; len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s: audited %q, want %q once", tc.name, got, tc.want)
		}
	}
	if got := b.metric(t, `bedside_node_proxied_requests_total{kind="call"}`); got != 3 {
		t.Errorf("node B passed on %d sockets, want 3", got)
	}
}

// TestDeadOwnerTakenOverEarly: the node holding a call dies (its port
// refuses connections, its pin is no longer renewed). Once it has missed
// a renewal round, a join through another node takes the visit over at
// once rather than waiting for the pin to expire; before that, it is
// told to retry.
func TestDeadOwnerTakenOverEarly(t *testing.T) {
	const ttl = 9 * time.Second // renewals every 3 s; a takeover from 4.5 s without one
	f, a, b := newCluster(t, ttl)
	path := fmt.Sprintf("/ws/call/%d", f.visit.ID)
	doc := f.cookieHeader(f.signIn(t, "doc@example.org"))
	doctor := dialCall(t, a.ws(path), doc)
	await(t, doctor, signaling.TypeWelcome)

	a.stop()
	died := time.Now()
	a.srv.Listener.Close()
	a.srv.CloseClientConnections()
	doctor.Close()

	_, resp, err := websocket.DefaultDialer.Dial(b.ws(path), doc)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("joining through B just after A died: %v (%v), want 503 (A renewed within a round)", err, resp)
	}
	var again *websocket.Conn
	for again == nil {
		ws, resp, err := websocket.DefaultDialer.Dial(b.ws(path), doc)
		switch {
		case err == nil:
			again = ws
		case resp == nil || resp.StatusCode != http.StatusServiceUnavailable:
			t.Fatalf("joining through B: %v", err)
		case time.Since(died) > ttl:
			t.Fatal("B never took over the dead node's visit")
		default:
			time.Sleep(100 * time.Millisecond) // the client's retry
		}
	}
	defer again.Close()
	var w signaling.Message
	if err := again.ReadJSON(&w); err != nil || w.Type != signaling.TypeWelcome || w.State != signaling.StateAdmitted {
		t.Fatalf("rejoin on B: %+v, %v", w, err)
	}
	if got := b.metric(t, "bedside_room_pins_taken_over_total"); got != 1 {
		t.Fatalf("takeovers counted: %d, want 1 (the pin was taken over, not left to expire)", got)
	}
	if o, ok, _ := b.rooms.Owner(t.Context(), f.visit.ID); !ok || o.Node != "node-b" {
		t.Fatalf("pin after the takeover: %+v %v, want node-b", o, ok)
	}
	if len(b.hub.InCall(f.visit.ID)) != 1 {
		t.Fatal("node B does not hold the physician's call")
	}
}

// TestRestartedNodeTakesBackItsVisit: a node that crashed and came back
// at the same URL (a new id) finds its earlier run's pin on a visit: once
// that pin has missed a renewal it takes the visit back at once instead
// of answering 503 until the pin expires; before that it answers 503.
func TestRestartedNodeTakesBackItsVisit(t *testing.T) {
	const ttl = 4 * time.Second
	f := newFixture(t)
	prefix := fmt.Sprintf("test:room:%d:", time.Now().UnixNano())
	a := startNode(t, f, "node-a2", prefix, ttl)
	opts, _ := goredis.ParseURL(redisURLForTest())
	rdb := goredis.NewClient(opts)
	defer rdb.Close()
	key := prefix + strconv.FormatInt(f.visit.ID, 10)
	earlier := "node-a1 " + a.srv.URL
	path := fmt.Sprintf("/ws/call/%d", f.visit.ID)
	doc := f.cookieHeader(f.signIn(t, "doc@example.org"))

	// Renewed just now by the earlier run, as far as anyone can tell.
	if err := rdb.Set(t.Context(), key, earlier, ttl).Err(); err != nil {
		t.Fatal(err)
	}
	_, resp, err := websocket.DefaultDialer.Dial(a.ws(path), doc)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("join while the earlier run's pin is fresh: %v (%v), want 503", err, resp)
	}
	// Missed a renewal: under half its TTL left.
	if err := rdb.Set(t.Context(), key, earlier, ttl/2-100*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	doctor := dialCall(t, a.ws(path), doc)
	if w := await(t, doctor, signaling.TypeWelcome); w.State != signaling.StateAdmitted {
		t.Fatalf("physician welcome: %+v", w)
	}
	if o, ok, _ := a.rooms.Owner(t.Context(), f.visit.ID); !ok || o.Node != "node-a2" {
		t.Fatalf("pin after the join: %+v %v, want node-a2", o, ok)
	}
	if got := a.metric(t, "bedside_room_pins_taken_over_total"); got != 1 {
		t.Errorf("takeovers counted: %d, want 1", got)
	}
}
