package ward

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/bedside-health/bedside/vitals/alert"
	"github.com/bedside-health/bedside/vitals/monitor"
	"github.com/bedside-health/bedside/vitals/news2"
)

// Input kinds: what a clinician enters for a patient's NEWS2.
const (
	KindConsciousness = "consciousness" // Text: an ACVPU level
	KindOxygen        = "oxygen"        // Text: "air" or "oxygen"
	KindScale2        = "scale2"        // Text: "on" or "off"
	KindValue         = "value"         // Code and Value: a manual measurement
)

// Input is one clinician's input to a patient's NEWS2, as recorded.
type Input struct {
	Kind  string
	Code  string  // KindValue: the LOINC code
	Value float64 // KindValue: in the code's stored unit
	Text  string  // the other kinds
	At    time.Time
}

// Records keeps what a patient's Monitor must not lose on restart.
type Records interface {
	// Restore returns the patient's recorded inputs (oldest first; only
	// the latest of each kind and code matters) and thresholds.
	Restore(ctx context.Context, patientID int64) ([]Input, []alert.Threshold, error)
	// RecordAlerts keeps alert events (raised, cleared, acknowledged,
	// notice) on the patient's alert timeline; reminders are not passed.
	RecordAlerts(ctx context.Context, patientID int64, evs []monitor.AlertEvent) error
}

type noRecords struct{}

func (noRecords) Restore(context.Context, int64) ([]Input, []alert.Threshold, error) {
	return nil, nil, nil
}
func (noRecords) RecordAlerts(context.Context, int64, []monitor.AlertEvent) error { return nil }

// restore rebuilds m from the records: each input at the time it was
// entered, then the thresholds.
func (w *Ward) restore(ctx context.Context, id int64, m *monitor.Monitor) error {
	ins, ts, err := w.records.Restore(ctx, id)
	if err != nil {
		return fmt.Errorf("restore patient %d: %w", id, err)
	}
	slices.SortStableFunc(ins, func(a, b Input) int { return a.At.Compare(b.At) })
	for _, in := range ins {
		if _, err := apply(m, in); err != nil {
			// A record this version cannot apply: skip it, keep the rest.
			w.cfg.Log.WarnContext(ctx, "news2 restore input", "patient", id, "kind", in.Kind, "err", err)
		}
	}
	if len(ts) > 0 {
		if _, err := m.SetThresholds(w.cfg.Now(), ts); err != nil {
			w.cfg.Log.WarnContext(ctx, "news2 restore thresholds", "patient", id, "err", err)
		}
	}
	return nil
}

// apply enters in into m at in.At.
func apply(m *monitor.Monitor, in Input) ([]monitor.Event, error) {
	switch in.Kind {
	case KindConsciousness:
		l, err := news2.ParseLevel(in.Text)
		if err != nil {
			return nil, fmt.Errorf("level: %w", err)
		}
		return m.SetConsciousness(in.At, l)
	case KindOxygen:
		switch in.Text {
		case "air":
			return m.SetOxygen(in.At, false), nil
		case "oxygen":
			return m.SetOxygen(in.At, true), nil
		}
		return nil, fmt.Errorf("oxygen: %q is not air or oxygen", in.Text)
	case KindScale2:
		switch in.Text {
		case "on":
			return m.SetScale2(in.At, true), nil
		case "off":
			return m.SetScale2(in.At, false), nil
		}
		return nil, fmt.Errorf("scale2: %q is not on or off", in.Text)
	case KindValue:
		return m.EnterValue(in.At, in.Code, in.Value)
	}
	return nil, fmt.Errorf("kind: %q is not consciousness, oxygen, scale2 or value", in.Kind)
}

