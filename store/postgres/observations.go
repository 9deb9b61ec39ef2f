package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bedside-health/bedside/store"
)

// AppendObservations stores a batch of readings and advances the device's
// LastSeq to max(LastSeq, lastSeq), all in one transaction. An observation
// whose DeviceID is 0 is taken to come from deviceID; one whose (DeviceID,
// Seq, Code) is already stored (Seq > 0) is skipped by ON CONFLICT DO
// NOTHING, so a resent envelope is never stored twice. A deviceID of 0 means
// readings entered by hand: no sequence is advanced. An unknown device gives
// store.ErrNotFound and stores nothing.
func (s *DB) AppendObservations(ctx context.Context, deviceID int64, lastSeq int64, obs []store.Observation) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if deviceID != 0 {
			tag, err := tx.Exec(ctx, `UPDATE credentials SET last_seq = greatest(last_seq, $1) WHERE id = $2 AND kind = 'device'`, lastSeq, deviceID)
			if err != nil {
				return fmt.Errorf("advance device: %w", err)
			}
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("device %d: %w", deviceID, store.ErrNotFound)
			}
		}
		if len(obs) == 0 {
			return nil
		}
		var b pgx.Batch
		now := time.Now()
		for _, o := range obs {
			if o.DeviceID == 0 {
				o.DeviceID = deviceID
			}
			if o.ReceivedAt.IsZero() {
				o.ReceivedAt = now
			}
			b.Queue(`INSERT INTO observations (patient_id, device_id, seq, code, value, unit, effective_at, received_at, flags)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (device_id, seq, code) WHERE seq > 0 DO NOTHING`,
				o.PatientID, o.DeviceID, o.Seq, o.Code, o.Value, o.Unit, norm(o.EffectiveAt), norm(o.ReceivedAt), store.JoinFlags(o.Flags))
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return wrap(err, "append observations of device %d", deviceID)
	}
	return nil
}

// ObservationsBetween lists a patient's observations effective in [from,
// to), by effective time then ID.
func (s *DB) ObservationsBetween(ctx context.Context, patientID int64, from, to time.Time) ([]store.Observation, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, patient_id, device_id, seq, code, value, unit, effective_at, received_at, flags
		FROM observations WHERE patient_id = $1 AND effective_at >= $2 AND effective_at < $3 ORDER BY effective_at, id`,
		patientID, norm(from), norm(to))
	out, err := collect(rows, err, func(r pgx.Row) (store.Observation, error) {
		var o store.Observation
		var flags string
		err := r.Scan(&o.ID, &o.PatientID, &o.DeviceID, &o.Seq, &o.Code, &o.Value, &o.Unit, utc(&o.EffectiveAt), utc(&o.ReceivedAt), &flags)
		o.Flags = store.SplitFlags(flags)
		return o, err
	})
	if err != nil {
		return nil, wrap(err, "list observations of patient %d", patientID)
	}
	return out, nil
}
