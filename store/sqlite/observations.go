package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"time"

	"github.com/bedside-health/bedside/store"
)

// appendReq is one AppendObservations call waiting for its group commit.
type appendReq struct {
	deviceID, lastSeq int64
	obs               []store.Observation
}

// maxAppendBatch bounds the calls one transaction commits together: a
// thousand devices' commits fall on the same tick (vitals.ServeDevice),
// and one transaction for all of them costs one WAL commit instead of four.
const maxAppendBatch = 1024

// AppendObservations stores a batch of readings and advances the device's
// LastSeq to max(LastSeq, lastSeq), all in one transaction, which it
// shares with the appends of other devices waiting at the same time (group
// commit). An observation whose DeviceID is 0 is taken to come from
// deviceID; one whose (DeviceID, Seq, Code) is already stored (Seq > 0) is
// skipped, so a resent envelope is never stored twice. A deviceID of 0 means
// readings entered by hand: no sequence is advanced. An unknown device gives
// store.ErrNotFound and stores nothing of this call.
func (s *DB) AppendObservations(ctx context.Context, deviceID int64, lastSeq int64, obs []store.Observation) error {
	if err := s.appends.Do(ctx, appendReq{deviceID, lastSeq, obs}); err != nil {
		return wrap(err, "append observations of device %d", deviceID)
	}
	return nil
}

// commitAppends writes a group of appends in one transaction.
func (s *DB) commitAppends(ctx context.Context, batch []appendReq) ([]error, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	advance, err := tx.PrepareContext(ctx, `UPDATE credentials SET last_seq = max(last_seq, ?) WHERE id = ? AND kind = 'device'`)
	if err != nil {
		return nil, err
	}
	defer advance.Close()
	insert, err := tx.PrepareContext(ctx, `INSERT INTO observations (patient_id, device_id, seq, code, value, unit, effective_at, received_at, flags)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
	if err != nil {
		return nil, err
	}
	defer insert.Close()
	each := make([]error, len(batch))
	now := time.Now()
	for i, rq := range batch {
		if each[i], err = appendOne(ctx, advance, insert, rq, now); err != nil {
			return nil, err
		}
		// A batch of a slot's devices takes tens of milliseconds of CPU;
		// let the goroutines delivering live vitals run between devices
		// rather than wait for the scheduler to preempt the commit.
		runtime.Gosched()
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return each, nil
}

// appendOne writes one call's rows; its own error (an unknown device) is
// mine, a failed statement fails the transaction.
func appendOne(ctx context.Context, advance, insert *sql.Stmt, rq appendReq, now time.Time) (mine, failed error) {
	if rq.deviceID != 0 {
		res, err := advance.ExecContext(ctx, rq.lastSeq, rq.deviceID)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("device %d: %w", rq.deviceID, store.ErrNotFound), nil
		}
	}
	for _, o := range rq.obs {
		if o.DeviceID == 0 {
			o.DeviceID = rq.deviceID
		}
		if o.ReceivedAt.IsZero() {
			o.ReceivedAt = now
		}
		if _, err := insert.ExecContext(ctx, o.PatientID, o.DeviceID, o.Seq, o.Code, o.Value, o.Unit, ms(o.EffectiveAt), ms(o.ReceivedAt), store.JoinFlags(o.Flags)); err != nil {
			return nil, err
		}
	}
	return nil, nil
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

// AppendDeviceEvent stores a device connecting or disconnecting.
func (s *DB) AppendDeviceEvent(ctx context.Context, e store.DeviceEvent) (store.DeviceEvent, error) {
	res, err := s.w.ExecContext(ctx, `INSERT INTO device_events (patient_id, device_id, device_name, kind, at) VALUES (?, ?, ?, ?, ?)`,
		e.PatientID, e.DeviceID, e.Device, e.Kind, ms(e.At))
	if err != nil {
		return e, wrap(err, "store device %d event", e.DeviceID)
	}
	e.ID, _ = res.LastInsertId()
	e.At = norm(e.At)
	return e, nil
}

// DeviceEventsBetween lists a patient's device events in [from, to),
// oldest first.
func (s *DB) DeviceEventsBetween(ctx context.Context, patientID int64, from, to time.Time) ([]store.DeviceEvent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, patient_id, device_id, device_name, kind, at FROM device_events
		WHERE patient_id = ? AND at >= ? AND at < ? ORDER BY at, id`, patientID, ms(from), ms(to))
	out, err := collect(rows, err, func(r scanner) (store.DeviceEvent, error) {
		var e store.DeviceEvent
		var t int64
		err := r.Scan(&e.ID, &e.PatientID, &e.DeviceID, &e.Device, &e.Kind, &t)
		e.At = at(t)
		return e, err
	})
	if err != nil {
		return nil, wrap(err, "list device events of patient %d", patientID)
	}
	return out, nil
}
