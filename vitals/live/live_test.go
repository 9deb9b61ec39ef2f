package live

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// msg is any message a viewer receives, decoded.
type msg struct {
	Type        string `json:"type"`
	Patient     int64  `json:"patient"`
	Offset      int64  `json:"offset"`
	Appointment int64  `json:"appointment"`
	Epoch       string `json:"epoch"`
	From        int64  `json:"from"`
	To          int64  `json:"to"`
	N           int    `json:"n"`
}

func decode(t testing.TB, b []byte) msg {
	t.Helper()
	var m msg
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("message %s is not JSON: %v", b, err)
	}
	return m
}

// drain takes everything queued for v, decoded.
func drain(t testing.TB, v *Viewer) []msg {
	t.Helper()
	var out []msg
	for _, b := range v.Take(nil, 0) {
		out = append(out, decode(t, b))
	}
	return out
}

func reading(n int) []byte { return fmt.Appendf(nil, `{"type":"reading","code":"8867-4","n":%d}`, n) }
func wave(n int) []byte    { return fmt.Appendf(nil, `{"type":"waveform","code":"131330","n":%d}`, n) }

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestHub(cfg Config) (*Hub, *clock) {
	c := &clock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	cfg.Now = c.now
	return NewHub(cfg), c
}

func publish(t testing.TB, h *Hub, patient int64, bodies ...[]byte) {
	t.Helper()
	for _, b := range bodies {
		if err := h.Publish(context.Background(), patient, b); err != nil {
			t.Fatal(err)
		}
	}
}

func subscribe(t testing.TB, h *Hub, v *Viewer, patient int64, from Position) {
	t.Helper()
	if err := h.Subscribe(context.Background(), v, patient, from, 0); err != nil {
		t.Fatal(err)
	}
}

// offsets lists the offsets of the stream messages in ms, checking each
// carries the patient.
func offsets(t testing.TB, ms []msg, patient int64) []int64 {
	t.Helper()
	var out []int64
	for _, m := range ms {
		if m.Type == "reading" || m.Type == "waveform" {
			if m.Patient != patient {
				t.Fatalf("message of patient %d in patient %d's stream", m.Patient, patient)
			}
			out = append(out, m.Offset)
		}
	}
	return out
}

