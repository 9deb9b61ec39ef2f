package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/bedside-health/bedside/scheduling"
)

// SetAvailability replaces a physician's availability, all of it in one
// transaction. The zone is the physician's TimeZone and a.Zone is ignored;
// durations must be whole minutes. An unknown physician gives
// store.ErrNotFound.
func (s *DB) SetAvailability(ctx context.Context, physicianID int64, a scheduling.Availability) error {
	a.Zone = time.UTC // stands in for the physician's zone while validating
	if err := a.Validate(); err != nil {
		return fmt.Errorf("set availability of %d: %w", physicianID, err)
	}
	what := fmt.Sprintf("set availability of %d", physicianID)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap(err, "%s", what)
	}
	defer tx.Rollback()
	exec := func(q string, args ...any) error {
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, q, args...)
		return err
	}
	minutes := func(d time.Duration) int { return int(d / time.Minute) }
	exec(`INSERT INTO schedules (physician_id, slot_minutes, buffer_minutes, notice_minutes, horizon_minutes) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (physician_id) DO UPDATE SET slot_minutes = excluded.slot_minutes, buffer_minutes = excluded.buffer_minutes,
		notice_minutes = excluded.notice_minutes, horizon_minutes = excluded.horizon_minutes`,
		physicianID, minutes(a.SlotLength), minutes(a.Buffer), minutes(a.MinNotice), minutes(a.Horizon))
	for _, table := range []string{"weekly_hours", "override_days", "time_off", "visit_types"} {
		exec(`DELETE FROM `+table+` WHERE physician_id = ?`, physicianID)
	}
	for _, h := range a.Weekly {
		exec(`INSERT INTO weekly_hours (physician_id, weekday, start_minute, end_minute) VALUES (?, ?, ?, ?)`,
			physicianID, int(h.Weekday), h.Start, h.End)
	}
	for _, o := range a.Overrides {
		exec(`INSERT INTO override_days (physician_id, day) VALUES (?, ?)`, physicianID, o.Date.String())
		for _, b := range o.Blocks {
			exec(`INSERT INTO override_blocks (physician_id, day, start_minute, end_minute) VALUES (?, ?, ?, ?)`,
				physicianID, o.Date.String(), b.Start, b.End)
		}
	}
	for _, iv := range a.TimeOff {
		exec(`INSERT INTO time_off (physician_id, start_at, end_at) VALUES (?, ?, ?)`, physicianID, ms(iv.Start), ms(iv.End))
	}
	for i, v := range a.VisitTypes {
		exec(`INSERT INTO visit_types (physician_id, code, name, minutes, position) VALUES (?, ?, ?, ?, ?)`,
			physicianID, v.Code, v.Name, minutes(v.Duration), i)
	}
	if err != nil {
		return wrap(err, "%s", what)
	}
	if err := tx.Commit(); err != nil {
		return wrap(err, "%s", what)
	}
	return nil
}

// Availability loads a physician's availability, with the physician's
// TimeZone as its Zone. A physician whose availability was never set gives
// store.ErrNotFound. All of it is read in one transaction, so it is never a
// mix of before and after a concurrent SetAvailability.
func (s *DB) Availability(ctx context.Context, physicianID int64) (scheduling.Availability, error) {
	var a scheduling.Availability
	what := fmt.Sprintf("availability of %d", physicianID)
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return a, wrap(err, "%s", what)
	}
	defer tx.Rollback()
	var zone string
	var slot, buffer, notice, horizon int64
	err = tx.QueryRowContext(ctx, `SELECT u.time_zone, s.slot_minutes, s.buffer_minutes, s.notice_minutes, s.horizon_minutes
		FROM schedules s JOIN users u ON u.id = s.physician_id WHERE s.physician_id = ?`, physicianID).
		Scan(&zone, &slot, &buffer, &notice, &horizon)
	if err != nil {
		return a, wrap(err, "%s", what)
	}
	if a.Zone, err = time.LoadLocation(zone); err != nil {
		return a, fmt.Errorf("%s: zone %q: %w", what, zone, err)
	}
	a.SlotLength, a.Buffer = time.Duration(slot)*time.Minute, time.Duration(buffer)*time.Minute
	a.MinNotice, a.Horizon = time.Duration(notice)*time.Minute, time.Duration(horizon)*time.Minute

	rows, err := tx.QueryContext(ctx, `SELECT weekday, start_minute, end_minute FROM weekly_hours WHERE physician_id = ? ORDER BY weekday, start_minute`, physicianID)
	a.Weekly, err = collect(rows, err, func(r scanner) (scheduling.WeeklyHours, error) {
		var h scheduling.WeeklyHours
		err := r.Scan(&h.Weekday, &h.Start, &h.End)
		return h, err
	})
	if err != nil {
		return a, wrap(err, "%s: weekly hours", what)
	}
	rows, err = tx.QueryContext(ctx, `SELECT d.day, b.start_minute, b.end_minute FROM override_days d
		LEFT JOIN override_blocks b ON b.physician_id = d.physician_id AND b.day = d.day
		WHERE d.physician_id = ? ORDER BY d.day, b.start_minute`, physicianID)
	type dayBlock struct {
		day        string
		start, end *int
	}
	blocks, err := collect(rows, err, func(r scanner) (dayBlock, error) {
		var b dayBlock
		err := r.Scan(&b.day, &b.start, &b.end)
		return b, err
	})
	if err != nil {
		return a, wrap(err, "%s: overrides", what)
	}
	for _, b := range blocks {
		if n := len(a.Overrides); n == 0 || a.Overrides[n-1].Date.String() != b.day {
			d, err := scheduling.ParseDate(b.day)
			if err != nil {
				return a, fmt.Errorf("%s: %w", what, err)
			}
			a.Overrides = append(a.Overrides, scheduling.Override{Date: d})
		}
		if b.start != nil {
			o := &a.Overrides[len(a.Overrides)-1]
			o.Blocks = append(o.Blocks, scheduling.Block{Start: *b.start, End: *b.end})
		}
	}
	rows, err = tx.QueryContext(ctx, `SELECT start_at, end_at FROM time_off WHERE physician_id = ? ORDER BY start_at`, physicianID)
	a.TimeOff, err = collect(rows, err, func(r scanner) (scheduling.Interval, error) {
		var start, end int64
		err := r.Scan(&start, &end)
		return scheduling.Interval{Start: at(start), End: at(end)}, err
	})
	if err != nil {
		return a, wrap(err, "%s: time off", what)
	}
	rows, err = tx.QueryContext(ctx, `SELECT code, name, minutes FROM visit_types WHERE physician_id = ? ORDER BY position`, physicianID)
	a.VisitTypes, err = collect(rows, err, func(r scanner) (scheduling.VisitType, error) {
		var v scheduling.VisitType
		var m int64
		err := r.Scan(&v.Code, &v.Name, &m)
		v.Duration = time.Duration(m) * time.Minute
		return v, err
	})
	if err != nil {
		return a, wrap(err, "%s: visit types", what)
	}
	return a, nil
}
