package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// SetWeeklyHours replaces a physician's weekly hours and slot length.
func (s *DB) SetWeeklyHours(ctx context.Context, physicianID int64, hours []scheduling.WeeklyHours, slot time.Duration) error {
	if slot < time.Minute {
		return fmt.Errorf("set weekly hours: slot length %s is under a minute", slot)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set weekly hours: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO schedules (physician_id, slot_minutes) VALUES (?, ?)
		ON CONFLICT (physician_id) DO UPDATE SET slot_minutes = excluded.slot_minutes`, physicianID, int(slot/time.Minute)); err != nil {
		return fmt.Errorf("set weekly hours: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM weekly_hours WHERE physician_id = ?`, physicianID); err != nil {
		return fmt.Errorf("set weekly hours: %w", err)
	}
	for _, h := range hours {
		if _, err := tx.ExecContext(ctx, `INSERT INTO weekly_hours (physician_id, weekday, start_minute, end_minute) VALUES (?, ?, ?, ?)`,
			physicianID, int(h.Weekday), h.Start, h.End); err != nil {
			return fmt.Errorf("set weekly hours %v %d-%d: %w", h.Weekday, h.Start, h.End, err)
		}
	}
	return tx.Commit()
}

// Availability loads a physician's zone, slot length and weekly hours.
func (s *DB) Availability(ctx context.Context, physicianID int64) (scheduling.Availability, error) {
	var a scheduling.Availability
	var zone string
	var minutes int
	err := s.db.QueryRowContext(ctx, `SELECT u.time_zone, s.slot_minutes FROM schedules s JOIN users u ON u.id = s.physician_id WHERE s.physician_id = ?`, physicianID).
		Scan(&zone, &minutes)
	if err != nil {
		return a, notFound(err, fmt.Sprintf("availability of %d", physicianID))
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return a, fmt.Errorf("availability of %d: zone %q: %w", physicianID, zone, err)
	}
	a.Zone, a.SlotLength = loc, time.Duration(minutes)*time.Minute
	rows, err := s.db.QueryContext(ctx, `SELECT weekday, start_minute, end_minute FROM weekly_hours WHERE physician_id = ? ORDER BY weekday, start_minute`, physicianID)
	if err != nil {
		return a, fmt.Errorf("availability of %d: %w", physicianID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var h scheduling.WeeklyHours
		var wd int
		if err := rows.Scan(&wd, &h.Start, &h.End); err != nil {
			return a, err
		}
		h.Weekday = time.Weekday(wd)
		a.Weekly = append(a.Weekly, h)
	}
	return a, rows.Err()
}

const apptCols = `id, physician_id, patient_id, start_at, end_at, status, created_at`

func scanAppointment(row interface{ Scan(...any) error }) (scheduling.Appointment, error) {
	var a scheduling.Appointment
	var start, end, created int64
	err := row.Scan(&a.ID, &a.PhysicianID, &a.PatientID, &start, &end, &a.Status, &created)
	a.Start, a.End, a.CreatedAt = at(start), at(end), at(created)
	return a, err
}

// BookAppointment stores a appointment unless it overlaps a live appointment
// of the same physician. The check and the insert share one write
// transaction (BEGIN IMMEDIATE serialises writers), and a trigger enforces
// the same rule inside the database.
func (s *DB) BookAppointment(ctx context.Context, a scheduling.Appointment) (scheduling.Appointment, error) {
	if !a.End.After(a.Start) {
		return a, fmt.Errorf("book appointment: end %s is not after start %s", a.End, a.Start)
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = time.Now().UTC()
	}
	if a.Status == "" {
		a.Status = scheduling.StatusBooked
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return a, fmt.Errorf("book appointment: %w", err)
	}
	defer tx.Rollback()
	var clash int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM appointments WHERE physician_id = ?
		AND status NOT IN ('cancelled', 'entered-in-error') AND start_at < ? AND ? < end_at`,
		a.PhysicianID, ms(a.End), ms(a.Start)).Scan(&clash); err != nil {
		return a, fmt.Errorf("book appointment: %w", err)
	}
	if clash > 0 {
		return a, fmt.Errorf("book appointment at %s: %w", a.Start.Format(time.RFC3339), scheduling.ErrSlotTaken)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO appointments (physician_id, patient_id, start_at, end_at, status, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		a.PhysicianID, a.PatientID, ms(a.Start), ms(a.End), a.Status, ms(a.CreatedAt))
	if err != nil {
		if strings.Contains(err.Error(), "overlaps another") {
			return a, fmt.Errorf("book appointment at %s: %w", a.Start.Format(time.RFC3339), scheduling.ErrSlotTaken)
		}
		return a, fmt.Errorf("book appointment: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return a, fmt.Errorf("book appointment: %w", err)
	}
	a.ID, _ = res.LastInsertId()
	a.Start, a.End, a.CreatedAt = at(ms(a.Start)), at(ms(a.End)), at(ms(a.CreatedAt))
	return a, nil
}

// AppointmentByID finds an appointment.
func (s *DB) AppointmentByID(ctx context.Context, id int64) (scheduling.Appointment, error) {
	a, err := scanAppointment(s.db.QueryRowContext(ctx, `SELECT `+apptCols+` FROM appointments WHERE id = ?`, id))
	if err != nil {
		return a, notFound(err, fmt.Sprintf("appointment %d", id))
	}
	return a, nil
}

// AppointmentsBetween lists live appointments starting in [from, to), by start.
func (s *DB) AppointmentsBetween(ctx context.Context, physicianID, patientID int64, from, to time.Time) ([]scheduling.Appointment, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+apptCols+` FROM appointments
		WHERE (? = 0 OR physician_id = ?) AND (? = 0 OR patient_id = ?)
		  AND status NOT IN ('cancelled', 'entered-in-error') AND start_at >= ? AND start_at < ?
		ORDER BY start_at, id`, physicianID, physicianID, patientID, patientID, ms(from), ms(to))
	if err != nil {
		return nil, fmt.Errorf("list appointments: %w", err)
	}
	defer rows.Close()
	var out []scheduling.Appointment
	for rows.Next() {
		a, err := scanAppointment(rows)
		if err != nil {
			return nil, fmt.Errorf("list appointments: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// SetAppointmentStatus changes an appointment's status. Reviving a cancelled
// appointment into a time now taken fails with scheduling.ErrSlotTaken.
func (s *DB) SetAppointmentStatus(ctx context.Context, id int64, status scheduling.Status) error {
	err := s.execOne(ctx, fmt.Sprintf("set status of appointment %d", id), `UPDATE appointments SET status = ? WHERE id = ?`, status, id)
	if err != nil && strings.Contains(err.Error(), "overlaps another") {
		return fmt.Errorf("set status of appointment %d: %w", id, scheduling.ErrSlotTaken)
	}
	return err
}

// AppendObservations stores a device's readings and advances its sequence in
// one transaction; a (device, seq, code) already stored is skipped.
func (s *DB) AppendObservations(ctx context.Context, deviceID int64, lastSeq int64, obs []store.Observation) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append observations: %w", err)
	}
	defer tx.Rollback()
	for _, o := range obs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO observations (patient_id, device_id, seq, code, value, unit, effective_at, received_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			o.PatientID, o.DeviceID, o.Seq, o.Code, o.Value, o.Unit, ms(o.EffectiveAt), ms(o.ReceivedAt)); err != nil {
			return fmt.Errorf("append observation seq %d: %w", o.Seq, err)
		}
	}
	if deviceID != 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE credentials SET last_seq = max(last_seq, ?) WHERE id = ? AND kind = 'device'`, lastSeq, deviceID); err != nil {
			return fmt.Errorf("advance device %d: %w", deviceID, err)
		}
	}
	return tx.Commit()
}

// ObservationsBetween lists a patient's observations effective in [from, to).
func (s *DB) ObservationsBetween(ctx context.Context, patientID int64, from, to time.Time) ([]store.Observation, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, patient_id, device_id, seq, code, value, unit, effective_at, received_at
		FROM observations WHERE patient_id = ? AND effective_at >= ? AND effective_at < ? ORDER BY effective_at, id`,
		patientID, ms(from), ms(to))
	if err != nil {
		return nil, fmt.Errorf("list observations: %w", err)
	}
	defer rows.Close()
	var out []store.Observation
	for rows.Next() {
		var o store.Observation
		var eff, rec int64
		if err := rows.Scan(&o.ID, &o.PatientID, &o.DeviceID, &o.Seq, &o.Code, &o.Value, &o.Unit, &eff, &rec); err != nil {
			return nil, fmt.Errorf("list observations: %w", err)
		}
		o.EffectiveAt, o.ReceivedAt = at(eff), at(rec)
		out = append(out, o)
	}
	return out, rows.Err()
}
