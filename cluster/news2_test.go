package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/bedside-health/bedside/vitals"
	"github.com/bedside-health/bedside/vitals/alert"
	"github.com/bedside-health/bedside/vitals/monitor"
	"github.com/bedside-health/bedside/vitals/ward"
)

// published is a ward's live stream in a test: every message, and a
// channel that hears of each.
type published struct {
	mu   sync.Mutex
	msgs []string
	got  chan string
}

func (p *published) Publish(_ context.Context, _ int64, body []byte) error {
	p.mu.Lock()
	p.msgs = append(p.msgs, string(body))
	p.mu.Unlock()
	p.got <- string(body)
	return nil
}

func (p *published) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.msgs)
}

// await returns the first message published within 10 s for which ok
// holds.
func (p *published) await(t *testing.T, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-p.got:
			if ok(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s published", what)
		}
	}
}

// newsNode is one node's NEWS2 ward linked to the others through Redis.
type newsNode struct {
	ward    *ward.Ward
	out     *published
	gate    *gate
	applied chan struct{} // hears of each change applied from another node
	rec     *recorded
}

// recorded is a ward's alert timeline in a test.
type recorded struct {
	mu     sync.Mutex
	alerts []monitor.AlertEvent
}

func (r *recorded) Restore(context.Context, int64) ([]ward.Input, []alert.Threshold, error) {
	return nil, nil, nil
}

func (r *recorded) RecordAlerts(_ context.Context, _ int64, evs []monitor.AlertEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.alerts = append(r.alerts, evs...)
	return nil
}

// raised reports whether an alert on param was recorded as raised.
func (r *recorded) raised(param string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.alerts {
		if a.State == "raised" && a.Param == param {
			return true
		}
	}
	return false
}

// gate passes a ward's Peers calls through to Redis, unless the test
// makes Redis unreachable (down) or slow (block holds Leads until closed).
type gate struct {
	ward.Peers
	down  atomic.Bool
	block atomic.Pointer[chan struct{}]
	leads atomic.Int32 // Leads calls
}

func (g *gate) Leads(ctx context.Context, qs []ward.LeadCheck) ([]ward.Lead, error) {
	g.leads.Add(1)
	if b := g.block.Load(); b != nil {
		<-*b
	}
	if g.down.Load() {
		return nil, errors.New("redis unreachable")
	}
	return g.Peers.Leads(ctx, qs)
}

func (g *gate) Share(ctx context.Context, patientID int64, msg []byte) error {
	if g.down.Load() {
		return errors.New("redis unreachable")
	}
	return g.Peers.Share(ctx, patientID, msg)
}

func newNEWS2Node(t *testing.T, name, prefix string) *newsNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	n := &newsNode{out: &published{got: make(chan string, 1000)}, applied: make(chan struct{}, 1000), rec: &recorded{}}
	n.ward = ward.New(n.out, n.rec, ward.Config{})
	apply := func(ctx context.Context, patientID int64, msg []byte) error {
		err := n.ward.Apply(ctx, patientID, msg)
		n.applied <- struct{}{}
		return err
	}
	peers, err := NewRedisNEWS2(ctx, redisURL(t), name, prefix, apply, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis is required in CI: %v", err)
		}
		t.Skipf("no redis: %v", err)
	}
	t.Cleanup(func() { peers.Close() })
	n.gate = &gate{Peers: peers}
	n.ward.SetPeers(n.gate)
	return n
}

