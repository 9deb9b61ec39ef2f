package ward

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/bedside-health/bedside/vitals/alert"
)

// Peers links a Ward with the wards of the other nodes of a cluster
// (cluster.RedisNEWS2). A patient's devices may send to one node while
// their physician uses another; the ward that sees the readings leads the
// patient's NEWS2: it alone publishes and records its events, physicians'
// changes made on other nodes are carried to it, and it keeps its
// snapshot where the others' viewers read it.
type Peers interface {
	// Lead reports who leads the patient's NEWS2: this node (self), or
	// another (other), or neither. With claim, this node takes the lead
	// unless another holds it, or keeps it.
	Lead(ctx context.Context, patientID int64, claim bool) (self, other bool, err error)
	// Share carries msg to the other nodes' wards (their Apply).
	Share(ctx context.Context, patientID int64, msg []byte) error
	// SaveSnapshot keeps the lead's snapshot message for the others.
	SaveSnapshot(ctx context.Context, patientID int64, msg []byte) error
	// Snapshot returns the lead's last snapshot message (nil if none).
	Snapshot(ctx context.Context, patientID int64) ([]byte, error)
}

// Lead states of a patient on this node.
const (
	leadUnknown = iota
	leadNone
	leadSelf
	leadOther
)

// Lead timing: how often the lead is checked, and how recently this node
// must have seen a reading to claim it.
const (
	leadEvery   = 5 * time.Second
	leadReading = 30 * time.Second
)

// SetPeers links the ward with the other nodes' wards. Call it before
// Run and before any reading is observed.
func (w *Ward) SetPeers(p Peers) { w.peers = p }

// control is a physician's change made on one node, carried to the
// others: an input, the thresholds, or an acknowledgement.
type control struct {
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

// Apply takes a change a physician made on another node (see Peers). A
// patient this ward does not hold is left alone: it is restored from the
// records, which hold the change, when needed.
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

// checkLeads refreshes, outside the patients' locks, who leads each held
// patient whose check is due; this node claims those whose readings it
// saw lately. The lead saves its snapshot for the other nodes.
func (w *Ward) checkLeads(ctx context.Context, now time.Time, ids []int64, ps []*patient) {
	if w.peers == nil {
		return
	}
	for i, p := range ps {
		p.mu.Lock()
		claim := !p.observed.IsZero() && now.Sub(p.observed) < leadReading
		// Claimed at once when this node starts seeing readings.
		due := p.loaded && (now.Sub(p.leadChecked) >= leadEvery || (claim && p.lead != leadSelf))
		p.mu.Unlock()
		if due {
			self, other, err := w.peers.Lead(ctx, ids[i], claim)
			p.mu.Lock()
			p.leadChecked = now
			if err != nil {
				w.cfg.Log.WarnContext(ctx, "news2 lead", "patient", ids[i], "err", err)
			} else {
				was := p.lead
				p.lead = leadState(self, other)
				if p.lead == leadSelf && was != leadSelf {
					p.dirty = true // save a snapshot at once
				}
			}
			p.mu.Unlock()
		}
		p.mu.Lock()
		var snap []byte
		if p.lead == leadSelf && p.dirty {
			snap, _ = SnapshotMessage(ids[i], p.m.Snapshot(now))
			p.dirty = false
		}
		p.mu.Unlock()
		if snap != nil {
			if err := w.peers.SaveSnapshot(ctx, ids[i], snap); err != nil {
				w.cfg.Log.WarnContext(ctx, "news2 save snapshot", "patient", ids[i], "err", err)
			}
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
