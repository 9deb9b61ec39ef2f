package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

const apptCols = `id, physician_id, patient_id, start_at, end_at, status, created_at, visit_type, cancel_reason, sequence, updated_at, zone`

func scanAppointment(row scanner) (scheduling.Appointment, error) {
	var a scheduling.Appointment
	var start, end, created, updated int64
	err := row.Scan(&a.ID, &a.PhysicianID, &a.PatientID, &start, &end, &a.Status, &created, &a.VisitType, &a.CancelReason, &a.Sequence, &updated, &a.Zone)
	a.Start, a.End, a.CreatedAt, a.UpdatedAt = at(start), at(end), at(created), at(updated)
	return a, err
}

// liveSQL is scheduling.Status.Live in SQL; the no-overlap triggers and the
// appointments_live_end index spell the same rule.
const liveSQL = `status NOT IN ('cancelled', 'entered-in-error')`

// BookAppointment stores an appointment (status booked if empty, CreatedAt
// c.At or now if zero) with its booking event, and returns it with its ID and
// its times as stored: UTC, to the millisecond. A live appointment that
// overlaps another live one of the same physician is refused with an error
// wrapping scheduling.ErrSlotTaken.
//
// The overlap check and the insert share one BEGIN IMMEDIATE transaction,
// which holds SQLite's write lock from its start, so concurrent bookings are
// serialised and exactly one of several overlapping attempts succeeds. The
// appointments_no_overlap triggers hold the same rule in the database for
// any writer that skips this check.
func (s *DB) BookAppointment(ctx context.Context, a scheduling.Appointment, c store.Change) (scheduling.Appointment, error) {
	if a.PhysicianID == 0 || a.PatientID == 0 {
		return a, fmt.Errorf("book appointment: physician and patient are required")
	}
	if !a.End.After(a.Start) {
		return a, fmt.Errorf("book appointment: end %s is not after start %s", a.End, a.Start)
	}
	if a.Status == "" {
		a.Status = scheduling.StatusBooked
	}
	if !a.Status.Valid() {
		return a, fmt.Errorf("book appointment: unknown status %q", a.Status)
	}
	c.At = changeTime(c.At)
	if a.CreatedAt.IsZero() {
		a.CreatedAt = c.At
	}
	a.Start, a.End, a.CreatedAt, a.UpdatedAt = norm(a.Start), norm(a.End), norm(a.CreatedAt), c.At
	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE: see dsn
	if err != nil {
		return a, wrap(err, "book appointment")
	}
	defer tx.Rollback()
	if a.Status.Live() {
		if err := checkFree(ctx, tx, a.PhysicianID, 0, a.Start, a.End); err != nil {
			return a, fmt.Errorf("book appointment with %d at %s: %w", a.PhysicianID, a.Start.Format(time.RFC3339), err)
		}
	}
	// The zone, unless given, is the physician's as the booking commits.
	err = tx.QueryRowContext(ctx, `INSERT INTO appointments (physician_id, patient_id, start_at, end_at, status, created_at, visit_type, cancel_reason, sequence, updated_at, zone)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, coalesce(nullif(?, ''), (SELECT time_zone FROM users WHERE id = ?), 'UTC')) RETURNING id, zone`,
		a.PhysicianID, a.PatientID, ms(a.Start), ms(a.End), a.Status, ms(a.CreatedAt), a.VisitType, a.CancelReason, a.Sequence, ms(a.UpdatedAt),
		a.Zone, a.PhysicianID).Scan(&a.ID, &a.Zone)
	if isOverlap(err) {
		return a, fmt.Errorf("book appointment with %d at %s: %w", a.PhysicianID, a.Start.Format(time.RFC3339), scheduling.ErrSlotTaken)
	}
	if err != nil {
		return a, wrap(err, "book appointment")
	}
	ev := store.AppointmentEvent{AppointmentID: a.ID, Kind: store.EventBooked, ActorID: c.ActorID, At: c.At,
		ToStatus: a.Status, NewStart: a.Start, NewEnd: a.End, Reason: c.Reason}
	if err := addEvent(ctx, tx, ev); err != nil {
		return a, wrap(err, "book appointment")
	}
	if err := tx.Commit(); err != nil {
		return a, wrap(err, "book appointment")
	}
	return a, nil
}

// changeTime is when a change happens: at, or now if zero, as stored.
func changeTime(at time.Time) time.Time {
	if at.IsZero() {
		at = time.Now()
	}
	return norm(at)
}