func span(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOffsetsAreEncodedOnceForEveryViewer(t *testing.T) {
	h, _ := newTestHub(Config{})
	a, b := h.NewViewer(), h.NewViewer()
	subscribe(t, h, a, 7, Position{})
	subscribe(t, h, b, 7, Position{})
	drain(t, a)
	drain(t, b)
	publish(t, h, 7, reading(1), reading(2), reading(3))
	qa, qb := a.Take(nil, 0), b.Take(nil, 0)
	if len(qa) != 3 || len(qb) != 3 {
		t.Fatalf("viewers got %d and %d messages, want 3 each", len(qa), len(qb))
	}
	for i := range qa {
		if &qa[i][0] != &qb[i][0] {
			t.Fatalf("message %d was encoded per viewer, not once per stream", i)
		}
		m := decode(t, qa[i])
		if m.Patient != 7 || m.Offset != int64(i+1) || m.N != i+1 || m.Type != "reading" {
			t.Fatalf("message %d decoded as %+v: want patient 7, offset %d and the body", i, m, i+1)
		}
	}
	if got := string(qa[0]); got != `{"patient":7,"offset":1,"type":"reading","code":"8867-4","n":1}` {
		t.Fatalf("encoding %s", got)
	}
}

func TestFreshViewerGetsRecentHistoryThenLive(t *testing.T) {
	h, clk := newTestHub(Config{FreshWaveform: 2 * time.Second})
	// 10 s of one reading and ten waveform chunks a second: offsets 1..110.
	for s := 0; s < 10; s++ {
		publish(t, h, 1, reading(s))
		for c := 0; c < 10; c++ {
			publish(t, h, 1, wave(c))
		}
		clk.t = clk.t.Add(time.Second)
	}
	v := h.NewViewer()
	subscribe(t, h, v, 1, Position{})
	got := drain(t, v)
	var readings, waves int
	for _, m := range got[:len(got)-1] {
		switch m.Type {
		case "reading":
			readings++
		case "waveform":
			waves++
		default:
			t.Fatalf("replay holds %+v", m)
		}
	}
	// The clock stands 1 s after the last second: its chunks and the
	// second before it are within 2 s.
	if readings != 10 || waves != 20 {
		t.Fatalf("fresh replay: %d readings and %d waveform chunks, want all 10 and the last 2 s (20)", readings, waves)
	}
	epoch, last := h.Position(1)
	if s := got[len(got)-1]; s.Type != "stream" || s.Epoch != epoch || s.Offset != 110 || last != 110 {
		t.Fatalf("after the replay: %+v, want stream at offset 110 of %q", s, epoch)
	}
	publish(t, h, 1, reading(99))
	if live := drain(t, v); len(live) != 1 || live[0].Offset != 111 {
		t.Fatalf("live after replay: %+v, want offset 111", live)
	}
}

func TestResumeGetsExactlyWhatWasMissed(t *testing.T) {
	h, _ := newTestHub(Config{})
	v := h.NewViewer()
	subscribe(t, h, v, 1, Position{})
	publish(t, h, 1, reading(1), reading(2), reading(3))
	first := drain(t, v)
	epoch := first[0].Epoch
	h.Leave(v) // the connection dropped after offset 3
	publish(t, h, 1, reading(4), reading(5))

	w := h.NewViewer()
	subscribe(t, h, w, 1, Position{Resume: true, Epoch: epoch, Offset: 3})
	publish(t, h, 1, reading(6))
	got := drain(t, w)
	if o := offsets(t, got, 1); !equal(o, []int64{4, 5, 6}) {
		t.Fatalf("resumed viewer got offsets %v, want 4 5 6", o)
	}
	if got[2].Type != "stream" || got[2].Offset != 5 || got[2].Epoch != epoch {
		t.Fatalf("stream message %+v, want offset 5 after the missed ones", got[2])
	}
	for _, m := range got {
		if m.Type == "gap" {
			t.Fatalf("a gap marker when nothing was lost: %+v", m)
		}
	}
}

func TestResumeBeyondHistoryReportsTheExactGap(t *testing.T) {
	h, _ := newTestHub(Config{HistoryMessages: 10})
	for i := range 25 {
		publish(t, h, 1, reading(i))
	}
	epoch, _ := h.Position(1)
	v := h.NewViewer()
	subscribe(t, h, v, 1, Position{Resume: true, Epoch: epoch, Offset: 4})
	got := drain(t, v)
	if got[0].Type != "gap" || got[0].Epoch != epoch || got[0].From != 5 || got[0].To != 15 {
		t.Fatalf("first message %+v, want a gap of 5..15 in %q", got[0], epoch)
	}
	if o := offsets(t, got, 1); !equal(o, span(16, 25)) {
		t.Fatalf("after the gap: %v, want 16..25", o)
	}
}

func TestHistoryBoundedInBytes(t *testing.T) {
	h, _ := newTestHub(Config{HistoryBytes: 1000})
	for i := range 100 {
		publish(t, h, 1, reading(i))
	}
	s, _ := h.lookup(1, false)
	if s.hist.bytes > 1000 || s.hist.n == 0 || s.hist.at(s.hist.n-1).offset != 100 {
		t.Fatalf("history holds %d bytes in %d messages ending at %d; want at most 1000 ending at 100", s.hist.bytes, s.hist.n, s.hist.at(s.hist.n-1).offset)
	}
}

func TestResumeFromAnotherEpoch(t *testing.T) {
	h, _ := newTestHub(Config{})
	publish(t, h, 1, reading(1), reading(2))
	v := h.NewViewer()
	subscribe(t, h, v, 1, Position{Resume: true, Epoch: "an-old-epoch", Offset: 40})
	got := drain(t, v)
	if got[0].Type != "gap" || got[0].Epoch != "an-old-epoch" || got[0].From != 41 || got[0].To != 0 {
		t.Fatalf("first message %+v, want a gap of everything after 40 in the old epoch", got[0])
	}
	if o := offsets(t, got, 1); !equal(o, []int64{1, 2}) {
		t.Fatalf("then %v, want the whole new epoch 1 2", o)
	}
}

func TestSlowViewerIsDroppedOthersCarryOn(t *testing.T) {
	h, _ := newTestHub(Config{HistoryMessages: 4, QueueMessages: 8})
	slow, fast := h.NewViewer(), h.NewViewer()
	subscribe(t, h, slow, 1, Position{})
	subscribe(t, h, fast, 1, Position{})
	drain(t, fast)
	var got []int64
	for i := range 20 {
		publish(t, h, 1, reading(i))
		got = append(got, offsets(t, drain(t, fast), 1)...)
	}
	select {
	case <-slow.FellBehind():
	default:
		t.Fatal("a viewer that took nothing was not marked as fallen behind")
	}
	if !slow.Behind() || fast.Behind() {
		t.Fatalf("Behind: slow %v, fast %v; want true, false", slow.Behind(), fast.Behind())
	}
	if !equal(got, span(1, 20)) {
		t.Fatalf("the fast viewer got %v, want 1..20", got)
	}
	if n := slow.Queued(); n != 0 {
		t.Fatalf("the dropped viewer still holds %d messages", n)
	}
	s, _ := h.lookup(1, false)
	if len(s.viewers) != 1 {
		t.Fatalf("the stream still has %d viewers, want only the fast one", len(s.viewers))
	}
}

func TestOneViewerSeveralPatients(t *testing.T) {
	h, _ := newTestHub(Config{})
	v := h.NewViewer()
	for p := int64(1); p <= 3; p++ {
		if err := h.Subscribe(context.Background(), v, p, Position{}, 100+p); err != nil {
			t.Fatal(err)
		}
	}
	hello := drain(t, v)
	if len(hello) != 3 || hello[1].Type != "stream" || hello[1].Appointment != 102 || hello[1].Patient != 2 {
		t.Fatalf("subscribing gave %+v, want one stream message per visit naming it", hello)
	}
	publish(t, h, 2, reading(1))
	publish(t, h, 1, reading(1))
	publish(t, h, 3, reading(1))
	h.Unsubscribe(v, 3)
	publish(t, h, 3, reading(2))
	got := drain(t, v)
	if len(got) != 3 || got[0].Patient != 2 || got[1].Patient != 1 || got[2].Patient != 3 {
		t.Fatalf("batched messages %+v, want patients 2, 1, 3 in publish order and nothing after unsubscribing", got)
	}
}

func TestTakeBatchesWhatIsQueued(t *testing.T) {
	h, _ := newTestHub(Config{})
	v := h.NewViewer()
	subscribe(t, h, v, 1, Position{})
	drain(t, v)
	publish(t, h, 1, reading(1), reading(2), reading(3))
	select {
	case <-v.Ready():
	default:
		t.Fatal("Ready did not fire with messages queued")
	}
	if got := v.Take(nil, 2); len(got) != 2 {
		t.Fatalf("Take(2) gave %d", len(got))
	}
	select {
	case <-v.Ready():
	default:
		t.Fatal("Ready did not fire again with a message left")
	}
	if got := v.Take(nil, 0); len(got) != 1 || decode(t, got[0]).Offset != 3 {
		t.Fatalf("rest: %q", got)
	}
}

func TestIdleStreamExpiresWithItsEpoch(t *testing.T) {
	h, clk := newTestHub(Config{IdleExpiry: time.Minute})
	publish(t, h, 1, reading(1))
	old, _ := h.Position(1)
	clk.t = clk.t.Add(2 * time.Minute)
	publish(t, h, 1, reading(2))
	epoch, last := h.Position(1)
	if epoch == old || last != 1 {
		t.Fatalf("after expiry: epoch %q (was %q), last %d; want a new epoch from 1", epoch, old, last)
	}
}

func TestEncode(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`{"type":"reading"}`, `{"patient":3,"offset":9,"type":"reading"}`},
		{` { "type" : "x" } `, `{"patient":3,"offset":9,"type" : "x" }`},
		{`{}`, `{"patient":3,"offset":9}`},
	} {
		got := string(Encode(3, 9, []byte(c.body)))
		if got != c.want {
			t.Errorf("Encode(%s) = %s, want %s", c.body, got, c.want)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(got), &v); err != nil {
			t.Errorf("Encode(%s) is not JSON: %v", c.body, err)
		}
	}
}

