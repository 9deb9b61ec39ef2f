package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/bedside-health/bedside/vitals/live"
)

// node is one Bedside node's live hub sharing streams through Redis.
type node struct {
	hub  *live.Hub
	feed *RedisFeed
}

func newNode(t *testing.T, url, prefix string) *node {
	t.Helper()
	return newNodeWith(t, url, prefix, live.Config{FeedRetry: 100 * time.Millisecond})
}

func newNodeWith(t *testing.T, url, prefix string, cfg live.Config) *node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	hub := live.NewHub(cfg)
	feed, err := NewRedisFeed(ctx, url, hub, FeedConfig{Prefix: prefix, HistoryMessages: 50}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis is required in CI: %v", err)
		}
		t.Skipf("no redis: %v", err)
	}
	hub.SetFeed(feed)
	runCtx, stop := context.WithCancel(context.Background())
	go hub.Run(runCtx)
	t.Cleanup(func() { stop(); feed.Close() })
	return &node{hub: hub, feed: feed}
}

type vmsg struct {
	Type    string `json:"type"`
	Patient int64  `json:"patient"`
	Offset  int64  `json:"offset"`
	Epoch   string `json:"epoch"`
	From    int64  `json:"from"`
	To      int64  `json:"to"`
	N       int    `json:"n"`
}

// watcher reads a viewer's queue as its transport would.
type watcher struct {
	t *testing.T
	v *live.Viewer
}

// next returns the next message within 10 s.
func (w *watcher) next() vmsg {
	w.t.Helper()
	for {
		if got := w.v.Take(nil, 1); len(got) == 1 {
			var m vmsg
			if err := json.Unmarshal(got[0], &m); err != nil {
				w.t.Fatalf("message %s: %v", got[0], err)
			}
			return m
		}
		select {
		case <-w.v.Ready():
		case <-w.v.FellBehind():
			w.t.Fatal("viewer fell behind")
		case <-time.After(10 * time.Second):
			w.t.Fatal("no message within 10 s")
		}
	}
}

// until reads messages until one satisfies ok, returning all read.
func (w *watcher) until(ok func(vmsg) bool) []vmsg {
	w.t.Helper()
	var out []vmsg
	for {
		m := w.next()
		out = append(out, m)
		if ok(m) {
			return out
		}
	}
}

func watch(t *testing.T, n *node, patient int64, from live.Position) *watcher {
	t.Helper()
	v := n.hub.NewViewer()
	if err := n.hub.Subscribe(context.Background(), v, patient, from, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.hub.Leave(v) })
	return &watcher{t: t, v: v}
}

func body(n int) []byte { return fmt.Appendf(nil, `{"type":"reading","n":%d}`, n) }

func offsetsOf(ms []vmsg) []int64 {
	var out []int64
	for _, m := range ms {
		if m.Type == "reading" {
			out = append(out, m.Offset)
		}
	}
	return out
}

func testPrefix() string { return fmt.Sprintf("test:vitals:%d:", time.Now().UnixNano()) }

