package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/cluster"
	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/store/sqlite"
	"github.com/bedside-health/bedside/web"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, c := range []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99.9, 7 * time.Millisecond},
		{"median of four is the second", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p99.9 of 100 is the largest", ms(hundred...), 99.9, 100 * time.Millisecond},
		{"p50 of 100", ms(hundred...), 50, 50 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := percentile(c.in, c.p); got != c.want {
				t.Errorf("percentile(%v) = %v, want %v", c.p, got, c.want)
			}
		})
	}
	l := summarise(ms(5, 1, 3, 2, 4))
	if l.n != 5 || l.p50 != 3*time.Millisecond || l.mx != 5*time.Millisecond {
		t.Errorf("summarise sorts: %+v", l)
	}
}

func TestTallyCountsHolesAndDuplicates(t *testing.T) {
	var ty tally
	now := time.Now()
	ty.take(3, true, now, now) // before placement: not counted
	ty.place(10)
	for _, off := range []int64{9, 10, 11, 11, 13, 14, 14, 14, 17} {
		ty.take(off, off != 17, now.Add(-time.Millisecond), now)
	}
	if ty.before != 2 {
		t.Errorf("before = %d, want 2 (offsets 3 and 9)", ty.before)
	}
	if got := ty.holes(); got != 3 {
		t.Errorf("holes = %d, want 3 (12, 15, 16)", got)
	}
	if ty.dups != 3 {
		t.Errorf("dups = %d, want 3", ty.dups)
	}
	// 17 is not a measurement (a device event): an offset, no latency.
	if got := ty.delivered.Load(); got != 4 || len(ty.lat) != 4 {
		t.Errorf("delivered %d with %d latencies, want 4 (10, 11, 13, 14)", got, len(ty.lat))
	}
	ty.place(1)
	if ty.epochs != 1 || ty.holes() != 0 {
		t.Errorf("a new placement starts afresh: epochs %d, holes %d", ty.epochs, ty.holes())
	}
}

// TestMeasureCountsEveryMessage runs the loadtest's own phases, briefly and
// with three patients, against an in-process relay and a real server, and
// checks that every message sent is accounted for exactly once.
func TestMeasureCountsEveryMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := sqlite.Open(ctx, t.TempDir()+"/bedside.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := provision(ctx, st, 3, 3, "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sfu, err := media.New(media.Config{AllowLoopback: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer sfu.Close()
	srv := httptest.NewServer(web.NewServer(web.Deps{Log: log, Store: st, Bus: cluster.NewLocal(),
		Calls: signaling.NewHub(sfu, log), Secret: []byte("a test key of thirty-two bytes, or more")}))
	defer srv.Close()
	rel := httptest.NewServer(newRelay())
	defer rel.Close()

	cfg := vitalsConfig{serverURL: srv.URL, creds: c, patients: 3, duration: time.Second, watch: []int{1, 3},
		relayURL: "ws" + strings.TrimPrefix(rel.URL, "http")}
	res, err := measure(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("%d phases, want relay and two server phases", len(res))
	}
	for _, r := range res {
		// 15 messages a second per patient, for one second.
		if r.sent != 45 || r.delivered != r.sent || r.lost != 0 || r.dups != 0 || r.holes != 0 || r.lat.n != int(r.sent) {
			t.Errorf("%s: sent %d, delivered %d, lost %d, dups %d, holes %d, %d latencies; want 45 each exactly once",
				r.name, r.sent, r.delivered, r.lost, r.dups, r.holes, r.lat.n)
		}
		if r.deviceErrs != 0 || r.firstErr != "" {
			t.Errorf("%s: %d device errors, first: %s", r.name, r.deviceErrs, r.firstErr)
		}
		if r.frames == 0 {
			t.Errorf("%s: no frames counted", r.name)
		}
		if r.lat.p50 <= 0 {
			t.Errorf("%s: median latency %v, want above 0 (from the scheduled send time)", r.name, r.lat.p50)
		}
	}
}
