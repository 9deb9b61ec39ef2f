package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bedside-health/bedside/store"
)

// appendReq is one AppendObservations call waiting for its group commit.
type appendReq struct {
	deviceID, lastSeq int64
	obs               []store.Observation
}

// maxAppendBatch bounds the calls one transaction commits together.
const maxAppendBatch = 256

// AppendObservations stores a batch of readings and advances the device's
// LastSeq to max(LastSeq, lastSeq), all in one transaction, which it
// shares with the appends of other devices waiting at the same time (group
// commit: two statements and one commit for the whole group). An
// observation whose DeviceID is 0 is taken to come from deviceID; one whose
// (DeviceID, Seq, Code) is already stored (Seq > 0) is skipped by ON
// CONFLICT DO NOTHING, so a resent envelope is never stored twice. A
// deviceID of 0 means readings entered by hand: no sequence is advanced. An
// unknown device gives store.ErrNotFound and stores nothing of this call.
func (s *DB) AppendObservations(ctx context.Context, deviceID int64, lastSeq int64, obs []store.Observation) error {
	if err := s.appends.Do(ctx, appendReq{deviceID, lastSeq, obs}); err != nil {
		return wrap(err, "append observations of device %d", deviceID)
	}
	return nil
}

// commitAppends writes a group of appends in one transaction: one UPDATE
// advancing every device named, then one INSERT of every reading whose
// device exists.
func (s *DB) commitAppends(ctx context.Context, batch []appendReq) ([]error, error) {
	each := make([]error, len(batch))
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var ids, seqs []int64
		for _, rq := range batch {
			if rq.deviceID != 0 {
				ids = append(ids, rq.deviceID)
				seqs = append(seqs, rq.lastSeq)
			}
		}
		found := map[int64]bool{}
		if len(ids) > 0 {
			rows, err := tx.Query(ctx, `UPDATE credentials c SET last_seq = greatest(c.last_seq, v.seq)
				FROM (SELECT id, max(seq) AS seq FROM unnest($1::bigint[], $2::bigint[]) AS u(id, seq) GROUP BY id) v
				WHERE c.id = v.id AND c.kind = 'device' RETURNING c.id`, ids, seqs)
			if err != nil {
				return fmt.Errorf("advance devices: %w", err)
			}
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				found[id] = true
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("advance devices: %w", err)
			}
		}
		var (
			patient, device, seq []int64
			code, unit, flags    []string
			value                []float64
			eff, rec             []time.Time
		)
		now := time.Now()
		for i, rq := range batch {
			if rq.deviceID != 0 && !found[rq.deviceID] {
				each[i] = fmt.Errorf("device %d: %w", rq.deviceID, store.ErrNotFound)
				continue
			}
			for _, o := range rq.obs {
				if o.DeviceID == 0 {
					o.DeviceID = rq.deviceID
				}
				if o.ReceivedAt.IsZero() {
					o.ReceivedAt = now
				}
				patient, device, seq = append(patient, o.PatientID), append(device, o.DeviceID), append(seq, o.Seq)
				code, unit, flags = append(code, o.Code), append(unit, o.Unit), append(flags, store.JoinFlags(o.Flags))
				value, eff, rec = append(value, o.Value), append(eff, norm(o.EffectiveAt)), append(rec, norm(o.ReceivedAt))
			}
		}
		if len(patient) == 0 {
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO observations (patient_id, device_id, seq, code, value, unit, effective_at, received_at, flags)
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::float8[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::text[])
			ON CONFLICT (device_id, seq, code) WHERE seq > 0 DO NOTHING`,
			patient, device, seq, code, value, unit, eff, rec, flags)
		if err != nil {
			return fmt.Errorf("insert observations: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return each, nil
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

// AppendDeviceEvent stores a device connecting or disconnecting.
func (s *DB) AppendDeviceEvent(ctx context.Context, e store.DeviceEvent) (store.DeviceEvent, error) {
	e.At = norm(e.At)
	err := s.pool.QueryRow(ctx, `INSERT INTO device_events (patient_id, device_id, device_name, kind, at) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		e.PatientID, e.DeviceID, e.Device, e.Kind, e.At).Scan(&e.ID)
	if err != nil {
		return e, wrap(err, "store device %d event", e.DeviceID)
	}
	return e, nil
}

// DeviceEventsBetween lists a patient's device events in [from, to),
// oldest first.
func (s *DB) DeviceEventsBetween(ctx context.Context, patientID int64, from, to time.Time) ([]store.DeviceEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, patient_id, device_id, device_name, kind, at FROM device_events
		WHERE patient_id = $1 AND at >= $2 AND at < $3 ORDER BY at, id`, patientID, norm(from), norm(to))
	out, err := collect(rows, err, func(r pgx.Row) (store.DeviceEvent, error) {
		var e store.DeviceEvent
		err := r.Scan(&e.ID, &e.PatientID, &e.DeviceID, &e.Device, &e.Kind, utc(&e.At))
		return e, err
	})
	if err != nil {
		return nil, wrap(err, "list device events of patient %d", patientID)
	}
	return out, nil
}