// TestRedisStreamsAcrossNodes: a device on node A, viewers on node B; both
// nodes see the same offsets, and a viewer that leaves node B resumes on
// node A from the same shared history, exactly.
func TestRedisStreamsAcrossNodes(t *testing.T) {
	url, prefix := redisURL(t), testPrefix()
	a, b := newNode(t, url, prefix), newNode(t, url, prefix)
	const patient = 42
	onB := watch(t, b, patient, live.Position{})
	hello := onB.next()
	if hello.Type != "stream" || hello.Offset != 0 {
		t.Fatalf("a new stream: %+v", hello)
	}
	onA := watch(t, a, patient, live.Position{})
	onA.next()
	for i := 1; i <= 10; i++ {
		if err := a.hub.Publish(context.Background(), patient, body(i)); err != nil {
			t.Fatal(err)
		}
	}
	gotB := onB.until(func(m vmsg) bool { return m.Offset == 10 })
	gotA := onA.until(func(m vmsg) bool { return m.Offset == 10 })
	if fmt.Sprint(offsetsOf(gotB)) != "[1 2 3 4 5 6 7 8 9 10]" || fmt.Sprint(offsetsOf(gotA)) != fmt.Sprint(offsetsOf(gotB)) {
		t.Fatalf("node B saw %v, node A %v; want 1..10 on both", offsetsOf(gotB), offsetsOf(gotA))
	}
	epochA, _ := a.hub.Position(patient)
	epochB, _ := b.hub.Position(patient)
	if epochA == "" || epochA != epochB {
		t.Fatalf("epochs %q and %q differ", epochA, epochB)
	}
	// B's viewer drops after offset 4; meanwhile five more arrive; it comes
	// back on node A.
	for i := 11; i <= 15; i++ {
		if err := a.hub.Publish(context.Background(), patient, body(i)); err != nil {
			t.Fatal(err)
		}
	}
	back := watch(t, a, patient, live.Position{Resume: true, Epoch: epochB, Offset: 4})
	got := back.until(func(m vmsg) bool { return m.Type == "stream" })
	if fmt.Sprint(offsetsOf(got)) != "[5 6 7 8 9 10 11 12 13 14 15]" || got[len(got)-1].Offset != 15 {
		t.Fatalf("resumed on the other node: %v then %+v; want exactly 5..15", offsetsOf(got), got[len(got)-1])
	}
	// A viewer that starts on node B after the fact gets the same history,
	// once node B has it: its own viewer has seen 15. (A node that lags is
	// caught up first: TestResumeOnALaggingNodeSendsNothingTwice.)
	onB.until(func(m vmsg) bool { return m.Offset == 15 })
	late := watch(t, b, patient, live.Position{Resume: true, Epoch: epochA, Offset: 12})
	if got := late.until(func(m vmsg) bool { return m.Offset == 15 }); fmt.Sprint(offsetsOf(got)) != "[13 14 15]" {
		t.Fatalf("a late viewer on node B resumed with %v, want 13 14 15", offsetsOf(got))
	}
}

// privateRedis runs a redis-server of the test's own on a free port, so
// it can be stopped and started without disturbing anyone else's.
type privateRedis struct {
	t    *testing.T
	port int
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T, port int) *privateRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server is required in CI: %v", err)
		}
		t.Skipf("no redis-server: %v", err)
	}
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &privateRedis{t: t, port: port, cmd: cmd}
	t.Cleanup(r.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", r.addr())
		if err == nil {
			c.Close()
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %d did not start: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a starting process's port
	}
}

// steer connects to a test's private Redis to steer it: do runs a command,
// failing the test on an error.
func steer(t *testing.T, rs *privateRedis) (*goredis.Client, func(args ...any)) {
	t.Helper()
	admin := goredis.NewClient(&goredis.Options{Addr: rs.addr()})
	t.Cleanup(func() { admin.Close() })
	return admin, func(args ...any) {
		t.Helper()
		if err := admin.Do(context.Background(), args...).Err(); err != nil {
			t.Fatalf("redis %v: %v", args, err)
		}
	}
}

func (r *privateRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }
func (r *privateRedis) url() string  { return "redis://" + r.addr() + "/0" }

func (r *privateRedis) stop() {
	if r.cmd.Process != nil && r.cmd.ProcessState == nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
	}
}

