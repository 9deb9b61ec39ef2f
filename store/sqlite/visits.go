package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/bedside-health/bedside/scheduling"
)

// SetWeeklyHours replaces a physician's weekly hours and slot length, which
// must be a whole number of minutes. An unknown physician gives
// store.ErrNotFound.
func (s *DB) SetWeeklyHours(ctx context.Context, physicianID int64, hours []scheduling.WeeklyHours, slot time.Duration) error {
	if slot < time.Minute || slot%time.Minute != 0 {
		return fmt.Errorf("set weekly hours of %d: slot length %s is not a whole number of minutes", physicianID, slot)
	}
	for _, h := range hours {
		if h.Weekday < time.Sunday || h.Weekday > time.Saturday || h.Start < 0 || h.End > 24*60 || h.Start >= h.End {
			return fmt.Errorf("set weekly hours of %d: bad block %v %d-%d", physicianID, h.Weekday, h.Start, h.End)
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap(err, "set weekly hours of %d", physicianID)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO schedules (physician_id, slot_minutes) VALUES (?, ?)
		ON CONFLICT (physician_id) DO UPDATE SET slot_minutes = excluded.slot_minutes`, physicianID, int(slot/time.Minute)); err != nil {
		return wrap(err, "set weekly hours of %d", physicianID)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM weekly_hours WHERE physician_id = ?`, physicianID); err != nil {
		return wrap(err, "set weekly hours of %d", physicianID)
	}
	for _, h := range hours {
		if _, err := tx.ExecContext(ctx, `INSERT INTO weekly_hours (physician_id, weekday, start_minute, end_minute) VALUES (?, ?, ?, ?)`,
			physicianID, int(h.Weekday), h.Start, h.End); err != nil {
			return wrap(err, "set weekly hours of %d: %v %d-%d", physicianID, h.Weekday, h.Start, h.End)
		}
	}
	if err := tx.Commit(); err != nil {
		return wrap(err, "set weekly hours of %d", physicianID)
	}
	return nil
}

// Availability loads a physician's zone (the user's TimeZone), slot length
// and weekly hours, ordered by weekday and start. A physician whose hours were
// never set gives store.ErrNotFound.
func (s *DB) Availability(ctx context.Context, physicianID int64) (scheduling.Availability, error) {
	var a scheduling.Availability
	var zone string
	var minutes int
	err := s.r.QueryRowContext(ctx, `SELECT u.time_zone, s.slot_minutes FROM schedules s JOIN users u ON u.id = s.physician_id WHERE s.physician_id = ?`, physicianID).
		Scan(&zone, &minutes)
	if err != nil {
		return a, wrap(err, "availability of %d", physicianID)
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return a, fmt.Errorf("availability of %d: zone %q: %w", physicianID, zone, err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT weekday, start_minute, end_minute FROM weekly_hours WHERE physician_id = ? ORDER BY weekday, start_minute`, physicianID)
	weekly, err := collect(rows, err, func(r scanner) (scheduling.WeeklyHours, error) {
		var h scheduling.WeeklyHours
		var wd int
		err := r.Scan(&wd, &h.Start, &h.End)
		h.Weekday = time.Weekday(wd)
		return h, err
	})
	if err != nil {
		return a, wrap(err, "availability of %d", physicianID)
	}
	a.Zone, a.SlotLength, a.Weekly = loc, time.Duration(minutes)*time.Minute, weekly
	return a, nil
}

const apptCols = `id, physician_id, patient_id, start_at, end_at, status, created_at`

func scanAppointment(row scanner) (scheduling.Appointment, error) {
	var a scheduling.Appointment
	var start, end, created int64
	err := row.Scan(&a.ID, &a.PhysicianID, &a.PatientID, &start, &end, &a.Status, &created)
	a.Start, a.End, a.CreatedAt = at(start), at(end), at(created)
	return a, err
}

// live reports whether an appointment in status st holds its time; the SQL
// spelling of the same rule is liveSQL.
func live(st scheduling.Status) bool {
	return st != scheduling.StatusCancelled && st != "entered-in-error"
}

const liveSQL = `status NOT IN ('cancelled', 'entered-in-error')`

// BookAppointment stores an appointment (status booked if empty, CreatedAt
// now if zero) and returns it with its ID and its times as stored: UTC, to
// the millisecond. A live appointment that overlaps another live one of the
// same physician is refused with an error wrapping scheduling.ErrSlotTaken.
//
// The overlap check and the insert share one BEGIN IMMEDIATE transaction,
// which holds SQLite's write lock from its start, so concurrent bookings are
// serialised and exactly one of several overlapping attempts succeeds. The
// appointments_no_overlap triggers hold the same rule in the database for
// any writer that skips this check.
func (s *DB) BookAppointment(ctx context.Context, a scheduling.Appointment) (scheduling.Appointment, error) {
	if a.PhysicianID == 0 || a.PatientID == 0 {
		return a, fmt.Errorf("book appointment: physician and patient are required")
	}
	if !a.End.After(a.Start) {
		return a, fmt.Errorf("book appointment: end %s is not after start %s", a.End, a.Start)
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = time.Now()
	}
	if a.Status == "" {
		a.Status = scheduling.StatusBooked
	}
	a.Start, a.End, a.CreatedAt = norm(a.Start), norm(a.End), norm(a.CreatedAt)
	taken := func() error {
		return fmt.Errorf("book appointment with %d at %s: %w", a.PhysicianID, a.Start.Format(time.RFC3339), scheduling.ErrSlotTaken)
	}
	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE: see dsn
	if err != nil {
		return a, wrap(err, "book appointment")
	}
	defer tx.Rollback()
	if live(a.Status) {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM appointments WHERE physician_id = ? AND `+liveSQL+`
			AND end_at > ? AND start_at < ? LIMIT 1`, a.PhysicianID, ms(a.Start), ms(a.End)).Scan(&one)
		if err == nil {
			return a, taken()
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return a, wrap(err, "book appointment")
		}
	}
	err = tx.QueryRowContext(ctx, `INSERT INTO appointments (physician_id, patient_id, start_at, end_at, status, created_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		a.PhysicianID, a.PatientID, ms(a.Start), ms(a.End), a.Status, ms(a.CreatedAt)).Scan(&a.ID)
	if isOverlap(err) {
		return a, taken()
	}
	if err != nil {
		return a, wrap(err, "book appointment")
	}
	if err := tx.Commit(); err != nil {
		return a, wrap(err, "book appointment")
	}
	return a, nil
}

// AppointmentByID finds an appointment, whatever its status.
func (s *DB) AppointmentByID(ctx context.Context, id int64) (scheduling.Appointment, error) {
	a, err := scanAppointment(s.r.QueryRowContext(ctx, `SELECT `+apptCols+` FROM appointments WHERE id = ?`, id))
	if err != nil {
		return a, wrap(err, "appointment %d", id)
	}
	return a, nil
}

// AppointmentsBetween lists live appointments starting in [from, to), by
// start; a physicianID or patientID of 0 matches any.
func (s *DB) AppointmentsBetween(ctx context.Context, physicianID, patientID int64, from, to time.Time) ([]scheduling.Appointment, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+apptCols+` FROM appointments
		WHERE (? = 0 OR physician_id = ?) AND (? = 0 OR patient_id = ?)
		  AND `+liveSQL+` AND start_at >= ? AND start_at < ?
		ORDER BY start_at, id`, physicianID, physicianID, patientID, patientID, ms(from), ms(to))
	out, err := collect(rows, err, scanAppointment)
	if err != nil {
		return nil, wrap(err, "list appointments")
	}
	return out, nil
}

// SetAppointmentStatus changes an appointment's status. An unknown ID gives
// store.ErrNotFound; reviving a cancelled appointment whose time has since
// been taken gives an error wrapping scheduling.ErrSlotTaken.
func (s *DB) SetAppointmentStatus(ctx context.Context, id int64, status scheduling.Status) error {
	err := s.execOne(ctx, fmt.Sprintf("set status of appointment %d to %s", id, status), `UPDATE appointments SET status = ? WHERE id = ?`, status, id)
	if isOverlap(err) {
		return fmt.Errorf("set status of appointment %d: %w", id, scheduling.ErrSlotTaken)
	}
	return err
}
