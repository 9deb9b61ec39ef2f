package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/vitals"
	"github.com/bedside-health/bedside/vitals/alert"
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
	ward *ward.Ward
	out  *published
}

func newNEWS2Node(t *testing.T, name, prefix string) *newsNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	n := &newsNode{out: &published{got: make(chan string, 1000)}}
	n.ward = ward.New(n.out, nil, ward.Config{})
	peers, err := NewRedisNEWS2(ctx, redisURL(t), name, prefix, n.ward.Apply, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis is required in CI: %v", err)
		}
		t.Skipf("no redis: %v", err)
	}
	t.Cleanup(func() { peers.Close() })
	n.ward.SetPeers(peers)
	return n
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
	a.ward.Tick(ctx) // A sees readings: it takes the lead and saves its snapshot

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
	a.ward.Tick(ctx)
	snap, err = b.ward.Snapshot(ctx, patient)
	if err != nil || !strings.Contains(string(snap), `"complete":true`) || !strings.Contains(string(snap), al.ID) {
		t.Fatalf("snapshot on B after the entries: %s (%v)", snap, err)
	}
}