// TestRedisRestartGivesGapMarker: Redis dies and comes back empty. The
// device's node keeps its own viewers going on a local epoch without
// hanging; once Redis is back, the other node's viewer gets a gap marker
// for what it could not see, then the new epoch, without a hole.
func TestRedisRestartGivesGapMarker(t *testing.T) {
	rs := startPrivateRedis(t, 0)
	prefix := testPrefix()
	a, b := newNode(t, rs.url(), prefix), newNode(t, rs.url(), prefix)
	const patient = 7
	onA, onB := watch(t, a, patient, live.Position{}), watch(t, b, patient, live.Position{})
	onA.next()
	onB.next()
	publish := func(i int) {
		t.Helper()
		waitPublished(t, publishing(a, patient, i), 5*time.Second)
	}
	for i := 1; i <= 3; i++ {
		publish(i)
	}
	onB.until(func(m vmsg) bool { return m.Offset == 3 })
	onA.until(func(m vmsg) bool { return m.Offset == 3 })
	old, _ := b.hub.Position(patient)

	rs.stop()
	for i := 4; i <= 6; i++ {
		publish(i)
	}
	// Node A's viewer carries on, told the shared epoch may have gaps.
	gotA := onA.until(func(m vmsg) bool { return m.Type == "reading" && m.N == 6 })
	if gotA[0].Type != "gap" || gotA[0].Epoch != old || gotA[0].From != 4 || gotA[0].To != 0 {
		t.Fatalf("node A's viewer on losing redis: %+v", gotA)
	}

	rs = startPrivateRedis(t, rs.port)
	// Node A renews the shared stream once it reaches Redis; it publishes
	// until node B, subscribed again, gets a reading of the new epoch.
	var gotB []vmsg
	seen := func() (gap, restart bool) {
		renewed := false
		for _, m := range gotB {
			gap = gap || m.Type == "gap" && m.Epoch == old && m.From == 4 && m.To == 0
			renewed = renewed || m.Type == "stream" && m.Epoch != old
			restart = restart || renewed && m.Type == "reading"
		}
		return gap, restart
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := 7; ; i++ {
		publish(i)
		select {
		case <-onB.v.Ready():
		case <-time.After(200 * time.Millisecond):
		}
		for _, raw := range onB.v.Take(nil, 0) {
			var m vmsg
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			gotB = append(gotB, m)
		}
		if _, restart := seen(); restart {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node B never heard from node A after redis came back: %+v", gotB)
		}
	}
	if gap, _ := seen(); !gap {
		t.Fatalf("node B's viewer got %+v: want a gap marker for everything after 3 of %q", gotB, old)
	}
	// From the new epoch on, node B's viewer misses nothing: what it missed
	// before resubscribing is repaired from the shared history.
	var epoch string
	var last int64 = -1
	check := func(m vmsg) {
		switch {
		case m.Type == "stream":
			epoch, last = m.Epoch, m.Offset
		case m.Type == "reading" && epoch != "" && epoch != old:
			if m.Offset != last+1 {
				t.Fatalf("offset %d after %d in the new epoch", m.Offset, last)
			}
			last = m.Offset
		}
	}
	for _, m := range gotB {
		check(m)
	}
	publish(1000)
	for _, m := range onB.until(func(m vmsg) bool { return m.Type == "reading" && m.N == 1000 }) {
		check(m)
	}
	if now, _ := a.hub.Position(patient); now != epoch {
		t.Fatalf("nodes on different epochs: A %q, B %q", now, epoch)
	}
}

// TestPublishingDuringARenewalReachesEveryNode: node A's feed fails, so
// it publishes alone, and later renews the shared stream. A message
// published while that renewal is on its way (the other nodes may hear of
// the new epoch before node A does) goes to the shared stream, not to node
// A alone, where node B would never hear of it.
func TestPublishingDuringARenewalReachesEveryNode(t *testing.T) {
	rs := startPrivateRedis(t, 0)
	prefix := testPrefix()
	const retry = 100 * time.Millisecond
	clock := newTestClock()
	a := newNodeWith(t, rs.url(), prefix, live.Config{FeedRetry: retry, FeedTimeout: 20 * time.Second, Now: clock.now})
	b := newNode(t, rs.url(), prefix)
	const patient = 9
	onA, onB := watch(t, a, patient, live.Position{}), watch(t, b, patient, live.Position{})
	onA.next()
	onB.next()
	ctx := context.Background()
	admin, do := steer(t, rs)
	published := func(i int) chan error { return publishing(a, patient, i) }
	wait := func(done chan error) {
		t.Helper()
		waitPublished(t, done, 10*time.Second)
	}
	isReading := func(n int) func(vmsg) bool {
		return func(m vmsg) bool { return m.Type == "reading" && m.N == n }
	}
	wait(published(1))
	onB.until(isReading(1))
	onA.until(isReading(1))
	old, _ := b.hub.Position(patient)

	// Redis refuses writes: node A publishes 2 alone, and its renewals fail.
	do("CONFIG", "SET", "min-replicas-to-write", "1")
	t.Cleanup(func() { admin.Do(ctx, "CONFIG", "SET", "min-replicas-to-write", "0") })
	wait(published(2))
	onA.until(isReading(2))
	// Writes are held, then allowed: the next renewal waits in Redis.
	do("CLIENT", "PAUSE", 30000, "WRITE")
	t.Cleanup(func() { admin.Do(ctx, "CLIENT", "UNPAUSE") })
	do("CONFIG", "SET", "min-replicas-to-write", "0")
	held := func() int {
		info, err := admin.Info(ctx, "clients").Result()
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(info, "blocked_clients:")
		n, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(rest, "\n", 2)[0]))
		return n
	}
	// The retry interval after the failure is over: node A renews.
	clock.advance(2 * retry)
	deadline := time.Now().Add(10 * time.Second)
	for held() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("node A's renewal never reached redis")
		}
		time.Sleep(10 * time.Millisecond) // polling redis for the held renewal
	}
	three := published(3)
	// Message 3 must wait for the renewal on its way: neither go out on
	// its own (it went to node A alone at once) nor start a renewal of its
	// own (a second new epoch). Watched for 300 ms, well under the feed
	// client's read timeout (1 s).
	for until := time.Now().Add(300 * time.Millisecond); time.Now().Before(until); {
		select {
		case err := <-three:
			t.Fatalf("message 3 was published (err %v) while the renewal was held", err)
		default:
		}
		if n := held(); n > 1 {
			t.Fatalf("message 3 started a renewal of its own: %d writes held in redis", n)
		}
		time.Sleep(10 * time.Millisecond) // polling redis and the publisher
	}
	do("CLIENT", "UNPAUSE")
	wait(three)
	wait(published(4))

	got := onB.until(isReading(4))
	var epoch string
	var epochs int
	var readings []int
	for _, m := range got {
		switch {
		case m.Type == "stream" && m.Epoch != old:
			epoch = m.Epoch
			epochs++
		case m.Type == "reading" && m.Epoch == "" && epoch != "":
			readings = append(readings, m.N)
		}
	}
	if epochs != 1 || fmt.Sprint(readings) != "[3 4]" {
		t.Fatalf("node B's viewer got %+v: want one new epoch, holding 3 and 4", got)
	}
	if now, _ := a.hub.Position(patient); now != epoch {
		t.Fatalf("node A is on %q, node B on %q", now, epoch)
	}
}

