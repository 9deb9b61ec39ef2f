package web

import (
	"context"

	"github.com/bedside-health/bedside/vitals"
	"github.com/bedside-health/bedside/vitals/alert"
	"github.com/bedside-health/bedside/vitals/ward"
)

// NEWS2Monitors is the node's NEWS2 monitors (ward.Ward): device readings
// go through them, viewers get their snapshot first, physicians' inputs
// change them.
type NEWS2Monitors interface {
	vitals.Observer
	Snapshot(ctx context.Context, patientID int64) ([]byte, error)
	Enter(ctx context.Context, patientID int64, in ward.Input) error
	SetThresholds(ctx context.Context, patientID int64, ts []alert.Threshold) ([]alert.Threshold, error)
	Acknowledge(ctx context.Context, patientID int64, id, by string) (alert.Alert, error)
}

var _ NEWS2Monitors = (*ward.Ward)(nil)

// sendSnapshot queues the patient's NEWS2 snapshot to a viewer about to
// subscribe, so it shows the current score and alerts at once.
func (s *server) sendSnapshot(ctx context.Context, send func([]byte) bool, patientID int64) {
	b, err := s.NEWS2.Snapshot(ctx, patientID)
	if err != nil {
		s.Log.ErrorContext(ctx, "news2 snapshot", "patient", patientID, "err", err)
		return
	}
	send(b)
}
