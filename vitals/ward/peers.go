package ward

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/bedside-health/bedside/vitals"
	"github.com/bedside-health/bedside/vitals/alert"
	"github.com/bedside-health/bedside/vitals/monitor"
)

// Peers links a Ward with the wards of the other nodes of a cluster
// (cluster.RedisNEWS2). A patient's devices may send to one node while
// their physician uses another; the ward that sees the readings leads the
// patient's NEWS2: it alone publishes and records its events, readings and
// physicians' changes taken on other nodes are carried to it, and it keeps
// its snapshot where the others' viewers read it.
type Peers interface {
	// Leads reports, in one round trip, who leads each patient's NEWS2:
	// this node (Self), another (Other), or neither. A node keeps the
	// leads it holds (and its snapshots) alive by asking; with Claim it
	// takes the lead when nobody holds it; a Snapshot is saved for the
	// others if this node leads.
	Leads(ctx context.Context, qs []LeadCheck) ([]Lead, error)
	// Share carries msg to the other nodes' wards (their Apply).
	Share(ctx context.Context, patientID int64, msg []byte) error
	// SaveSnapshot keeps the lead's snapshot message for the others.
	SaveSnapshot(ctx context.Context, patientID int64, msg []byte) error
	// Snapshot returns the lead's last snapshot message (nil if none).
	Snapshot(ctx context.Context, patientID int64) ([]byte, error)
}

// LeadCheck asks who leads a patient's NEWS2 (see Peers.Leads).
type LeadCheck struct {
	Patient  int64
	Claim    bool
	Snapshot []byte
}

// Lead answers a LeadCheck.
type Lead struct{ Self, Other bool }

// Lead states of a patient on this node.
const (
	leadUnknown = iota
	leadNone
	leadSelf
	leadOther
)

// Lead timing: how often the leads are checked, how long one round may
// take, and how recently this node must have seen a reading to claim.
const (
	leadEvery   = 5 * time.Second
	leadTimeout = 500 * time.Millisecond
	leadReading = 30 * time.Second
)

// SetPeers links the ward with the other nodes' wards. Call it before
// Run and before any reading is observed.
func (w *Ward) SetPeers(p Peers) { w.peers = p }

// control is a change made on one node, carried to the others: readings
// seen by a node that does not lead, or a physician's input, thresholds
// or acknowledgement.
type control struct {
	Readings   []vitals.Reading  `json:"readings,omitempty"`
	Input      *Input            `json:"input,omitempty"`
	Thresholds []alert.Threshold `json:"thresholds,omitempty"`
	SetLimits  bool              `json:"setThresholds,omitempty"`
	AckID      string            `json:"ackId,omitempty"`
	AckBy      string            `json:"ackBy,omitempty"`
	At         time.Time         `json:"at"`
}

// share carries c to the other nodes, if any.
func (w *Ward) share(ctx context.Context, patientID int64, c control) {
	if w.peers == nil {
		return
	}
	b, err := json.Marshal(c)
	if err == nil {
		err = w.peers.Share(ctx, patientID, b)
	}
	if err != nil {
		w.cfg.Log.WarnContext(ctx, "news2 share", "patient", patientID, "err", err)
	}
}

// forwarded is readings waiting to go to the lead.
type forwarded struct {
	patient int64
	msg     []byte
}

// forward queues readings this node saw, but does not lead, for the
// lead; the device path never waits on Redis.
func (w *Ward) forward(ctx context.Context, patientID int64, rs []vitals.Reading) {
	b, err := json.Marshal(control{Readings: rs, At: w.cfg.Now()})
	if err != nil {
		w.cfg.Log.ErrorContext(ctx, "news2 forward", "patient", patientID, "err", err)
		return
	}
	select {
	case w.outbox <- forwarded{patientID, b}:
	default:
		w.cfg.Log.WarnContext(ctx, "news2 forward queue full: readings not sent to the lead", "patient", patientID)
	}
}

// runForward sends queued readings to the other nodes until ctx ends.
func (w *Ward) runForward(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-w.outbox:
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			if err := w.peers.Share(sctx, f.patient, f.msg); err != nil {
				w.cfg.Log.WarnContext(ctx, "news2 forward", "patient", f.patient, "err", err)
			}
			cancel()
		}
	}
}

// Apply takes readings or a physician's change from another node (see
// Peers). A patient this ward does not hold is left alone: it is restored
// from the records, which hold the change, when needed.
func (w *Ward) Apply(ctx context.Context, patientID int64, msg []byte) error {
	var c control
	if err := json.Unmarshal(msg, &c); err != nil {
		return fmt.Errorf("news2 control: %w", err)
	}
	w.mu.Lock()
	_, held := w.patients[patientID]
	w.mu.Unlock()
	if !held {
		return nil
	}
	p, err := w.lock(ctx, patientID)
	if err != nil {
		return err
	}
	defer p.mu.Unlock()
	switch {
	case len(c.Readings) > 0:
		now := w.cfg.Now()
		var evs []monitor.Event
		for _, r := range c.Readings {
			if err := checkForwarded(r); err != nil {
				return err
			}
			evs = append(evs, p.m.Observe(now, r)...)
		}
		w.emit(ctx, patientID, p, evs)
	case c.Input != nil:
		evs, err := apply(p.m, *c.Input)
		if err != nil {
			return err
		}
		w.emit(ctx, patientID, p, evs)
	case c.SetLimits:
		evs, err := p.m.SetThresholds(c.At, c.Thresholds)
		if err != nil {
			return err
		}
		w.emit(ctx, patientID, p, evs)
	case c.AckID != "":
		_, evs, err := p.m.Acknowledge(c.At, c.AckID, c.AckBy)
		if err != nil {
			return err
		}
		w.emit(ctx, patientID, p, evs)
	}
	return nil
}