// TestPublishingWhileRedisHangsWaitsAtMostTheFeedTimeout: Redis stops
// answering (it hangs rather than refuses) while many patients have
// diverged; each device's publishing waits on it at most about one
// FeedTimeout, and node A's own viewers keep getting its readings.
func TestPublishingWhileRedisHangsWaitsAtMostTheFeedTimeout(t *testing.T) {
	rs := startPrivateRedis(t, 0)
	const timeout, patients = 200 * time.Millisecond, 20
	a := newNodeWith(t, rs.url(), testPrefix(), live.Config{FeedRetry: 500 * time.Millisecond, FeedTimeout: timeout})
	ctx := context.Background()
	admin, do := steer(t, rs)
	var onA []*watcher
	for p := int64(1); p <= patients; p++ {
		onA = append(onA, watch(t, a, p, live.Position{}))
		onA[p-1].next()
	}
	// Writes refused: every patient diverges. Then writes hang.
	do("CONFIG", "SET", "min-replicas-to-write", "1")
	t.Cleanup(func() { admin.Do(ctx, "CONFIG", "SET", "min-replicas-to-write", "0") })
	for p := int64(1); p <= patients; p++ {
		if err := a.hub.Publish(ctx, p, body(0)); err != nil {
			t.Fatal(err)
		}
	}
	do("CLIENT", "PAUSE", 60000, "WRITE")
	t.Cleanup(func() { admin.Do(ctx, "CLIENT", "UNPAUSE") })
	do("CONFIG", "SET", "min-replicas-to-write", "0")

	const sends = 15
	slowest := make([]time.Duration, patients)
	var wg sync.WaitGroup
	for p := int64(1); p <= patients; p++ {
		wg.Add(1)
		go func() { // one device per patient, 10 messages a second
			defer wg.Done()
			for i := 1; i <= sends; i++ {
				t0 := time.Now()
				if err := a.hub.Publish(ctx, p, body(i)); err != nil {
					t.Error(err)
					return
				}
				slowest[p-1] = max(slowest[p-1], time.Since(t0))
				time.Sleep(100 * time.Millisecond) // the device's pace
			}
		}()
	}
	wg.Wait()
	for p, d := range slowest {
		// Taking turns on one lock, the slowest waited patients × timeout.
		if d > 5*timeout {
			t.Errorf("patient %d: a message waited %v to be published (FeedTimeout %v)", p+1, d, timeout)
		}
		onA[p].until(func(m vmsg) bool { return m.Type == "reading" && m.N == sends })
	}
}