// checkFree returns scheduling.ErrSlotTaken if a live appointment of the
// physician other than except overlaps [start, end).
func checkFree(ctx context.Context, tx *sql.Tx, physicianID, except int64, start, end time.Time) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM appointments WHERE physician_id = ? AND id <> ? AND `+liveSQL+`
		AND end_at > ? AND start_at < ? LIMIT 1`, physicianID, except, ms(start), ms(end)).Scan(&one)
	switch {
	case err == nil:
		return scheduling.ErrSlotTaken
	case errors.Is(err, sql.ErrNoRows):
		return nil
	}
	return err
}

func addEvent(ctx context.Context, tx *sql.Tx, e store.AppointmentEvent) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO appointment_events (appointment_id, kind, actor_id, at, from_status, to_status, old_start, old_end, new_start, new_end, reason)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.AppointmentID, e.Kind, e.ActorID, ms(e.At), e.FromStatus, e.ToStatus,
		ms(e.OldStart), ms(e.OldEnd), ms(e.NewStart), ms(e.NewEnd), e.Reason)
	return err
}

// revokeJoinLinks revokes every live join link of an appointment.
func revokeJoinLinks(ctx context.Context, tx *sql.Tx, appointmentID int64, at time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE credentials SET revoked_at = ? WHERE kind = 'join' AND appointment_id = ? AND revoked_at = 0`,
		ms(at), appointmentID)
	if err != nil {
		return err
	}
	// The sessions those links opened end with them.
	_, err = tx.ExecContext(ctx, `DELETE FROM sessions WHERE appointment_id = ?`, appointmentID)
	return err
}

