package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
	"github.com/bedside-health/bedside/store/postgres/pgtest"
)

func TestServeNodeURL(t *testing.T) {
	cases := []struct {
		name, redis, node string
		want, wantErr     string
	}{
		{"one node needs none", "", "", "", ""},
		{"several nodes need one", "redis://127.0.0.1:6379/0", "", "", "--node-url (BEDSIDE_NODE_URL)"},
		{"trailing slash dropped", "redis://127.0.0.1:6379/0", "http://10.0.0.5:8080/", "http://10.0.0.5:8080", ""},
		{"https", "redis://127.0.0.1:6379/0", "https://node1.internal", "https://node1.internal", ""},
		{"no scheme", "redis://127.0.0.1:6379/0", "10.0.0.5:8080", "", "scheme://host:port"},
		{"a path", "redis://127.0.0.1:6379/0", "http://10.0.0.5:8080/bedside", "", "scheme://host:port"},
	}
	for _, tc := range cases {
		env := map[string]string{"REDIS_URL": tc.redis, "BEDSIDE_NODE_URL": tc.node}
		c, err := parseServe([]string{"--data", t.TempDir()}, func(k string) string { return env[k] }, io.Discard)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || c.nodeURL != tc.want {
			t.Errorf("%s: node URL %q (%v), want %q", tc.name, c.nodeURL, err, tc.want)
		}
	}
}

// TestTwoNodesOneCall runs two real servers on one PostgreSQL database
// and one Redis, as a cluster behind a load balancer: the physician joins
// on node A, the patient on node B, and they meet in one call on A.
func TestTwoNodesOneCall(t *testing.T) {
	redisURL := os.Getenv("REDIS_URL")
	if redisURL == "" {
		redisURL = "redis://127.0.0.1:6379/0"
	}
	opts, _ := goredis.ParseURL(redisURL)
	rdb := goredis.NewClient(opts)
	defer rdb.Close()
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis is required in CI: %v", err)
		}
		t.Skipf("no redis: %v", err)
	}
	db := pgtest.FreshDB(t)
	env := func(addr string) map[string]string {
		return map[string]string{"DATABASE_URL": db, "REDIS_URL": redisURL, "BEDSIDE_ADDR": addr, "BEDSIDE_NODE_URL": "http://" + addr,
			"BEDSIDE_SECRET": "a cluster key of thirty-two characters or more"}
	}
	a := startServer(t, env(freePort(t)))
	b := startServer(t, env(freePort(t)))

	link := bookFirstFree(t, a)
	// The patient opens the link on B.
	pc := client(t)
	resp, err := pc.Get(strings.Replace(link, a.URL, b.URL, 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	m := regexp.MustCompile(`^/visit/(\d+)$`).FindStringSubmatch(resp.Header.Get("Location"))
	if m == nil {
		t.Fatalf("join link on node B: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A pin left by an earlier run of this test (same database ids) goes.
	rdb.Del(t.Context(), "bedside:room:"+m[1])
	path := "/ws/call/" + m[1]
	cookies := func(c *http.Client, base string) http.Header {
		u, _ := url.Parse(base)
		h := http.Header{}
		for _, ck := range c.Jar.Cookies(u) {
			h.Add("Cookie", ck.Name+"="+ck.Value)
		}
		return h
	}
	dc := client(t)
	signIn(t, dc, a.URL, "dr.okafor@demo.bedside.test", a.demoPassword(t, "dr.okafor@demo.bedside.test"))

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ws := func(ts *testServer) string { return strings.Replace(ts.URL, "http://", "ws://", 1) + path }
	doctor, err := sigclient.Dial(ctx, ws(a), sigclient.Options{Header: cookies(dc, a.URL)})
	if err != nil {
		t.Fatal(err)
	}
	defer doctor.Close()
	if w, err := doctor.Await(ctx, signaling.TypeWelcome); err != nil || w.State != signaling.StateAdmitted {
		t.Fatalf("physician on A: %+v %v", w, err)
	}
	patient, err := sigclient.Dial(ctx, ws(b), sigclient.Options{Header: cookies(pc, b.URL)})
	if err != nil {
		t.Fatal(err)
	}
	defer patient.Close()
	w, err := patient.Await(ctx, signaling.TypeWelcome)
	if err != nil || w.State != signaling.StateWaiting {
		t.Fatalf("patient on B: %+v %v", w, err)
	}
	for {
		l, err := doctor.Await(ctx, signaling.TypeLobby)
		if err != nil {
			t.Fatalf("the physician on A never saw the patient who joined on B: %v", err)
		}
		if l.Waiting != nil && len(*l.Waiting) == 1 && (*l.Waiting)[0].Participant == w.Participant {
			break
		}
	}
	if err := doctor.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: w.Participant}); err != nil {
		t.Fatal(err)
	}
	if _, err := patient.Await(ctx, signaling.TypeAdmitted); err != nil {
		t.Fatal(err)
	}
	for ts, series := range map[*testServer]string{
		b: `bedside_node_proxied_requests_total{kind="call"} 1`,
		a: "bedside_room_pins_held 1",
	} {
		if _, body := get(t, http.DefaultClient, ts.URL+"/metrics"); !strings.Contains(body, series) {
			t.Errorf("%s/metrics lacks %s", ts.URL, series)
		}
	}
	if v, err := rdb.Get(t.Context(), "bedside:room:"+m[1]).Result(); err != nil || !strings.HasSuffix(v, " "+a.URL) {
		t.Errorf("the visit's pin: %q %v, want node A's URL %s", v, err, a.URL)
	}

	// Node A shuts down: it gives up the visit as it goes, so the physician
	// reconnecting through B is served there at once, not told to wait
	// for the pin to expire.
	a.stop()
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Exists(t.Context(), "bedside:room:"+m[1]).Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("node A kept the visit's pin after shutting down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	again, err := sigclient.Dial(ctx, ws(b), sigclient.Options{Header: cookies(dc, b.URL)})
	if err != nil {
		t.Fatalf("the physician rejoining through B after A shut down: %v", err)
	}
	defer again.Close()
	if w, err := again.Await(ctx, signaling.TypeWelcome); err != nil || w.State != signaling.StateAdmitted {
		t.Fatalf("physician rejoining on B: %+v %v", w, err)
	}
	if v := rdb.Get(t.Context(), "bedside:room:"+m[1]).Val(); !strings.HasSuffix(v, " "+b.URL) {
		t.Errorf("the visit's pin after the rejoin: %q, want node B's URL %s", v, b.URL)
	}
}
