package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"
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
// commit). The duplicate check is the device's LastSeq, read in the same
// transaction: a reading with a sequence at or below it is skipped (see
// store.Observations for the rule and why it is enough). A deviceID of 0
// means readings entered by hand: no sequence is advanced. An unknown
// device, or a numbered reading the rule cannot place, fails this call
// alone and stores nothing of it.
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
	st := appendStmts{seen: make(map[seqCode]bool)}
	if st.last, err = tx.PrepareContext(ctx, `SELECT last_seq FROM credentials WHERE id = ? AND kind = 'device'`); err != nil {
		return nil, err
	}
	defer st.last.Close()
	if st.advance, err = tx.PrepareContext(ctx, `UPDATE credentials SET last_seq = ? WHERE id = ?`); err != nil {
		return nil, err
	}
	defer st.advance.Close()
	st.tx = tx
	defer st.closeInserts()
	each := make([]error, len(batch))
	now := time.Now()
	for i, rq := range batch {
		if each[i], err = st.appendOne(ctx, rq, now); err != nil {
			return nil, err
		}
		// A batch of a slot's devices takes tens of milliseconds of CPU;
		// let the goroutines delivering live vitals run between devices
		// rather than wait for the scheduler to preempt the commit.
		runtime.Gosched()
	}
	if err := st.flush(ctx); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return each, nil
}

// appendStmts are a group commit's statements.
type appendStmts struct {
	tx            *sql.Tx
	last, advance *sql.Stmt
	seen          map[seqCode]bool // the call's readings stored so far
	// The rows to insert, of every device of the commit, go in as few
	// statements as they fit: a statement's own cost (binding, stepping,
	// resetting) is most of a small row's, and a slot's devices each add
	// a handful of rows a second.
	rows    []any
	inserts map[int]*sql.Stmt // by rows per statement
}

// insertColumns are the values of one observation row.
const insertColumns = 9

// insertRows is the most rows one INSERT takes: 576 variables, well under
// SQLite's limit.
const insertRows = 64

// add queues one row, and inserts what is queued once a statement's worth is.
func (st *appendStmts) add(ctx context.Context, o store.Observation) error {
	st.rows = append(st.rows, o.PatientID, o.DeviceID, o.Seq, o.Code, o.Value, o.Unit, ms(o.EffectiveAt), ms(o.ReceivedAt), store.JoinFlags(o.Flags))
	if len(st.rows) < insertRows*insertColumns {
		return nil
	}
	return st.flush(ctx)
}

// flush inserts the queued rows with one statement.
func (st *appendStmts) flush(ctx context.Context) error {
	n := len(st.rows) / insertColumns
	if n == 0 {
		return nil
	}
	stmt := st.inserts[n]
	if stmt == nil {
		var q strings.Builder
		q.WriteString(`INSERT INTO observations (patient_id, device_id, seq, code, value, unit, effective_at, received_at, flags) VALUES `)
		for i := range n {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(`(?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		}
		var err error
		if stmt, err = st.tx.PrepareContext(ctx, q.String()); err != nil {
			return err
		}
		if st.inserts == nil {
			st.inserts = make(map[int]*sql.Stmt)
		}
		st.inserts[n] = stmt
	}
	_, err := stmt.ExecContext(ctx, st.rows...)
	clear(st.rows)
	st.rows = st.rows[:0]
	return err
}

func (st *appendStmts) closeInserts() {
	for _, s := range st.inserts {
		s.Close()
	}
}

// seqCode is a numbered reading's key within one device's call.
type seqCode struct {
	seq  int64
	code string
}

// appendOne writes one call's rows; its own error (an unknown device, a
// reading out of its sequence) is mine, a failed statement fails the
// transaction.
func (st *appendStmts) appendOne(ctx context.Context, rq appendReq, now time.Time) (mine, failed error) {
	if err := store.CheckSequenced(rq.deviceID, rq.lastSeq, rq.obs); err != nil {
		return err, nil
	}
	var stored int64 // readings numbered up to here are stored already
	if rq.deviceID != 0 {
		if err := st.last.QueryRowContext(ctx, rq.deviceID).Scan(&stored); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("device %d: %w", rq.deviceID, store.ErrNotFound), nil
		} else if err != nil {
			return nil, err
		}
		if rq.lastSeq > stored {
			if _, err := st.advance.ExecContext(ctx, rq.lastSeq, rq.deviceID); err != nil {
				return nil, err
			}
		}
	}
	clear(st.seen)
	for _, o := range rq.obs {
		if o.Seq > 0 {
			k := seqCode{o.Seq, o.Code}
			if o.Seq <= stored || st.seen[k] {
				continue // a resend: stored by an earlier call, or just now
			}
			st.seen[k] = true
		}
		if o.DeviceID == 0 {
			o.DeviceID = rq.deviceID
		}
		if o.ReceivedAt.IsZero() {
			o.ReceivedAt = now
		}
		if err := st.add(ctx, o); err != nil {
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