// TestSourcePublishesToItsPatient: a Source's messages take the
// patient's next offsets, shared with Hub.Publish, and reach its viewers
// in order; one for another patient goes to that patient's stream.
func TestSourcePublishesToItsPatient(t *testing.T) {
	h, _ := newTestHub(Config{})
	v := h.NewViewer()
	subscribe(t, h, v, 1, Position{})
	src := h.Source(1)
	for i := range 3 {
		if err := src.Publish(context.Background(), 1, reading(i)); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, h, 1, reading(3))
	if err := src.Publish(context.Background(), 1, reading(4)); err != nil {
		t.Fatal(err)
	}
	// Another patient's message goes to that patient's stream.
	if err := src.Publish(context.Background(), 2, reading(5)); err != nil {
		t.Fatal(err)
	}
	if _, last := h.Position(2); last != 1 {
		t.Fatalf("patient 2's stream is at offset %d, want 1", last)
	}
	got := v.Take(nil, 0)
	if len(got) != 6 { // the stream message, then five readings
		t.Fatalf("viewer got %d messages, want 6: %q", len(got), got)
	}
	for i, m := range got[1:] {
		if d := decode(t, m); d.Offset != int64(i+1) || d.Patient != 1 {
			t.Fatalf("message %d: patient %d offset %d, want patient 1 offset %d", i+1, d.Patient, d.Offset, i+1)
		}
	}
}