// checkForwarded refuses a forwarded reading this version does not know:
// the sending node checked it, but may run another version.
func checkForwarded(r vitals.Reading) error {
	unit, ok := vitals.Unit(r.Code)
	switch {
	case !ok:
		return fmt.Errorf("news2 forwarded reading: code %q is unknown", r.Code)
	case r.Unit != unit:
		return fmt.Errorf("news2 forwarded reading: unit %q is not %s's %q", r.Unit, r.Code, unit)
	case math.IsNaN(r.Value) || math.IsInf(r.Value, 0):
		return fmt.Errorf("news2 forwarded reading: %s's value is not a number", r.Code)
	case r.Time.IsZero():
		return fmt.Errorf("news2 forwarded reading: %s has no time", r.Code)
	}
	return nil
}

// runLeads checks the leads every leadEvery, and at once when this node
// starts seeing a patient's readings, until ctx ends.
func (w *Ward) runLeads(ctx context.Context) {
	t := time.NewTicker(leadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.wake:
		}
		w.CheckLeads(ctx)
	}
}

// CheckLeads asks, in one round trip with one short deadline, who leads
// each held patient; it never holds a patient's lock while waiting on the
// peers. This node claims the patients whose readings it saw lately and
// keeps the leads it holds; the lead saves its snapshot for the other
// nodes. When the peers cannot answer, this node leads the patients whose
// readings it sees: better a possible duplicate alert than a silent one.
// Run calls it; tests may call it to settle the leads at once.
func (w *Ward) CheckLeads(ctx context.Context) {
	if w.peers == nil {
		return
	}
	now := w.cfg.Now()
	w.mu.Lock()
	ps := make([]*patient, 0, len(w.patients))
	qs := make([]LeadCheck, 0, len(w.patients))
	for id, p := range w.patients {
		ps = append(ps, p)
		qs = append(qs, LeadCheck{Patient: id})
	}
	w.mu.Unlock()
	n := 0
	for i, p := range ps {
		p.mu.Lock()
		if p.loaded && !p.gone {
			q := qs[i]
			q.Claim = !p.observed.IsZero() && now.Sub(p.observed) < leadReading
			if p.lead == leadSelf && p.dirty {
				q.Snapshot, _ = SnapshotMessage(q.Patient, p.m.Snapshot(now))
				p.dirty = false
			}
			ps[n], qs[n] = p, q
			n++
		}
		p.mu.Unlock()
	}
	ps, qs = ps[:n], qs[:n]
	if n == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, leadTimeout)
	defer cancel()
	leads, err := w.peers.Leads(rctx, qs)
	if err != nil {
		w.cfg.Log.WarnContext(ctx, "news2 leads", "patients", n, "err", err)
	}
	for i, p := range ps {
		p.mu.Lock()
		var l Lead
		if err == nil {
			l = leads[i]
		}
		snap := w.settle(ctx, qs[i].Patient, p, now, l, err, qs[i].Claim)
		if err != nil && qs[i].Snapshot != nil {
			p.dirty = true // save it once the peers answer
		}
		p.mu.Unlock()
		if snap != nil {
			if err := w.peers.SaveSnapshot(rctx, qs[i].Patient, snap); err != nil {
				w.cfg.Log.WarnContext(ctx, "news2 save snapshot", "patient", qs[i].Patient, "err", err)
				p.mu.Lock()
				p.dirty = true
				p.mu.Unlock()
			}
		}
	}
}

// settle sets the patient's lead from the peers' answer l (or their error
// err); claim says whether this node claimed it. Taking the lead, this
// node sends what it held back and returns the snapshot to save. Call it
// holding the patient's lock.
func (w *Ward) settle(ctx context.Context, id int64, p *patient, now time.Time, l Lead, err error, claim bool) []byte {
	state := leadState(l.Self, l.Other)
	if err != nil {
		if !claim || p.lead == leadSelf {
			return nil // keep what was known
		}
		state = leadSelf // lead locally while the peers are unreachable
	}
	if state != leadSelf || p.lead == leadSelf {
		p.lead = state
		return nil
	}
	p.lead = leadSelf
	w.takeLead(ctx, id, p, now)
	if err != nil {
		p.dirty = true
		return nil
	}
	p.dirty = false // saved now
	snap, _ := SnapshotMessage(id, p.m.Snapshot(now))
	return snap
}

// takeLead publishes, as this node takes the patient's lead, the current
// NEWS2 and the active alerts it raised but never sent while it did not
// lead. Call it holding the patient's lock.
func (w *Ward) takeLead(ctx context.Context, id int64, p *patient, now time.Time) {
	snap := p.m.Snapshot(now)
	evs := snap[:1] // the NEWS2
	for _, e := range snap[1:] {
		if a, ok := e.(monitor.AlertEvent); ok && p.held[a.ID] {
			evs = append(evs, a)
		}
	}
	p.held = nil
	w.send(ctx, id, p, evs)
}

// hold notes the alerts raised while this node does not lead the patient,
// to send them if it takes the lead while they are active.
func hold(p *patient, evs []monitor.Event) {
	for _, e := range evs {
		a, ok := e.(monitor.AlertEvent)
		if !ok {
			continue
		}
		switch a.State {
		case "raised":
			if p.held == nil {
				p.held = make(map[string]bool)
			}
			p.held[a.ID] = true
		case "cleared":
			delete(p.held, a.ID)
		}
	}
}

func leadState(self, other bool) int {
	switch {
	case self:
		return leadSelf
	case other:
		return leadOther
	}
	return leadNone
}
