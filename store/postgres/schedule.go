package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bedside-health/bedside/scheduling"
)

// dateArg is the argument that stores d in a date column.
func dateArg(d scheduling.Date) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC)
}

// SetAvailability replaces a physician's availability, all of it in one
// transaction. The zone is the physician's TimeZone and a.Zone is ignored;
// durations must be whole minutes. An unknown physician gives
// store.ErrNotFound.
func (s *DB) SetAvailability(ctx context.Context, physicianID int64, a scheduling.Availability) error {
	a.Zone = time.UTC // stands in for the physician's zone while validating
	if err := a.Validate(); err != nil {
		return fmt.Errorf("set availability of %d: %w", physicianID, err)
	}
	minutes := func(d time.Duration) int { return int(d / time.Minute) }
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The statements go in one round trip; the first error stops the
		// batch and rolls everything back.
		var b pgx.Batch
		b.Queue(`INSERT INTO schedules (physician_id, slot_minutes, buffer_minutes, notice_minutes, horizon_minutes) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (physician_id) DO UPDATE SET slot_minutes = excluded.slot_minutes, buffer_minutes = excluded.buffer_minutes,
			notice_minutes = excluded.notice_minutes, horizon_minutes = excluded.horizon_minutes`,
			physicianID, minutes(a.SlotLength), minutes(a.Buffer), minutes(a.MinNotice), minutes(a.Horizon))
		for _, table := range []string{"weekly_hours", "override_days", "time_off", "visit_types"} {
			b.Queue(`DELETE FROM `+table+` WHERE physician_id = $1`, physicianID)
		}
		for _, h := range a.Weekly {
			b.Queue(`INSERT INTO weekly_hours (physician_id, weekday, start_minute, end_minute) VALUES ($1, $2, $3, $4)`,
				physicianID, int(h.Weekday), h.Start, h.End)
		}
		for _, o := range a.Overrides {
			b.Queue(`INSERT INTO override_days (physician_id, day) VALUES ($1, $2)`, physicianID, dateArg(o.Date))
			for _, bl := range o.Blocks {
				b.Queue(`INSERT INTO override_blocks (physician_id, day, start_minute, end_minute) VALUES ($1, $2, $3, $4)`,
					physicianID, dateArg(o.Date), bl.Start, bl.End)
			}
		}
		for _, iv := range a.TimeOff {
			b.Queue(`INSERT INTO time_off (physician_id, start_at, end_at) VALUES ($1, $2, $3)`, physicianID, norm(iv.Start), norm(iv.End))
		}
		for i, v := range a.VisitTypes {
			b.Queue(`INSERT INTO visit_types (physician_id, code, name, minutes, position) VALUES ($1, $2, $3, $4, $5)`,
				physicianID, v.Code, v.Name, minutes(v.Duration), i)
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return wrap(err, "set availability of %d", physicianID)
	}
	return nil
}

// Availability loads a physician's availability, with the physician's
// TimeZone as its Zone. A physician whose availability was never set gives
// store.ErrNotFound. All of it is read in one REPEATABLE READ transaction,
// so it is never a mix of before and after a concurrent SetAvailability.
func (s *DB) Availability(ctx context.Context, physicianID int64) (scheduling.Availability, error) {
	var a scheduling.Availability
	what := fmt.Sprintf("availability of %d", physicianID)
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	err := pgx.BeginTxFunc(ctx, s.pool, opts, func(tx pgx.Tx) error {
		var zone string
		var slot, buffer, notice, horizon int64
		err := tx.QueryRow(ctx, `SELECT u.time_zone, s.slot_minutes, s.buffer_minutes, s.notice_minutes, s.horizon_minutes
			FROM schedules s JOIN users u ON u.id = s.physician_id WHERE s.physician_id = $1`, physicianID).
			Scan(&zone, &slot, &buffer, &notice, &horizon)
		if err != nil {
			return err
		}
		if a.Zone, err = time.LoadLocation(zone); err != nil {
			return fmt.Errorf("zone %q: %w", zone, err)
		}
		a.SlotLength, a.Buffer = time.Duration(slot)*time.Minute, time.Duration(buffer)*time.Minute
		a.MinNotice, a.Horizon = time.Duration(notice)*time.Minute, time.Duration(horizon)*time.Minute

		rows, err := tx.Query(ctx, `SELECT weekday, start_minute, end_minute FROM weekly_hours WHERE physician_id = $1 ORDER BY weekday, start_minute`, physicianID)
		a.Weekly, err = collect(rows, err, func(r pgx.Row) (scheduling.WeeklyHours, error) {
			var h scheduling.WeeklyHours
			var day int16
			err := r.Scan(&day, &h.Start, &h.End)
			h.Weekday = time.Weekday(day)
			return h, err
		})
		if err != nil {
			return fmt.Errorf("weekly hours: %w", err)
		}
		rows, err = tx.Query(ctx, `SELECT d.day, b.start_minute, b.end_minute FROM override_days d
			LEFT JOIN override_blocks b ON b.physician_id = d.physician_id AND b.day = d.day
			WHERE d.physician_id = $1 ORDER BY d.day, b.start_minute`, physicianID)
		type dayBlock struct {
			day        time.Time
			start, end *int
		}
		blocks, err := collect(rows, err, func(r pgx.Row) (dayBlock, error) {
			var b dayBlock
			err := r.Scan(&b.day, &b.start, &b.end)
			return b, err
		})
		if err != nil {
			return fmt.Errorf("overrides: %w", err)
		}
		for _, b := range blocks {
			d := scheduling.DateOf(b.day) // a date column reads back as UTC midnight
			if n := len(a.Overrides); n == 0 || a.Overrides[n-1].Date != d {
				a.Overrides = append(a.Overrides, scheduling.Override{Date: d})
			}
			if b.start != nil {
				o := &a.Overrides[len(a.Overrides)-1]
				o.Blocks = append(o.Blocks, scheduling.Block{Start: *b.start, End: *b.end})
			}
		}
		rows, err = tx.Query(ctx, `SELECT start_at, end_at FROM time_off WHERE physician_id = $1 ORDER BY start_at, id`, physicianID)
		a.TimeOff, err = collect(rows, err, func(r pgx.Row) (scheduling.Interval, error) {
			var iv scheduling.Interval
			err := r.Scan(utc(&iv.Start), utc(&iv.End))
			return iv, err
		})
		if err != nil {
			return fmt.Errorf("time off: %w", err)
		}
		rows, err = tx.Query(ctx, `SELECT code, name, minutes FROM visit_types WHERE physician_id = $1 ORDER BY position`, physicianID)
		a.VisitTypes, err = collect(rows, err, func(r pgx.Row) (scheduling.VisitType, error) {
			var v scheduling.VisitType
			var m int64
			err := r.Scan(&v.Code, &v.Name, &m)
			v.Duration = time.Duration(m) * time.Minute
			return v, err
		})
		if err != nil {
			return fmt.Errorf("visit types: %w", err)
		}
		return nil
	})
	if err != nil {
		return scheduling.Availability{}, wrap(err, "%s", what)
	}
	return a, nil
}