// TestLateEntriesOfALeftEpochAreDropped: entries of an epoch node A has
// left (its own echo through pub/sub after it went alone, another node's
// message, a direct delivery that lost the race with a renewal) never
// take it back there, where its viewers would get that epoch again.
func TestLateEntriesOfALeftEpochAreDropped(t *testing.T) {
	rs := startPrivateRedis(t, 0)
	prefix := testPrefix()
	clock := newTestClock()
	a := newNodeWith(t, rs.url(), prefix, live.Config{FeedRetry: time.Second, Now: clock.now})
	_, do := steer(t, rs)
	ctx := context.Background()
	const patient = 13
	onA := watch(t, a, patient, live.Position{})
	onA.next()
	publish := func(n int) {
		t.Helper()
		if err := a.hub.Publish(ctx, patient, body(n)); err != nil {
			t.Fatal(err)
		}
	}
	late := func(epoch string, off int64, n int) {
		msg := fmt.Appendf(nil, `{"patient":%d,"offset":%d,"type":"reading","n":%d}`, patient, off, n)
		a.hub.Deliver(patient, epoch, live.Entry{Offset: off, At: clock.now().UnixMilli(), Msg: msg})
	}
	var got []vmsg
	upTo := func(n int) {
		got = append(got, onA.until(func(m vmsg) bool { return m.Type == "reading" && m.N == n })...)
	}

	publish(1)
	upTo(1)
	e1, _ := a.hub.Position(patient)
	// Writes refused: 2 goes to node A alone, on an epoch of its own.
	do("CONFIG", "SET", "min-replicas-to-write", "1")
	t.Cleanup(func() { do("CONFIG", "SET", "min-replicas-to-write", "0") })
	publish(2)
	upTo(2)
	alone, _ := a.hub.Position(patient)
	late(e1, 1, 1)  // node A's own 1, back through pub/sub
	late(e1, 2, 99) // another node's message on the shared epoch
	publish(3)      // the feed is still taken for down
	upTo(3)
	if now, _ := a.hub.Position(patient); now != alone {
		t.Fatalf("node A went from its own epoch %q to %q", alone, now)
	}
	// Redis is back: 4 renews the shared stream.
	do("CONFIG", "SET", "min-replicas-to-write", "0")
	clock.advance(2 * time.Second)
	publish(4)
	upTo(4)
	e2, _ := a.hub.Position(patient)
	late(e1, 3, 98) // a delivery of the first epoch that lost the race
	publish(5)
	upTo(5)
	if now, _ := a.hub.Position(patient); now != e2 || e2 == e1 || e2 == alone {
		t.Fatalf("node A on %q after %q, %q, %q", now, e1, alone, e2)
	}
	seen := map[int]int{}
	gone := false // from the first epoch
	for _, m := range got {
		if m.Type == "reading" {
			seen[m.N]++
		}
		if m.Type == "stream" && m.Epoch == e1 && gone {
			t.Fatalf("node A's viewer was moved back to %q: %+v", e1, got)
		}
		gone = gone || m.Type == "stream" && m.Epoch != e1 && m.Epoch != ""
	}
	if fmt.Sprint(seen) != "map[1:1 2:1 3:1 4:1 5:1]" {
		t.Fatalf("node A's viewer got readings %v: %+v", seen, got)
	}
}

