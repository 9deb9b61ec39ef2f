package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/bedside-health/bedside/store"
)

// AppendObservations stores a batch of readings and advances the device's
// LastSeq to max(LastSeq, lastSeq), all in one transaction. An observation
// whose DeviceID is 0 is taken to come from deviceID; one whose (DeviceID,
// Seq, Code) is already stored (Seq > 0) is skipped, so a resent envelope is
// never stored twice. A deviceID of 0 means readings entered by hand: no
// sequence is advanced. An unknown device gives store.ErrNotFound and stores
// nothing.
func (s *DB) AppendObservations(ctx context.Context, deviceID int64, lastSeq int64, obs []store.Observation) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap(err, "append observations of device %d", deviceID)
	}
	defer tx.Rollback()
	if deviceID != 0 {
		res, err := tx.ExecContext(ctx, `UPDATE credentials SET last_seq = max(last_seq, ?) WHERE id = ? AND kind = 'device'`, lastSeq, deviceID)
		if err != nil {
			return wrap(err, "advance device %d", deviceID)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("append observations: device %d: %w", deviceID, store.ErrNotFound)
		}
	}
	if len(obs) > 0 {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO observations (patient_id, device_id, seq, code, value, unit, effective_at, received_at, flags)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
		if err != nil {
			return wrap(err, "append observations of device %d", deviceID)
		}
		defer stmt.Close()
		now := time.Now()
		for _, o := range obs {
			if o.DeviceID == 0 {
				o.DeviceID = deviceID
			}
			if o.ReceivedAt.IsZero() {
				o.ReceivedAt = now
			}
			if _, err := stmt.ExecContext(ctx, o.PatientID, o.DeviceID, o.Seq, o.Code, o.Value, o.Unit, ms(o.EffectiveAt), ms(o.ReceivedAt), store.JoinFlags(o.Flags)); err != nil {
				return wrap(err, "append observation seq %d of device %d", o.Seq, deviceID)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return wrap(err, "append observations of device %d", deviceID)
	}
	return nil
}

// ObservationsBetween lists a patient's observations effective in [from,
// to), by effective time then ID.
func (s *DB) ObservationsBetween(ctx context.Context, patientID int64, from, to time.Time) ([]store.Observation, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, patient_id, device_id, seq, code, value, unit, effective_at, received_at, flags
		FROM observations WHERE patient_id = ? AND effective_at >= ? AND effective_at < ? ORDER BY effective_at, id`,
		patientID, ms(from), ms(to))
	out, err := collect(rows, err, func(r scanner) (store.Observation, error) {
		var o store.Observation
		var eff, rec int64
		var flags string
		err := r.Scan(&o.ID, &o.PatientID, &o.DeviceID, &o.Seq, &o.Code, &o.Value, &o.Unit, &eff, &rec, &flags)
		o.EffectiveAt, o.ReceivedAt, o.Flags = at(eff), at(rec), store.SplitFlags(flags)
		return o, err
	})
	if err != nil {
		return nil, wrap(err, "list observations of patient %d", patientID)
	}
	return out, nil
}