// TestSourceFollowsAnExpiredStream: once its patient's stream expired
// (dropped by a sweep its own message makes, or another's), a Source
// publishes to the patient's new stream, with its new epoch.
func TestSourceFollowsAnExpiredStream(t *testing.T) {
	for _, sweptByOther := range []bool{false, true} {
		h, clk := newTestHub(Config{IdleExpiry: time.Minute})
		src := h.Source(1)
		if err := src.Publish(context.Background(), 1, reading(1)); err != nil {
			t.Fatal(err)
		}
		old, _ := h.Position(1)
		clk.t = clk.t.Add(2 * time.Minute)
		if sweptByOther {
			if epoch, _ := h.Position(1); epoch != "" {
				t.Fatalf("the idle stream was not dropped: epoch %q", epoch)
			}
		}
		if err := src.Publish(context.Background(), 1, reading(2)); err != nil {
			t.Fatal(err)
		}
		epoch, last := h.Position(1)
		if epoch == "" || epoch == old || last != 1 {
			t.Fatalf("swept by another %v: after expiry epoch %q (was %q), last %d; want a new epoch from 1", sweptByOther, epoch, old, last)
		}
		v := h.NewViewer()
		subscribe(t, h, v, 1, Position{})
		if got := v.Take(nil, 0); len(got) != 2 || decode(t, got[0]).Offset != 1 {
			t.Fatalf("swept by another %v: a new viewer got %q, want the reading at offset 1 and the stream message", sweptByOther, got)
		}
	}
}