// TestAPublisherThatGaveUpDoesNotTakeTheFeedDown: a message published
// with a context that has ended (a client that hung up on a batch) still
// goes to the shared stream, and the next patient's messages too: the
// feed is not taken for down for the whole node.
func TestAPublisherThatGaveUpDoesNotTakeTheFeedDown(t *testing.T) {
	rs := startPrivateRedis(t, 0)
	prefix := testPrefix()
	a := newNodeWith(t, rs.url(), prefix, live.Config{FeedRetry: time.Minute})
	admin, _ := steer(t, rs)
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for _, p := range []int64{21, 22} {
		on := watch(t, a, p, live.Position{})
		on.next()
		ctx := context.Background()
		if p == 21 {
			ctx = ended
		}
		if err := a.hub.Publish(ctx, p, body(1)); err != nil {
			t.Fatal(err)
		}
		on.until(func(m vmsg) bool { return m.Type == "reading" && m.N == 1 })
		shared, err := admin.HGet(context.Background(), prefix+strconv.FormatInt(p, 10), "epoch").Result()
		if err != nil {
			t.Fatalf("patient %d has no shared stream: %v", p, err)
		}
		if here, _ := a.hub.Position(p); here != shared {
			t.Fatalf("patient %d: node A on %q, the shared stream on %q", p, here, shared)
		}
	}
}

// TestALateEntryOfAnOlderEpochDoesNotStopTheStream: node A's mirror, on
// the shared epoch another node renewed, gets a late entry of the epoch
// before (an append Redis ran before the renewal, delivered last). It may
// go there, but the next entries of the live epoch bring it back: it must
// never drop them for good.
func TestALateEntryOfAnOlderEpochDoesNotStopTheStream(t *testing.T) {
	rs := startPrivateRedis(t, 0)
	prefix := testPrefix()
	a, b := newNode(t, rs.url(), prefix), newNode(t, rs.url(), prefix)
	ctx := context.Background()
	const patient = 71
	onB := watch(t, b, patient, live.Position{})
	onB.next()
	if err := b.hub.Publish(ctx, patient, body(1)); err != nil {
		t.Fatal(err)
	}
	onB.until(func(m vmsg) bool { return m.N == 1 })
	e0, _ := b.hub.Position(patient)
	// Another node's renewal, with 3 as the new epoch's first message.
	e1, _, err := b.feed.Append(ctx, patient, body(3), false, true)
	if err != nil {
		t.Fatal(err)
	}
	onA := watch(t, a, patient, live.Position{})
	onA.until(func(m vmsg) bool { return m.Type == "stream" })
	if now, _ := a.hub.Position(patient); now != e1 {
		t.Fatalf("node A loaded %q, want %q", now, e1)
	}
	a.hub.Deliver(patient, e0, live.Entry{Offset: 2, At: time.Now().UnixMilli(),
		Msg: fmt.Appendf(nil, `{"patient":%d,"offset":2,"type":"reading","n":2}`, patient)})
	for n := 4; n <= 5; n++ {
		if err := b.hub.Publish(ctx, patient, body(n)); err != nil {
			t.Fatal(err)
		}
	}
	onA.until(func(m vmsg) bool { return m.Type == "reading" && m.N == 5 })
	if now, _ := a.hub.Position(patient); now != e1 {
		t.Fatalf("node A on %q, the shared stream on %q", now, e1)
	}
}