// record keeps the alert events of evs on the timeline.
func (w *Ward) record(ctx context.Context, id int64, evs []monitor.Event) error {
	var as []monitor.AlertEvent
	for _, e := range evs {
		if a, ok := e.(monitor.AlertEvent); ok && a.State != "reminder" {
			as = append(as, a)
		}
	}
	if len(as) == 0 {
		return nil
	}
	return w.records.RecordAlerts(ctx, id, as)
}

// Enter applies a clinician's input to the patient's NEWS2 now and
// publishes what changed. Check it first with Check; the caller records
// it. An input the Monitor refuses returns its error and changes nothing.
func (w *Ward) Enter(ctx context.Context, patientID int64, in Input) error {
	p, err := w.lockLead(ctx, patientID)
	if err != nil {
		return err
	}
	evs, err := apply(p.m, in)
	if err == nil {
		w.emit(ctx, patientID, p, evs)
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	w.share(ctx, patientID, control{Input: &in, At: in.At})
	return nil
}

// lockLead is lock for a physician's change: when no node leads the
// patient's NEWS2, this node claims it first (outside the patient's
// lock), so that the change is recorded and published exactly once.
func (w *Ward) lockLead(ctx context.Context, patientID int64) (*patient, error) {
	if w.peers == nil {
		return w.lock(ctx, patientID)
	}
	rctx, cancel := context.WithTimeout(ctx, leadTimeout)
	ls, err := w.peers.Leads(rctx, []LeadCheck{{Patient: patientID, Claim: true}})
	cancel()
	if err != nil {
		w.cfg.Log.WarnContext(ctx, "news2 lead", "patient", patientID, "err", err)
	}
	p, lerr := w.lock(ctx, patientID)
	if lerr != nil {
		return nil, lerr
	}
	var l Lead
	if err == nil {
		l = ls[0]
	}
	if w.settle(ctx, patientID, p, w.cfg.Now(), l, err, true) != nil || err != nil {
		p.dirty = true // CheckLeads saves the snapshot
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return p, nil
}

// Check reports whether in would be accepted, with an error naming the
// field at fault, without applying it.
func Check(in Input) error {
	_, err := apply(monitor.New(monitor.Config{}), in)
	return err
}

// SetThresholds replaces the patient's thresholds and publishes what
// changed. On error (naming the threshold at fault) nothing changes.
func (w *Ward) SetThresholds(ctx context.Context, patientID int64, ts []alert.Threshold) ([]alert.Threshold, error) {
	p, err := w.lockLead(ctx, patientID)
	if err != nil {
		return nil, err
	}
	now := w.cfg.Now()
	evs, err := p.m.SetThresholds(now, ts)
	if err == nil {
		w.emit(ctx, patientID, p, evs)
	}
	set := p.m.Thresholds()
	p.mu.Unlock()
	if err != nil {
		return nil, err
	}
	w.share(ctx, patientID, control{Thresholds: ts, SetLimits: true, At: now})
	return set, nil
}

// Acknowledge records that by acknowledged the patient's alert id. When
// another node leads the patient (see Peers), the alert is that node's:
// the acknowledgement is carried to it, and the answer is the
// acknowledgement as sent.
func (w *Ward) Acknowledge(ctx context.Context, patientID int64, id, by string) (alert.Alert, error) {
	p, err := w.lockLead(ctx, patientID)
	if err != nil {
		return alert.Alert{}, err
	}
	now := w.cfg.Now()
	var a alert.Alert
	if w.peers != nil && p.lead != leadSelf {
		a = alert.Alert{ID: id, Ack: &alert.Ack{By: by, At: now}}
		if found, _, err := p.m.Acknowledge(now, id, by); err == nil {
			a = found
		}
	} else {
		var evs []monitor.Event
		a, evs, err = p.m.Acknowledge(now, id, by)
		if err == nil {
			w.emit(ctx, patientID, p, evs)
		}
	}
	p.mu.Unlock()
	if err != nil {
		return a, err
	}
	w.share(ctx, patientID, control{AckID: id, AckBy: by, At: now})
	return a, nil
}
