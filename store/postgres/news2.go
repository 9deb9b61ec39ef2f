package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bedside-health/bedside/store"
)

// AppendNEWS2Entry stores a physician's input to a patient's NEWS2.
func (s *DB) AppendNEWS2Entry(ctx context.Context, e store.NEWS2Entry) (store.NEWS2Entry, error) {
	e.At = norm(e.At)
	err := s.pool.QueryRow(ctx, `INSERT INTO news2_entries (patient_id, appointment_id, kind, code, value, text, by_user, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`, e.PatientID, e.AppointmentID, e.Kind, e.Code, e.Value, e.Text, e.By, e.At).Scan(&e.ID)
	if err != nil {
		return e, wrap(err, "store news2 entry of patient %d", e.PatientID)
	}
	return e, nil
}

// NEWS2EntriesSince lists a patient's entries made at or after since,
// oldest first.
func (s *DB) NEWS2EntriesSince(ctx context.Context, patientID int64, since time.Time) ([]store.NEWS2Entry, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, patient_id, appointment_id, kind, code, value, text, by_user, at
		FROM news2_entries WHERE patient_id = $1 AND at >= $2 ORDER BY at, id`, patientID, norm(since))
	out, err := collect(rows, err, func(r pgx.Row) (store.NEWS2Entry, error) {
		var e store.NEWS2Entry
		err := r.Scan(&e.ID, &e.PatientID, &e.AppointmentID, &e.Kind, &e.Code, &e.Value, &e.Text, &e.By, utc(&e.At))
		return e, err
	})
	if err != nil {
		return nil, wrap(err, "list news2 entries of patient %d", patientID)
	}
	return out, nil
}

// SetAlertThresholds replaces a patient's thresholds.
func (s *DB) SetAlertThresholds(ctx context.Context, patientID int64, ts []store.AlertThreshold) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return wrap(err, "set thresholds of patient %d", patientID)
	}
	defer tx.Rollback(ctx)
	var id int64
	err = tx.QueryRow(ctx, `SELECT id FROM users WHERE id = $1 FOR UPDATE`, patientID).Scan(&id)
	if err == nil {
		_, err = tx.Exec(ctx, `DELETE FROM alert_thresholds WHERE patient_id = $1`, patientID)
	}
	for _, t := range ts {
		if err != nil {
			break
		}
		_, err = tx.Exec(ctx, `INSERT INTO alert_thresholds (patient_id, code, low, high, by_user, at) VALUES ($1, $2, $3, $4, $5, $6)`,
			patientID, t.Code, t.Low, t.High, t.By, norm(t.At))
	}
	if err == nil {
		err = tx.Commit(ctx)
	}
	if err != nil {
		return wrap(err, "set thresholds of patient %d", patientID)
	}
	return nil
}

// AlertThresholds lists a patient's thresholds by code.
func (s *DB) AlertThresholds(ctx context.Context, patientID int64) ([]store.AlertThreshold, error) {
	rows, err := s.pool.Query(ctx, `SELECT patient_id, code, low, high, by_user, at FROM alert_thresholds
		WHERE patient_id = $1 ORDER BY code`, patientID)
	out, err := collect(rows, err, func(r pgx.Row) (store.AlertThreshold, error) {
		var t store.AlertThreshold
		err := r.Scan(&t.PatientID, &t.Code, &t.Low, &t.High, &t.By, utc(&t.At))
		return t, err
	})
	if err != nil {
		return nil, wrap(err, "list thresholds of patient %d", patientID)
	}
	return out, nil
}

// AppendAlertEvents stores alert events of one patient.
func (s *DB) AppendAlertEvents(ctx context.Context, patientID int64, evs []store.AlertEvent) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return wrap(err, "store alert events of patient %d", patientID)
	}
	defer tx.Rollback(ctx)
	for _, e := range evs {
		if err != nil {
			break
		}
		_, err = tx.Exec(ctx, `INSERT INTO alert_events (patient_id, alert_id, state, rule, severity, title, code, by_ref, at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, patientID, e.AlertID, e.State, e.Rule, e.Severity, e.Title, e.Code, e.By, norm(e.At))
	}
	if err == nil {
		err = tx.Commit(ctx)
	}
	if err != nil {
		return wrap(err, "store alert events of patient %d", patientID)
	}
	return nil
}

// AlertEventsBetween lists a patient's alert events in [from, to), oldest
// first.
func (s *DB) AlertEventsBetween(ctx context.Context, patientID int64, from, to time.Time) ([]store.AlertEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, patient_id, alert_id, state, rule, severity, title, code, by_ref, at
		FROM alert_events WHERE patient_id = $1 AND at >= $2 AND at < $3 ORDER BY at, id`, patientID, norm(from), norm(to))
	out, err := collect(rows, err, func(r pgx.Row) (store.AlertEvent, error) {
		var e store.AlertEvent
		err := r.Scan(&e.ID, &e.PatientID, &e.AlertID, &e.State, &e.Rule, &e.Severity, &e.Title, &e.Code, &e.By, utc(&e.At))
		return e, err
	})
	if err != nil {
		return nil, wrap(err, "list alert events of patient %d", patientID)
	}
	return out, nil
}