// TestAFailoverBackToAnEpochLeftIsFollowed: node A went alone from epoch
// E1 and renewed the shared stream to E2; then Redis fails over to a
// replica that never heard of the renewal (here its keys are restored as
// they were on E1), so E1 is the shared epoch again. Node A, which dropped
// late entries of E1, must follow it once Redis answers its own appends
// with it.
func TestAFailoverBackToAnEpochLeftIsFollowed(t *testing.T) {
	rs := startPrivateRedis(t, 0)
	prefix := testPrefix()
	clock := newTestClock()
	a := newNodeWith(t, rs.url(), prefix, live.Config{FeedRetry: time.Second, Now: clock.now})
	b := newNode(t, rs.url(), prefix)
	admin, do := steer(t, rs)
	ctx := context.Background()
	const patient = 91
	onA, onB := watch(t, a, patient, live.Position{}), watch(t, b, patient, live.Position{})
	onA.next()
	onB.next()
	publish := func(n *node, i int) {
		t.Helper()
		if err := n.hub.Publish(ctx, patient, body(i)); err != nil {
			t.Fatal(err)
		}
	}
	reading := func(i int) func(vmsg) bool { return func(m vmsg) bool { return m.Type == "reading" && m.N == i } }
	publish(a, 1)
	onA.until(reading(1))
	onB.until(reading(1))
	e1, _ := a.hub.Position(patient)
	meta, log := prefix+strconv.Itoa(patient), prefix+strconv.Itoa(patient)+":log"
	dumps := map[string]string{}
	for _, k := range []string{meta, log} {
		d, err := admin.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		dumps[k] = d
	}
	// Node A goes alone, then renews.
	do("CONFIG", "SET", "min-replicas-to-write", "1")
	t.Cleanup(func() { do("CONFIG", "SET", "min-replicas-to-write", "0") })
	publish(a, 2)
	onA.until(reading(2))
	do("CONFIG", "SET", "min-replicas-to-write", "0")
	clock.advance(2 * time.Second)
	publish(a, 3)
	onA.until(reading(3))
	onB.until(reading(3))
	if e2, _ := a.hub.Position(patient); e2 == e1 {
		t.Fatal("node A did not renew the shared stream")
	}
	// The failover: the shared stream is back on E1.
	for k, d := range dumps {
		if err := admin.RestoreReplace(ctx, k, 0, d).Err(); err != nil {
			t.Fatal(err)
		}
	}
	publish(a, 4)
	publish(b, 5)
	onB.until(reading(5))
	onA.until(reading(5))
	if here, _ := a.hub.Position(patient); here != e1 {
		t.Fatalf("node A on %q, the shared stream on %q", here, e1)
	}
}

// testClock is a hub's clock that moves only when the test moves it.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Now()} }

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// publishing publishes body(i) to the patient's stream on node n, in a
// goroutine of its own; the result comes on the channel.
func publishing(n *node, patient int64, i int) chan error {
	done := make(chan error, 1)
	go func() { done <- n.hub.Publish(context.Background(), patient, body(i)) }()
	return done
}

// waitPublished waits for a publishing's result, failing the test if it
// takes longer than bound.
func waitPublished(t *testing.T, done chan error, bound time.Duration) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(bound):
		t.Fatalf("publishing hung for %v", bound)
	}
}

