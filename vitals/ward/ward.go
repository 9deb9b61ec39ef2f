package ward

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bedside-health/bedside/vitals"
	"github.com/bedside-health/bedside/vitals/monitor"
)

// Publisher appends a message body to a patient's live stream (live.Hub).
type Publisher interface {
	Publish(ctx context.Context, patientID int64, body []byte) error
}

// Config tunes a Ward. Zero values take the defaults.
type Config struct {
	// Monitor configures each patient's Monitor.
	Monitor monitor.Config
	// Tick is how often Run lets time pass (default 1 s).
	Tick time.Duration
	// Idle drops a patient's Monitor from memory once nothing happened to
	// it for this long and it has no active alert (default 2 h); it is
	// restored from the Records when needed again.
	Idle time.Duration
	// Now is the clock (time.Now by default).
	Now func() time.Time
	// Log receives failures to publish or record; discarded if nil.
	Log *slog.Logger
}

// Ward holds this node's patients' Monitors.
type Ward struct {
	cfg     Config
	pub     Publisher
	records Records
	peers   Peers          // nil on a single node
	wake    chan struct{}  // a patient's lead wants checking now
	outbox  chan forwarded // readings for the lead

	mu       sync.Mutex
	patients map[int64]*patient
}

// patient is one patient's Monitor; its lock orders the patient's events.
type patient struct {
	mu      sync.Mutex
	m       *monitor.Monitor
	loaded  bool // restored from the Records
	gone    bool // forgotten by the ward: look it up again
	touched time.Time
	// With Peers: who leads the patient's NEWS2 (leadUnknown...), when
	// this node last saw a reading, whether events went out since the
	// lead last saved its snapshot, and the active alerts raised while
	// this node did not lead, which it never sent.
	lead     int
	observed time.Time
	dirty    bool
	held     map[string]bool
}

// New returns a Ward publishing to pub and keeping its records in rec
// (nil keeps nothing across restarts).
func New(pub Publisher, rec Records, cfg Config) *Ward {
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.Idle <= 0 {
		cfg.Idle = 2 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if rec == nil {
		rec = noRecords{}
	}
	return &Ward{cfg: cfg, pub: pub, records: rec, patients: make(map[int64]*patient),
		wake: make(chan struct{}, 1), outbox: make(chan forwarded, 1024)}
}

// Config returns the ward's settings with defaults filled in.
func (w *Ward) Config() Config { return w.cfg }

// lock returns the patient's entry, locked and restored from the records.
// Release it with p.mu.Unlock.
func (w *Ward) lock(ctx context.Context, id int64) (*patient, error) {
	var p *patient
	for {
		w.mu.Lock()
		p = w.patients[id]
		if p == nil {
			p = &patient{m: monitor.New(w.cfg.Monitor)}
			w.patients[id] = p
		}
		w.mu.Unlock()
		p.mu.Lock()
		if !p.gone {
			break
		}
		p.mu.Unlock()
	}
	p.touched = w.cfg.Now()
	if !p.loaded {
		if err := w.restore(ctx, id, p.m); err != nil {
			p.mu.Unlock()
			return nil, err
		}
		p.loaded = true
	}
	return p, nil
}

// Observe feeds a patient's accepted readings to their Monitor and
// publishes what changed. It implements vitals.Observer. When another
// node leads the patient (see Peers), the readings are forwarded to it.
func (w *Ward) Observe(ctx context.Context, patientID int64, readings []vitals.Reading) {
	p, err := w.lock(ctx, patientID)
	if err != nil {
		w.cfg.Log.ErrorContext(ctx, "news2 restore", "patient", patientID, "err", err)
		return
	}
	now := w.cfg.Now()
	p.observed = now
	var evs []monitor.Event
	for _, r := range readings {
		evs = append(evs, p.m.Observe(now, r)...)
	}
	w.emit(ctx, patientID, p, evs)
	lead := p.lead
	p.mu.Unlock()
	if w.peers == nil || lead == leadSelf {
		return
	}
	w.forward(ctx, patientID, readings)
	if lead != leadOther {
		select { // claim the lead now rather than at the next round
		case w.wake <- struct{}{}:
		default:
		}
	}
}

var _ vitals.Observer = (*Ward)(nil)

// Snapshot is the message that places a new viewer in the patient's NEWS2
// state: {"type":"snapshot","patient":P,"events":[...]} with the current
// NEWS2, every active alert and every stale input, as their own messages
// would say it (docs/protocol.md). When another node leads the patient
// (see Peers), it is that node's last snapshot.
func (w *Ward) Snapshot(ctx context.Context, patientID int64) ([]byte, error) {
	p, err := w.lock(ctx, patientID)
	if err != nil {
		return nil, err
	}
	evs := p.m.Snapshot(w.cfg.Now())
	other := w.peers != nil && p.lead != leadSelf
	p.mu.Unlock()
	if other {
		b, err := w.peers.Snapshot(ctx, patientID)
		if err != nil {
			w.cfg.Log.WarnContext(ctx, "news2 lead's snapshot", "patient", patientID, "err", err)
		}
		if b != nil {
			return b, nil
		}
	}
	return SnapshotMessage(patientID, evs)
}

// SnapshotMessage encodes a snapshot message.
func SnapshotMessage(patientID int64, evs []monitor.Event) ([]byte, error) {
	msg := struct {
		Type    string          `json:"type"`
		Patient int64           `json:"patient"`
		Events  []monitor.Event `json:"events"`
	}{"snapshot", patientID, evs}
	b, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot: %w", err)
	}
	return b, nil
}