// run runs the node's ward (its ticker, lead checks and forwarding) until
// the test ends.
func (n *newsNode) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.ward.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// testRedis is a client for inspecting the keys the nodes share.
func testRedis(t *testing.T) *goredis.Client {
	t.Helper()
	opts, err := goredis.ParseURL(redisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// reading is a reading of code now.
func reading(code string, v float64) vitals.Reading {
	unit, _ := vitals.Unit(code)
	return vitals.Reading{Code: code, Value: v, Unit: unit, Time: time.Now().UTC()}
}

// normal is a full set of normal readings.
func normal() []vitals.Reading {
	return []vitals.Reading{reading(vitals.CodeRespRate, 18), reading(vitals.CodeSpO2, 97),
		reading(vitals.CodeSystolic, 120), reading(vitals.CodeHeartRate, 70), reading(vitals.CodeTemperature, 37)}
}

func isSystolicAlert(m string) bool {
	return strings.Contains(m, `"type":"alert"`) && strings.Contains(m, `"state":"raised"`) && strings.Contains(m, `"param":"systolic"`)
}

// TestNEWS2AcrossNodes: the patient's devices send to node A, the
// physician uses node B. B's entries, thresholds and acknowledgements
// reach A's monitor, which alone publishes; B's viewers get A's snapshot.
func TestNEWS2AcrossNodes(t *testing.T) {
	ctx := t.Context()
	prefix := fmt.Sprintf("test:news2:%d:", time.Now().UnixNano())
	a := newNEWS2Node(t, "node-a", prefix)
	b := newNEWS2Node(t, "node-b", prefix)
	const patient = 7
	now := time.Now().UTC()
	r := func(code string, v float64) vitals.Reading {
		unit, _ := vitals.Unit(code)
		return vitals.Reading{Code: code, Value: v, Unit: unit, Time: now}
	}
	a.ward.Observe(ctx, patient, []vitals.Reading{r(vitals.CodeRespRate, 18), r(vitals.CodeSpO2, 97),
		r(vitals.CodeSystolic, 120), r(vitals.CodeHeartRate, 70), r(vitals.CodeTemperature, 37)})
	a.ward.CheckLeads(ctx) // A sees readings: it takes the lead and saves its snapshot

	// B's viewer is placed in A's state, readings included.
	snap, err := b.ward.Snapshot(ctx, patient)
	if err != nil || !strings.Contains(string(snap), `"source":"measured"`) {
		t.Fatalf("snapshot on B: %s (%v), want A's with measured inputs", snap, err)
	}

	// B's entries complete A's score.
	for _, in := range []ward.Input{{Kind: ward.KindOxygen, Text: "air", At: now}, {Kind: ward.KindConsciousness, Text: "confusion", At: now}} {
		if err := b.ward.Enter(ctx, patient, in); err != nil {
			t.Fatal(err)
		}
	}
	a.out.await(t, "complete NEWS2 on A", func(m string) bool {
		return strings.Contains(m, `"type":"news2"`) && strings.Contains(m, `"complete":true`) && strings.Contains(m, `"score":3`)
	})
	raised := a.out.await(t, "consciousness alert on A", func(m string) bool {
		return strings.Contains(m, `"type":"alert"`) && strings.Contains(m, `"state":"raised"`) && strings.Contains(m, `"param":"consciousness"`)
	})
	var al struct{ ID string }
	if err := json.Unmarshal([]byte(raised), &al); err != nil {
		t.Fatal(err)
	}

	// B acknowledges A's alert; A records and publishes it.
	if _, err := b.ward.Acknowledge(ctx, patient, al.ID, "User/9"); err != nil {
		t.Fatal(err)
	}
	a.out.await(t, "acknowledgement on A", func(m string) bool {
		return strings.Contains(m, `"state":"acknowledged"`) && strings.Contains(m, al.ID) && strings.Contains(m, `"User/9"`)
	})

	// B's threshold watches A's readings.
	high := 110.0
	if _, err := b.ward.SetThresholds(ctx, patient, []alert.Threshold{{Code: vitals.CodeSystolic, High: &high}}); err != nil {
		t.Fatal(err)
	}
	// The change reaches A asynchronously: A's readings after it raise the
	// alert, so keep measuring until they do.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for raised := false; !raised; {
		select {
		case m := <-a.out.got:
			raised = strings.Contains(m, `"rule":"threshold"`) && strings.Contains(m, `"state":"raised"`)
		case <-tick.C:
			a.ward.Observe(ctx, patient, []vitals.Reading{r(vitals.CodeSystolic, 130)})
		case <-deadline:
			t.Fatal("no threshold alert published on A")
		}
	}
	if n := b.out.count(); n != 0 {
		t.Errorf("B, which sees no readings, published %d messages: %q", n, b.out.msgs)
	}

	// A's snapshot, as B's viewers get it, has the entries and the alert.
	a.ward.CheckLeads(ctx)
	snap, err = b.ward.Snapshot(ctx, patient)
	if err != nil || !strings.Contains(string(snap), `"complete":true`) || !strings.Contains(string(snap), al.ID) {
		t.Fatalf("snapshot on B after the entries: %s (%v)", snap, err)
	}
}

// TestNEWS2LeadChangeSendsHeldAlerts: B sees readings raising an alert
// while A leads, so B only holds it back; when A's lead goes (its key
// expired), B takes the lead and publishes the alert with the NEWS2.
func TestNEWS2LeadChangeSendsHeldAlerts(t *testing.T) {
	ctx := t.Context()
	prefix := fmt.Sprintf("test:news2:%d:", time.Now().UnixNano())
	a := newNEWS2Node(t, "node-a", prefix)
	b := newNEWS2Node(t, "node-b", prefix)
	const patient = 8
	a.ward.Observe(ctx, patient, normal())
	a.ward.CheckLeads(ctx)
	b.ward.Observe(ctx, patient, []vitals.Reading{reading(vitals.CodeSystolic, 85)})
	b.ward.CheckLeads(ctx)
	if n := b.out.count(); n != 0 || b.rec.raised("systolic") {
		t.Fatalf("B published %d messages or recorded %+v while A leads: %q", n, b.rec.alerts, b.out.msgs)
	}
	if err := testRedis(t).Del(ctx, prefix+"8:lead").Err(); err != nil {
		t.Fatal(err)
	}
	b.ward.CheckLeads(ctx)
	b.out.await(t, "B's held systolic alert", isSystolicAlert)
	if !b.rec.raised("systolic") {
		t.Fatalf("B published the held alert but did not record it: %+v", b.rec.alerts)
	}
}

// TestNEWS2LeadsLocallyWithoutRedis: with Redis unreachable, a node that
// sees a patient's readings leads them itself rather than stay silent.
func TestNEWS2LeadsLocallyWithoutRedis(t *testing.T) {
	ctx := t.Context()
	prefix := fmt.Sprintf("test:news2:%d:", time.Now().UnixNano())
	a := newNEWS2Node(t, "node-a", prefix)
	b := newNEWS2Node(t, "node-b", prefix)
	const patient = 9
	a.ward.Observe(ctx, patient, normal())
	a.ward.CheckLeads(ctx)
	b.ward.Observe(ctx, patient, normal())
	b.ward.CheckLeads(ctx) // A leads
	b.gate.down.Store(true)
	b.ward.Observe(ctx, patient, []vitals.Reading{reading(vitals.CodeSystolic, 85)})
	b.ward.CheckLeads(ctx)
	b.out.await(t, "systolic alert on B without Redis", isSystolicAlert)
	// Without readings, a node does not take the lead on a failed check.
	c := newNEWS2Node(t, "node-c", prefix)
	if _, err := c.ward.Snapshot(ctx, patient); err != nil {
		t.Fatal(err)
	}
	c.gate.down.Store(true)
	c.ward.CheckLeads(ctx)
	if err := c.ward.Apply(ctx, patient, []byte(`{"readings":[{"code":"8480-6","value":80,"unit":"mm[Hg]","time":"2026-01-01T00:00:00Z"}]}`)); err != nil {
		t.Fatal(err)
	}
	if n := c.out.count(); n != 0 {
		t.Fatalf("C, which sees no readings, published %d messages: %q", n, c.out.msgs)
	}
}

// TestNEWS2ForwardsReadingsToLead: a load balancer sends some of the
// patient's readings to B; A, which leads, scores them.
func TestNEWS2ForwardsReadingsToLead(t *testing.T) {
	ctx := t.Context()
	prefix := fmt.Sprintf("test:news2:%d:", time.Now().UnixNano())
	a := newNEWS2Node(t, "node-a", prefix)
	b := newNEWS2Node(t, "node-b", prefix)
	b.run(t)
	const patient = 10
	a.ward.Observe(ctx, patient, normal())
	a.ward.CheckLeads(ctx)
	b.ward.Observe(ctx, patient, normal())
	b.ward.CheckLeads(ctx) // B knows A leads
	b.ward.Observe(ctx, patient, []vitals.Reading{reading(vitals.CodeSystolic, 85)})
	a.out.await(t, "NEWS2 on A with B's systolic", func(m string) bool {
		return strings.Contains(m, `"type":"news2"`) && strings.Contains(m, `"score":3`)
	})
	a.out.await(t, "systolic alert on A from B's reading", isSystolicAlert)
	if n := b.out.count(); n != 0 {
		t.Errorf("B, which does not lead, published %d messages: %q", n, b.out.msgs)
	}
}

// TestNEWS2SnapshotOutlivesQuiet: the lead keeps its snapshot alive as
// it renews its lead, though nothing new happens to the patient.
func TestNEWS2SnapshotOutlivesQuiet(t *testing.T) {
	ctx := t.Context()
	prefix := fmt.Sprintf("test:news2:%d:", time.Now().UnixNano())
	a := newNEWS2Node(t, "node-a", prefix)
	const patient = 11
	a.ward.Observe(ctx, patient, normal())
	a.ward.CheckLeads(ctx)
	rc := testRedis(t)
	key := prefix + "11:snapshot"
	if err := rc.PExpire(ctx, key, time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	a.ward.CheckLeads(ctx) // renews the lead; no new event
	ttl, err := rc.PTTL(ctx, key).Result()
	if err != nil || ttl < 10*time.Second {
		t.Fatalf("snapshot expires in %v (%v) after the lead renewed, want as long as the lead", ttl, err)
	}
}

// TestNEWS2EntryWithoutLeadOnce: no node leads the patient (no readings
// anywhere); B's entry is published and recorded by B alone, which takes
// the lead, not also by A, which holds the patient too.
func TestNEWS2EntryWithoutLeadOnce(t *testing.T) {
	ctx := t.Context()
	prefix := fmt.Sprintf("test:news2:%d:", time.Now().UnixNano())
	a := newNEWS2Node(t, "node-a", prefix)
	b := newNEWS2Node(t, "node-b", prefix)
	const patient = 12
	if _, err := a.ward.Snapshot(ctx, patient); err != nil { // A holds the patient
		t.Fatal(err)
	}
	a.ward.CheckLeads(ctx)
	if err := b.ward.Enter(ctx, patient, ward.Input{Kind: ward.KindConsciousness, Text: "confusion", At: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	b.out.await(t, "consciousness alert on B", func(m string) bool {
		return strings.Contains(m, `"state":"raised"`) && strings.Contains(m, `"param":"consciousness"`)
	})
	select {
	case <-a.applied:
	case <-time.After(10 * time.Second):
		t.Fatal("A never got B's entry")
	}
	if n := a.out.count(); n != 0 || len(a.rec.alerts) != 0 {
		t.Fatalf("A published %q or recorded %+v of B's entry too", a.out.msgs, a.rec.alerts)
	}
	if !b.rec.raised("consciousness") {
		t.Fatalf("B, which took the lead, did not record the alert: %+v", b.rec.alerts)
	}
}

// TestNEWS2RedisOffThePatientLock: a slow Redis holds up the lead checks,
// which run apart; readings are still taken at once, and one round asks
// about every patient in one call.
func TestNEWS2RedisOffThePatientLock(t *testing.T) {
	ctx := t.Context()
	prefix := fmt.Sprintf("test:news2:%d:", time.Now().UnixNano())
	a := newNEWS2Node(t, "node-a", prefix)
	for p := int64(20); p < 23; p++ {
		a.ward.Observe(ctx, p, normal())
	}
	before := a.gate.leads.Load()
	a.ward.CheckLeads(ctx)
	if n := a.gate.leads.Load() - before; n != 1 {
		t.Fatalf("one lead round made %d calls for 3 patients, want 1", n)
	}
	release := make(chan struct{})
	a.gate.block.Store(&release)
	checked := make(chan struct{})
	go func() { a.ward.CheckLeads(ctx); close(checked) }()
	observed := make(chan struct{})
	go func() {
		a.ward.Observe(ctx, 20, []vitals.Reading{reading(vitals.CodeSystolic, 121)})
		a.ward.Observe(ctx, 30, normal()) // a patient new to the ward
		a.ward.Tick(ctx)
		close(observed)
	}()
	select {
	case <-observed:
	case <-time.After(10 * time.Second):
		t.Error("readings and the tick waited on Redis")
	}
	close(release)
	<-checked
}