// lagGate passes a feed's entries on to a hub, or holds them while shut, so a
// test can make a node's mirror lag the shared stream.
type lagGate struct {
	hub  *live.Hub
	mu   sync.Mutex
	shut bool
	held []func()
}

func (g *lagGate) Deliver(patient int64, epoch string, e live.Entry) {
	g.mu.Lock()
	if g.shut {
		g.held = append(g.held, func() { g.hub.Deliver(patient, epoch, e) })
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	g.hub.Deliver(patient, epoch, e)
}

func (g *lagGate) close() { g.mu.Lock(); g.shut = true; g.mu.Unlock() }

// open delivers what was held, in order, and lets the rest through.
func (g *lagGate) open() {
	g.mu.Lock()
	held := g.held
	g.held, g.shut = nil, false
	g.mu.Unlock()
	for _, f := range held {
		f()
	}
}

func (g *lagGate) heldCount() int { g.mu.Lock(); defer g.mu.Unlock(); return len(g.held) }

// TestResumeOnALaggingNodeSendsNothingTwice: a viewer that got offsets up
// to 10 on node A resumes on node B, whose mirror has only reached 5. It
// must get nothing it already has, then 11 on; node B's own viewer still
// gets 6 to 10 once each, when the delayed entries arrive after the
// catch-up.
func TestResumeOnALaggingNodeSendsNothingTwice(t *testing.T) {
	url, prefix := redisURL(t), testPrefix()
	a := newNode(t, url, prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	hubB := live.NewHub(live.Config{FeedRetry: 100 * time.Millisecond})
	g := &lagGate{hub: hubB}
	feedB, err := NewRedisFeed(ctx, url, g, FeedConfig{Prefix: prefix, HistoryMessages: 50}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	hubB.SetFeed(feedB)
	runCtx, stop := context.WithCancel(context.Background())
	go hubB.Run(runCtx)
	t.Cleanup(func() { stop(); feedB.Close() })
	b := &node{hub: hubB, feed: feedB}

	const patient = 43
	onB := watch(t, b, patient, live.Position{})
	onB.next()
	onA := watch(t, a, patient, live.Position{})
	onA.next()
	publish := func(from, to int) {
		for i := from; i <= to; i++ {
			if err := a.hub.Publish(context.Background(), patient, body(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(1, 5)
	onB.until(func(m vmsg) bool { return m.Offset == 5 })
	g.close()
	publish(6, 10)
	onA.until(func(m vmsg) bool { return m.Offset == 10 })
	// Node B has not had 6 to 10 yet: wait until its feed has received
	// them all (and held them), so the lag is certain.
	deadline := time.Now().Add(10 * time.Second)
	for g.heldCount() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("node B's feed received %d of the 5 entries", g.heldCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
	epoch, last := b.hub.Position(patient)
	if last != 5 {
		t.Fatalf("node B's mirror is at %d, want 5 (lagging)", last)
	}
	back := watch(t, b, patient, live.Position{Resume: true, Epoch: epoch, Offset: 10})
	hello := back.next()
	if hello.Type != "stream" || hello.Offset != 10 || hello.Epoch != epoch {
		t.Fatalf("the resumed viewer's first message is %+v, want the stream message at offset 10 of %q", hello, epoch)
	}
	g.open()
	publish(11, 12)
	if got := back.until(func(m vmsg) bool { return m.Offset == 12 }); fmt.Sprint(offsetsOf(got)) != "[11 12]" {
		t.Fatalf("the resumed viewer then got %v, want exactly 11 12", offsetsOf(got))
	}
	if got := onB.until(func(m vmsg) bool { return m.Offset == 12 }); fmt.Sprint(offsetsOf(got)) != "[6 7 8 9 10 11 12]" {
		t.Fatalf("node B's own viewer got %v, want exactly 6..12", offsetsOf(got))
	}
}