// emit records and publishes events in order if this node leads the
// patient (see Peers), or holds back the alerts raised for when it takes
// the lead. Call it holding the patient's lock.
func (w *Ward) emit(ctx context.Context, patientID int64, p *patient, evs []monitor.Event) {
	if len(evs) == 0 {
		return
	}
	if w.peers != nil && p.lead != leadSelf {
		hold(p, evs)
		return
	}
	w.send(ctx, patientID, p, evs)
}

// send records and publishes events in order. Call it holding the
// patient's lock.
func (w *Ward) send(ctx context.Context, patientID int64, p *patient, evs []monitor.Event) {
	p.dirty = true
	if err := w.record(ctx, patientID, evs); err != nil {
		w.cfg.Log.ErrorContext(ctx, "news2 record alerts", "patient", patientID, "err", err)
	}
	for _, e := range evs {
		b, err := monitor.Encode(e)
		if err != nil {
			w.cfg.Log.ErrorContext(ctx, "news2 encode", "patient", patientID, "type", e.EventType(), "err", err)
			continue
		}
		if err := w.pub.Publish(ctx, patientID, b); err != nil {
			w.cfg.Log.WarnContext(ctx, "news2 publish", "patient", patientID, "type", e.EventType(), "err", err)
		}
	}
}

// Tick lets time pass for every patient: stale inputs, bands that held,
// reminders. Run calls it every Config.Tick; it also forgets idle patients.
func (w *Ward) Tick(ctx context.Context) {
	now := w.cfg.Now()
	w.mu.Lock()
	ids := make([]int64, 0, len(w.patients))
	ps := make([]*patient, 0, len(w.patients))
	for id, p := range w.patients {
		ids = append(ids, id)
		ps = append(ps, p)
	}
	w.mu.Unlock()
	for i, p := range ps {
		p.mu.Lock()
		if p.loaded {
			w.emit(ctx, ids[i], p, p.m.Tick(now))
		}
		if now.Sub(p.touched) >= w.cfg.Idle && len(p.m.Alerts()) == 0 {
			p.gone = true
			w.mu.Lock()
			if w.patients[ids[i]] == p {
				delete(w.patients, ids[i])
			}
			w.mu.Unlock()
		}
		p.mu.Unlock()
	}
}

// Run calls Tick every Config.Tick until ctx ends. With Peers, it also
// checks the leads (CheckLeads) and forwards readings to the lead, each
// in a goroutine of its own so that Redis never holds up the tick.
func (w *Ward) Run(ctx context.Context) {
	if w.peers != nil {
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { w.runLeads(ctx) })
		wg.Go(func() { w.runForward(ctx) })
	}
	t := time.NewTicker(w.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Tick(ctx)
		}
	}
}
