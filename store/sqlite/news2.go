package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/bedside-health/bedside/store"
)

// AppendNEWS2Entry stores a physician's input to a patient's NEWS2.
func (s *DB) AppendNEWS2Entry(ctx context.Context, e store.NEWS2Entry) (store.NEWS2Entry, error) {
	res, err := s.w.ExecContext(ctx, `INSERT INTO news2_entries (patient_id, appointment_id, kind, code, value, text, by_user, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, e.PatientID, e.AppointmentID, e.Kind, e.Code, e.Value, e.Text, e.By, ms(e.At))
	if err != nil {
		return e, wrap(err, "store news2 entry of patient %d", e.PatientID)
	}
	e.ID, _ = res.LastInsertId()
	e.At = norm(e.At)
	return e, nil
}

// NEWS2EntriesSince lists a patient's entries made at or after since,
// oldest first.
func (s *DB) NEWS2EntriesSince(ctx context.Context, patientID int64, since time.Time) ([]store.NEWS2Entry, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, patient_id, appointment_id, kind, code, value, text, by_user, at
		FROM news2_entries WHERE patient_id = ? AND at >= ? ORDER BY at, id`, patientID, ms(since))
	out, err := collect(rows, err, func(r scanner) (store.NEWS2Entry, error) {
		var e store.NEWS2Entry
		var t int64
		err := r.Scan(&e.ID, &e.PatientID, &e.AppointmentID, &e.Kind, &e.Code, &e.Value, &e.Text, &e.By, &t)
		e.At = at(t)
		return e, err
	})
	if err != nil {
		return nil, wrap(err, "list news2 entries of patient %d", patientID)
	}
	return out, nil
}

// SetAlertThresholds replaces a patient's thresholds.
func (s *DB) SetAlertThresholds(ctx context.Context, patientID int64, ts []store.AlertThreshold) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap(err, "set thresholds of patient %d", patientID)
	}
	defer tx.Rollback()
	var n int
	err = tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE id = ?`, patientID).Scan(&n)
	if err == nil && n == 0 {
		err = sql.ErrNoRows
	}
	if err == nil {
		_, err = tx.ExecContext(ctx, `DELETE FROM alert_thresholds WHERE patient_id = ?`, patientID)
	}
	for _, t := range ts {
		if err != nil {
			break
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO alert_thresholds (patient_id, code, low, high, by_user, at) VALUES (?, ?, ?, ?, ?, ?)`,
			patientID, t.Code, t.Low, t.High, t.By, ms(t.At))
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return wrap(err, "set thresholds of patient %d", patientID)
	}
	return nil
}

// AlertThresholds lists a patient's thresholds by code.
func (s *DB) AlertThresholds(ctx context.Context, patientID int64) ([]store.AlertThreshold, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT patient_id, code, low, high, by_user, at FROM alert_thresholds
		WHERE patient_id = ? ORDER BY code`, patientID)
	out, err := collect(rows, err, func(r scanner) (store.AlertThreshold, error) {
		var t store.AlertThreshold
		var low, high sql.NullFloat64
		var when int64
		err := r.Scan(&t.PatientID, &t.Code, &low, &high, &t.By, &when)
		if low.Valid {
			t.Low = &low.Float64
		}
		if high.Valid {
			t.High = &high.Float64
		}
		t.At = at(when)
		return t, err
	})
	if err != nil {
		return nil, wrap(err, "list thresholds of patient %d", patientID)
	}
	return out, nil
}

// AppendAlertEvents stores alert events of one patient.
func (s *DB) AppendAlertEvents(ctx context.Context, patientID int64, evs []store.AlertEvent) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap(err, "store alert events of patient %d", patientID)
	}
	defer tx.Rollback()
	for _, e := range evs {
		if err != nil {
			break
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO alert_events (patient_id, alert_id, state, rule, severity, title, code, by_ref, at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, patientID, e.AlertID, e.State, e.Rule, e.Severity, e.Title, e.Code, e.By, ms(e.At))
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return wrap(err, "store alert events of patient %d", patientID)
	}
	return nil
}

// AlertEventsBetween lists a patient's alert events in [from, to), oldest
// first.
func (s *DB) AlertEventsBetween(ctx context.Context, patientID int64, from, to time.Time) ([]store.AlertEvent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, patient_id, alert_id, state, rule, severity, title, code, by_ref, at
		FROM alert_events WHERE patient_id = ? AND at >= ? AND at < ? ORDER BY at, id`, patientID, ms(from), ms(to))
	out, err := collect(rows, err, func(r scanner) (store.AlertEvent, error) {
		var e store.AlertEvent
		var t int64
		err := r.Scan(&e.ID, &e.PatientID, &e.AlertID, &e.State, &e.Rule, &e.Severity, &e.Title, &e.Code, &e.By, &t)
		e.At = at(t)
		return e, err
	})
	if err != nil {
		return nil, wrap(err, "list alert events of patient %d", patientID)
	}
	return out, nil
}
