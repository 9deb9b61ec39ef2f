package signaling_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
	"github.com/bedside-health/bedside/wsconn"
)

// timeout bounds every wait in these tests.
const timeout = 15 * time.Second

// served is the outcome of one Hub.Serve call.
type served struct {
	peer string
	err  error
}

// testServer is an SFU and hub behind a test-only upgrade handler that
// takes the Peer from query parameters (the web layer authenticates
// instead).
type testServer struct {
	sfu    *media.SFU
	hub    *signaling.Hub
	srv    *httptest.Server
	served chan served
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	return newTestServerWith(t, wsconn.Options{})
}

// newTestServerWith is newTestServer with opts for every connection.
func newTestServerWith(t *testing.T, opts wsconn.Options) *testServer {
	t.Helper()
	return newTestServerOn(t, opts, media.Config{AllowLoopback: true})
}

// newTestServerOn is newTestServerWith with an SFU built from cfg.
func newTestServerOn(t *testing.T, opts wsconn.Options, cfg media.Config) *testServer {
	t.Helper()
	debug := &slog.HandlerOptions{Level: slog.LevelDebug}
	var log *slog.Logger
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, debug))
	} else {
		// A failure in CI, which runs without -v, still shows why: the
		// layers chosen, the probes and the GCC figures behind them.
		tail := &tailLog{}
		log = slog.New(slog.NewTextHandler(tail, debug))
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("the server's last %d debug lines:\n%s", tailLines, tail)
			}
		})
	}
	sfu, err := media.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sfu.Close)
	s := &testServer{sfu: sfu, hub: signaling.NewHub(sfu, log), served: make(chan served, 16)}
	up := &websocket.Upgrader{CheckOrigin: sameOrigin}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		appt, err := strconv.ParseInt(q.Get("appointment"), 10, 64)
		if err != nil {
			http.Error(w, "bad appointment", http.StatusBadRequest)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return // the upgrader has answered
		}
		conn := wsconn.New(ws, opts)
		p := signaling.Peer{ID: q.Get("id"), Name: q.Get("name"), Role: q.Get("role"), Appointment: appt, Browser: q.Get("browser")}
		if p.Browser == "" {
			p.Browser = "browser of " + p.ID // one browser per participant, unless a test says otherwise
		}
		if token := q.Get("resume"); token != "" {
			last, _ := strconv.ParseUint(q.Get("last"), 10, 64)
			err = s.hub.Resume(r.Context(), conn, p, token, last)
		} else {
			err = s.hub.Serve(r.Context(), conn, p)
		}
		s.served <- served{p.ID, err}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// sameOrigin admits clients that send no Origin (not browsers) and
// browsers on the server's own host.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

func (s *testServer) url(id, name, role string, appointment int64) string {
	q := url.Values{"id": {id}, "name": {name}, "role": {role}, "appointment": {strconv.FormatInt(appointment, 10)}}
	return "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/call?" + q.Encode()
}

// dial connects a participant; it publishes tracks once admitted.
func (s *testServer) dial(t *testing.T, id, name, role string, appointment int64, tracks ...webrtc.TrackLocal) *sigclient.Client {
	t.Helper()
	return s.dialWith(t, id, name, role, appointment, sigclient.Options{Tracks: tracks})
}

// dialWith connects a participant with opts.
func (s *testServer) dialWith(t *testing.T, id, name, role string, appointment int64, opts sigclient.Options) *sigclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := sigclient.Dial(ctx, s.url(id, name, role, appointment), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// awaitServed waits for the Serve call of peer id to return.
func (s *testServer) awaitServed(t *testing.T, id string) error {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case r := <-s.served:
			if r.peer == id {
				return r.err
			}
		case <-deadline:
			t.Fatalf("Serve for %s did not return", id)
		}
	}
}

// await returns c's next message of type typ.
func await(t *testing.T, c *sigclient.Client, typ string) signaling.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	m, err := c.Await(ctx, typ)
	if err != nil {
		t.Fatalf("%v (client error: %v)", err, c.Err())
	}
	return m
}

// awaitLobby waits for a lobby message listing exactly ids.
func awaitLobby(t *testing.T, c *sigclient.Client, ids ...string) {
	t.Helper()
	for {
		m := await(t, c, signaling.TypeLobby)
		if m.Waiting == nil {
			t.Fatal("lobby message without a waiting list")
		}
		var got []string
		for _, w := range *m.Waiting {
			got = append(got, w.Participant)
		}
		if strings.Join(got, ",") == strings.Join(ids, ",") {
			return
		}
	}
}

func peerIDs(ps []signaling.Peer) string {
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	return strings.Join(ids, ",")
}

func TestUpgradeRefusesAnotherSite(t *testing.T) {
	s := newTestServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	h := http.Header{"Origin": {"https://evil.example"}}
	_, resp, err := websocket.DefaultDialer.DialContext(ctx, s.url("u1", "Dr A", signaling.RolePhysician, 1), h)
	if err == nil {
		t.Fatal("upgrade from another site succeeded")
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("got %v, want 403", resp)
	}
}

// tailLines is how many of the server's last log lines a failing test
// prints: a call's worth (about 50 in a congestion test) several times.
const tailLines = 400

// tailLog keeps the last tailLines lines written to it. slog's text
// handler writes each record with one Write.
type tailLog struct {
	mu    sync.Mutex
	lines [tailLines]string
	n     int // lines written in all
}

func (l *tailLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.lines[l.n%tailLines] = string(p)
	l.n++
	l.mu.Unlock()
	return len(p), nil
}

func (l *tailLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for i := max(0, l.n-tailLines); i < l.n; i++ {
		b.WriteString(l.lines[i%tailLines])
	}
	return b.String()
}

func TestTailLogKeepsTheLastLines(t *testing.T) {
	var l tailLog
	for i := range tailLines + 50 {
		fmt.Fprintf(&l, "line %d\n", i)
	}
	lines := strings.Split(strings.TrimSuffix(l.String(), "\n"), "\n")
	if len(lines) != tailLines || lines[0] != "line 50" || lines[tailLines-1] != fmt.Sprintf("line %d", tailLines+49) {
		t.Fatalf("kept %d lines, from %q to %q; want the last %d", len(lines), lines[0], lines[len(lines)-1], tailLines)
	}
}
