package postgres

import (
	"context"
	"errors"
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
// commit: three statements and one commit for the whole group). The
// duplicate check is the device's LastSeq, read and locked in the same
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

// commitAppends writes a group of appends in one transaction: it locks
// and reads the LastSeq of every device named (another node may be
// appending for the same device), advances those that move, then inserts
// every reading of a known device above the LastSeq its call finds, the
// calls taken in order.
func (s *DB) commitAppends(ctx context.Context, batch []appendReq) ([]error, error) {
	each := make([]error, len(batch))
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var ids []int64
		for i, rq := range batch {
			each[i] = store.CheckSequenced(rq.deviceID, rq.lastSeq, rq.obs)
			if each[i] == nil && rq.deviceID != 0 {
				ids = append(ids, rq.deviceID)
			}
		}
		stored := map[int64]int64{} // each known device's LastSeq as the calls go
		if len(ids) > 0 {
			// In ID order, so two nodes' transactions lock in the same order.
			rows, err := tx.Query(ctx, `SELECT id, last_seq FROM credentials WHERE id = ANY($1) AND kind = 'device' ORDER BY id FOR UPDATE`, ids)
			if err != nil {
				return fmt.Errorf("read devices: %w", err)
			}
			for rows.Next() {
				var id, seq int64
				if err := rows.Scan(&id, &seq); err != nil {
					rows.Close()
					return err
				}
				stored[id] = seq
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("read devices: %w", err)
			}
		}
		var (
			patient, device, seq, relayed []int64
			code, unit, flags             []string
			value                         []float64
			eff, rec                      []time.Time
		)
		anyRelayed := false
		now := time.Now()
		moved := map[int64]bool{}
		type seqCode struct {
			seq  int64
			code string
		}
		seen := map[seqCode]bool{}
		for i, rq := range batch {
			if each[i] != nil {
				continue
			}
			last, known := stored[rq.deviceID]
			if rq.deviceID != 0 && !known {
				each[i] = fmt.Errorf("device %d: %w", rq.deviceID, store.ErrNotFound)
				continue
			}
			if rq.deviceID != 0 && rq.lastSeq > last {
				stored[rq.deviceID], moved[rq.deviceID] = rq.lastSeq, true
			}
			clear(seen)
			for _, o := range rq.obs {
				if o.Seq > 0 {
					k := seqCode{o.Seq, o.Code}
					if o.Seq <= last || seen[k] {
						continue // a resend: stored by an earlier call, or just now
					}
					seen[k] = true
				}
				if o.DeviceID == 0 {
					o.DeviceID = rq.deviceID
				}
				if o.ReceivedAt.IsZero() {
					o.ReceivedAt = now
				}
				patient, device, seq = append(patient, o.PatientID), append(device, o.DeviceID), append(seq, o.Seq)
				code, unit, flags = append(code, o.Code), append(unit, o.Unit), append(flags, store.JoinFlags(o.Flags))
				value, eff, rec = append(value, o.Value), append(eff, norm(o.EffectiveAt)), append(rec, norm(o.ReceivedAt))
				relayed = append(relayed, o.Relayed)
				anyRelayed = anyRelayed || o.Relayed != 0
			}
		}
		if len(moved) > 0 {
			ids, seqs := make([]int64, 0, len(moved)), make([]int64, 0, len(moved))
			for id := range moved {
				ids, seqs = append(ids, id), append(seqs, stored[id])
			}
			if _, err := tx.Exec(ctx, `UPDATE credentials c SET last_seq = v.seq
				FROM unnest($1::bigint[], $2::bigint[]) AS v(id, seq) WHERE c.id = v.id`, ids, seqs); err != nil {
				return fmt.Errorf("advance devices: %w", err)
			}
		}
		if len(patient) == 0 {
			return nil
		}
		// Without a relayed reading, relayed_id is left to its default
		// rather than sent as an array of zeros.
		cols := `patient_id, device_id, seq, code, value, unit, effective_at, received_at, flags`
		arrays := `$1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::float8[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::text[]`
		args := []any{patient, device, seq, code, value, unit, eff, rec, flags}
		if anyRelayed {
			cols, arrays, args = cols+`, relayed_id`, arrays+`, $10::bigint[]`, append(args, relayed)
		}
		_, err := tx.Exec(ctx, `INSERT INTO observations (`+cols+`) SELECT * FROM unnest(`+arrays+`)`, args...)
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
	rows, err := s.pool.Query(ctx, `SELECT `+obsCols+`
		FROM observations WHERE patient_id = $1 AND effective_at >= $2 AND effective_at < $3 ORDER BY effective_at, id`,
		patientID, norm(from), norm(to))
	out, err := collect(rows, err, scanObservation)
	if err != nil {
		return nil, wrap(err, "list observations of patient %d", patientID)
	}
	return out, nil
}

// AppendDeviceEvent stores a device connecting or disconnecting.
func (s *DB) AppendDeviceEvent(ctx context.Context, e store.DeviceEvent) (store.DeviceEvent, error) {
	e.At = norm(e.At)
	err := s.pool.QueryRow(ctx, `INSERT INTO device_events (patient_id, device_id, device_name, relay, kind, at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		e.PatientID, e.DeviceID, e.Device, e.Relay, e.Kind, e.At).Scan(&e.ID)
	if err != nil {
		return e, wrap(err, "store device %d event", e.DeviceID)
	}
	return e, nil
}

// DeviceEventsBetween lists a patient's device events in [from, to),
// oldest first.
func (s *DB) DeviceEventsBetween(ctx context.Context, patientID int64, from, to time.Time) ([]store.DeviceEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, patient_id, device_id, device_name, relay, kind, at FROM device_events
		WHERE patient_id = $1 AND at >= $2 AND at < $3 ORDER BY at, id`, patientID, norm(from), norm(to))
	out, err := collect(rows, err, func(r pgx.Row) (store.DeviceEvent, error) {
		var e store.DeviceEvent
		err := r.Scan(&e.ID, &e.PatientID, &e.DeviceID, &e.Device, &e.Relay, &e.Kind, utc(&e.At))
		return e, err
	})
	if err != nil {
		return nil, wrap(err, "list device events of patient %d", patientID)
	}
	return out, nil
}

// relayedCols are a relayed device's columns, r joined with its relay c.
const relayedCols = `r.id, r.relay_id, c.user_id, r.name, c.name, r.created_at`

func scanRelayed(r pgx.Row) (store.RelayedDevice, error) {
	var d store.RelayedDevice
	err := r.Scan(&d.ID, &d.RelayID, &d.PatientID, &d.Name, &d.Relay, utc(&d.CreatedAt))
	return d, err
}

// RelayedDevice finds the device relayID relays as name, keeping it if
// it is new.
func (s *DB) RelayedDevice(ctx context.Context, relayID int64, name string) (store.RelayedDevice, error) {
	if name == "" {
		return store.RelayedDevice{}, fmt.Errorf("relayed device of device %d: no name", relayID)
	}
	if err := s.keepRelayed(ctx, relayID, name); err != nil {
		return store.RelayedDevice{}, wrap(err, "keep relayed device of device %d", relayID)
	}
	d, err := scanRelayed(s.pool.QueryRow(ctx, `SELECT `+relayedCols+` FROM relayed_devices r
		JOIN credentials c ON c.id = r.relay_id WHERE r.relay_id = $1 AND r.name = $2`, relayID, name))
	if errors.Is(err, pgx.ErrNoRows) && s.relayFull(ctx, relayID) {
		return d, fmt.Errorf("relayed device of device %d: %w", relayID, store.ErrTooManyRelayed)
	}
	if err != nil {
		return d, wrap(err, "relayed device of device %d", relayID)
	}
	return d, nil
}

// relayLock is the first key of the advisory lock on a relay's devices
// ("rlay" in ASCII); the second is the relay's ID, truncated to 32 bits
// (two relays whose IDs collide just share a queue).
const relayLock int32 = 0x726c6179

// keepRelayed adds the device relayID relays as name unless it is kept
// already or the relay has as many as it may. The relay's additions take
// turns: under READ COMMITTED two at once (two nodes, a takeover) would
// each count the relay's devices without the other's, and both be kept.
func (s *DB) keepRelayed(ctx context.Context, relayID int64, name string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, relayLock, int32(relayID)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO relayed_devices (relay_id, name, created_at)
			SELECT id, $2, $3 FROM credentials WHERE id = $1 AND kind = 'device'
			AND (SELECT count(*) FROM relayed_devices WHERE relay_id = $1) < $4
			ON CONFLICT (relay_id, name) DO NOTHING`, relayID, name, norm(time.Now()), store.MaxRelayedDevices)
		return err
	})
}

// relayFull reports whether relayID, a device, has as many relayed
// devices as it may keep.
func (s *DB) relayFull(ctx context.Context, relayID int64) bool {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM relayed_devices r JOIN credentials c ON c.id = r.relay_id
		WHERE r.relay_id = $1 AND c.kind = 'device'`, relayID).Scan(&n)
	return err == nil && n >= store.MaxRelayedDevices
}

// RelayedDeviceByID finds one relayed device.
func (s *DB) RelayedDeviceByID(ctx context.Context, id int64) (store.RelayedDevice, error) {
	d, err := scanRelayed(s.pool.QueryRow(ctx, `SELECT `+relayedCols+` FROM relayed_devices r
		JOIN credentials c ON c.id = r.relay_id WHERE r.id = $1`, id))
	if err != nil {
		return d, wrap(err, "relayed device %d", id)
	}
	return d, nil
}

// RelayedDevices lists the devices a patient's relays relayed, oldest
// first.
func (s *DB) RelayedDevices(ctx context.Context, patientID int64) ([]store.RelayedDevice, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+relayedCols+` FROM credentials c
		JOIN relayed_devices r ON r.relay_id = c.id WHERE c.kind = 'device' AND c.user_id = $1 ORDER BY r.id`, patientID)
	out, err := collect(rows, err, scanRelayed)
	if err != nil {
		return nil, wrap(err, "relayed devices of patient %d", patientID)
	}
	return out, nil
}