// AppointmentByID finds an appointment, whatever its status.
func (s *DB) AppointmentByID(ctx context.Context, id int64) (scheduling.Appointment, error) {
	return appointmentByID(ctx, s.r, id)
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func appointmentByID(ctx context.Context, q queryRower, id int64) (scheduling.Appointment, error) {
	a, err := scanAppointment(q.QueryRowContext(ctx, `SELECT `+apptCols+` FROM appointments WHERE id = ?`, id))
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

// SearchAppointments returns one page of the appointments q selects, by
// start then ID, and how many it selects in all.
func (s *DB) SearchAppointments(ctx context.Context, q store.AppointmentQuery) ([]scheduling.Appointment, int, error) {
	where := []string{"1 = 1"}
	var args []any
	if q.PhysicianID != 0 {
		where, args = append(where, "physician_id = ?"), append(args, q.PhysicianID)
	}
	if q.PatientID != 0 {
		where, args = append(where, "patient_id = ?"), append(args, q.PatientID)
	}
	if !q.From.IsZero() {
		where, args = append(where, "start_at >= ?"), append(args, ms(q.From))
	}
	if !q.To.IsZero() {
		where, args = append(where, "start_at < ?"), append(args, ms(q.To))
	}
	if len(q.Statuses) > 0 {
		where = append(where, "status IN (?"+strings.Repeat(", ?", len(q.Statuses)-1)+")")
		for _, st := range q.Statuses {
			args = append(args, st)
		}
	}
	cond := strings.Join(where, " AND ")
	var total int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM appointments WHERE `+cond, args...).Scan(&total); err != nil {
		return nil, 0, wrap(err, "search appointments")
	}
	limit, offset := page(q.Limit, q.Offset)
	rows, err := s.r.QueryContext(ctx, `SELECT `+apptCols+` FROM appointments WHERE `+cond+` ORDER BY start_at, id LIMIT ? OFFSET ?`,
		append(args, limit, offset)...)
	out, err := collect(rows, err, scanAppointment)
	if err != nil {
		return nil, 0, wrap(err, "search appointments")
	}
	return out, total, nil
}

// RescheduleAppointment moves a booked appointment to [start, end) in one
// transaction: the overlap check (the appointment's own time excepted),
// the move, Sequence+1, the revocation of its join links and the history
// entry. A time overlapping another live appointment gives
// scheduling.ErrSlotTaken; an appointment not booked gives
// scheduling.ErrTransition; an unknown one store.ErrNotFound.
func (s *DB) RescheduleAppointment(ctx context.Context, id int64, start, end time.Time, c store.Change) (scheduling.Appointment, error) {
	what := fmt.Sprintf("reschedule appointment %d", id)
	if !end.After(start) {
		return scheduling.Appointment{}, fmt.Errorf("%s: end %s is not after start %s", what, end, start)
	}
	start, end, c.At = norm(start), norm(end), changeTime(c.At)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return scheduling.Appointment{}, wrap(err, "%s", what)
	}
	defer tx.Rollback()
	a, err := appointmentByID(ctx, tx, id)
	if err != nil {
		return a, err
	}
	if a.Status != scheduling.StatusBooked {
		return a, fmt.Errorf("%s: %w: only a booked visit can be moved, this one is %s", what, scheduling.ErrTransition, a.Status)
	}
	if err := checkFree(ctx, tx, a.PhysicianID, a.ID, start, end); err != nil {
		return a, fmt.Errorf("%s to %s: %w", what, start.Format(time.RFC3339), err)
	}
	ev := store.AppointmentEvent{AppointmentID: id, Kind: store.EventRescheduled, ActorID: c.ActorID, At: c.At,
		FromStatus: a.Status, ToStatus: a.Status, OldStart: a.Start, OldEnd: a.End, NewStart: start, NewEnd: end, Reason: c.Reason}
	// A move is chosen on the physician's clock as it is now.
	var zone string
	err = tx.QueryRowContext(ctx, `UPDATE appointments SET start_at = ?, end_at = ?, sequence = sequence + 1, updated_at = ?,
		zone = coalesce((SELECT time_zone FROM users WHERE id = physician_id), zone) WHERE id = ? RETURNING zone`,
		ms(start), ms(end), ms(c.At), id).Scan(&zone)
	if isOverlap(err) {
		return a, fmt.Errorf("%s: %w", what, scheduling.ErrSlotTaken)
	}
	if err == nil {
		err = revokeJoinLinks(ctx, tx, id, c.At)
	}
	if err == nil {
		err = addEvent(ctx, tx, ev)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return a, wrap(err, "%s", what)
	}
	a.Start, a.End, a.Zone, a.Sequence, a.UpdatedAt = start, end, zone, a.Sequence+1, c.At
	return a, nil
}

// SetAppointmentStatus changes an appointment's status as the lifecycle
// allows, in one transaction with its history entry. Cancelling or marking
// entered-in-error stores c.Reason, increments Sequence (the patient's
// calendar must drop the visit) and revokes the join links. An unknown ID
// gives store.ErrNotFound; a change the lifecycle forbids
// scheduling.ErrTransition.
func (s *DB) SetAppointmentStatus(ctx context.Context, id int64, status scheduling.Status, c store.Change) (scheduling.Appointment, error) {
	what := fmt.Sprintf("set status of appointment %d to %s", id, status)
	c.At = changeTime(c.At)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return scheduling.Appointment{}, wrap(err, "%s", what)
	}
	defer tx.Rollback()
	a, err := appointmentByID(ctx, tx, id)
	if err != nil {
		return a, err
	}
	if err := a.Status.CheckTransition(status); err != nil {
		return a, fmt.Errorf("%s: %w", what, err)
	}
	ends := !status.Live()
	seq, reason := a.Sequence, a.CancelReason
	if ends {
		seq, reason = seq+1, c.Reason
	}
	ev := store.AppointmentEvent{AppointmentID: id, Kind: store.EventStatus, ActorID: c.ActorID, At: c.At,
		FromStatus: a.Status, ToStatus: status, Reason: c.Reason}
	_, err = tx.ExecContext(ctx, `UPDATE appointments SET status = ?, sequence = ?, cancel_reason = ?, updated_at = ? WHERE id = ?`,
		status, seq, reason, ms(c.At), id)
	if err == nil && ends {
		err = revokeJoinLinks(ctx, tx, id, c.At)
	}
	if err == nil {
		err = addEvent(ctx, tx, ev)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return a, wrap(err, "%s", what)
	}
	a.Status, a.Sequence, a.CancelReason, a.UpdatedAt = status, seq, reason, c.At
	return a, nil
}

// AppointmentHistory lists an appointment's events, oldest first. An
// unknown appointment gives store.ErrNotFound.
func (s *DB) AppointmentHistory(ctx context.Context, id int64) ([]store.AppointmentEvent, error) {
	if _, err := s.AppointmentByID(ctx, id); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, appointment_id, kind, actor_id, at, from_status, to_status, old_start, old_end, new_start, new_end, reason
		FROM appointment_events WHERE appointment_id = ? ORDER BY id`, id)
	out, err := collect(rows, err, func(r scanner) (store.AppointmentEvent, error) {
		var e store.AppointmentEvent
		var when, os, oe, ns, ne int64
		err := r.Scan(&e.ID, &e.AppointmentID, &e.Kind, &e.ActorID, &when, &e.FromStatus, &e.ToStatus, &os, &oe, &ns, &ne, &e.Reason)
		e.At, e.OldStart, e.OldEnd, e.NewStart, e.NewEnd = at(when), at(os), at(oe), at(ns), at(ne)
		return e, err
	})
	if err != nil {
		return nil, wrap(err, "history of appointment %d", id)
	}
	return out, nil
}
