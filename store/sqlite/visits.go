package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/bedside-health/bedside/store"
)

const obsCols = `id, patient_id, device_id, seq, code, value, unit, effective_at, received_at, flags, relayed_id`

func scanObservation(r scanner) (store.Observation, error) {
	var o store.Observation
	var eff, rec int64
	var flags string
	err := r.Scan(&o.ID, &o.PatientID, &o.DeviceID, &o.Seq, &o.Code, &o.Value, &o.Unit, &eff, &rec, &flags, &o.Relayed)
	o.EffectiveAt, o.ReceivedAt, o.Flags = at(eff), at(rec), store.SplitFlags(flags)
	return o, err
}

// searchAll selects observations by one condition over the table: a
// patient's through observations_patient (patient, time, code), others by
// scanning it.
func (s *DB) searchAll(ctx context.Context, q store.ObservationQuery) ([]store.Observation, int, error) {
	from, to := queryBounds(q)
	where, args := rowCond(q, from, to)
	cond := " WHERE " + where
	var total int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM observations o`+cond, args...).Scan(&total); err != nil {
		return nil, 0, wrap(err, "count observations")
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+prefixed("o.", obsCols)+` FROM observations o`+cond+
		` ORDER BY o.effective_at, o.id LIMIT ? OFFSET ?`, append(args, pageLimit(q), q.Offset)...)
	out, err := collect(rows, err, scanObservation)
	if err != nil {
		return nil, 0, wrap(err, "search observations")
	}
	return out, total, nil
}

// rowCond is the condition on the rows (o) that q selects effective in
// [start, end), and its parameters.
func rowCond(q store.ObservationQuery, start, end int64) (string, []any) {
	var where []string
	var args []any
	if q.PatientID != 0 {
		where, args = append(where, "o.patient_id = ?"), append(args, q.PatientID)
	}
	if len(q.Codes) > 0 {
		where = append(where, "o.code IN ("+placeholders(len(q.Codes))+")")
		for _, c := range q.Codes {
			args = append(args, c)
		}
	}
	where, args = append(where, "o.effective_at >= ?", "o.effective_at < ?"), append(args, start, end)
	more, moreArgs := searchFilter(q)
	return strings.Join(append(where, more...), " AND "), append(args, moreArgs...)
}

// searchFilter is the conditions of q on an observation o other than its
// patient, codes and time: its device, and with Panels not a panel's
// diastolic reading.
func searchFilter(q store.ObservationQuery) (where []string, args []any) {
	if q.DeviceID != 0 {
		// A device's readings are its patient's: seek the patient's
		// readings (there is no index by device; migration 0017).
		where, args = append(where, "o.device_id = ?", "o.patient_id = (SELECT user_id FROM credentials WHERE id = ?)"), append(args, q.DeviceID, q.DeviceID)
	}
	switch {
	case q.Relayed > 0:
		where, args = append(where, "o.relayed_id = ?"), append(args, q.Relayed)
	case q.Relayed == store.NotRelayed:
		where = append(where, "o.relayed_id = 0")
	}
	if q.Panels {
		where = append(where, `NOT (o.code = ? AND EXISTS (SELECT 1 FROM observations p WHERE p.code = ?
			AND p.patient_id = o.patient_id AND p.device_id = o.device_id AND p.seq = o.seq AND p.effective_at = o.effective_at))`)
		args = append(args, store.CodeDiastolic, store.CodeSystolic)
	}
	return where, args
}

// pageLimit is the most observations a page of q holds.
func pageLimit(q store.ObservationQuery) int {
	if q.Limit <= 0 {
		return 100
	}
	return q.Limit
}

// placeholders is n comma-separated query parameters.
func placeholders(n int) string {
	return "?" + strings.Repeat(", ?", n-1)
}

// searchByMinute selects a patient's observations of some codes.
//
// observations_patient (patient, time, code) orders a patient's readings
// by time: a sparse code's few are spread among all the others, which a
// walk of the range would visit. Instead the minutes with readings of the
// codes come from observation_minutes (patient, code, minute), and only
// those minutes of the index are walked, consecutive minutes (runs) in
// one walk: once to count each run's readings, which gives the total and
// the runs the page falls in, then once more for the page, within those
// runs. A minute holds all the readings of its times, so a page cut at
// minutes keeps the order by time then ID. Both read one snapshot.
func (s *DB) searchByMinute(ctx context.Context, q store.ObservationQuery) ([]store.Observation, int, error) {
	from, to := queryBounds(q)
	if from >= to {
		return nil, 0, nil
	}
	// The patient, as a parameter or (a device's readings only) a
	// subquery that SQLite evaluates once.
	patient, patientArg := "?", any(q.PatientID)
	if q.PatientID == 0 {
		patient, patientArg = "(SELECT user_id FROM credentials WHERE id = ?)", q.DeviceID
	}
	codes := "(" + placeholders(len(q.Codes)) + ")"
	var codeArgs []any
	for _, c := range q.Codes {
		codeArgs = append(codeArgs, c)
	}
	filter, filterArgs := searchFilter(q)
	filter = append([]string{"o.code IN " + codes}, filter...)
	// The readings of q effective in [start, end), SQL expressions; with
	// bounds, parameters bound to them.
	inRun := func(start, end string, bounds ...any) (string, []any) {
		cond := "o.patient_id = " + patient + " AND o.effective_at >= " + start + " AND o.effective_at < " + end +
			" AND " + strings.Join(filter, " AND ")
		args := append(append([]any{patientArg}, bounds...), codeArgs...)
		return cond, append(args, filterArgs...)
	}

	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, wrap(err, "search observations")
	}
	defer tx.Rollback()

	// Consecutive minutes are counted together, as runs: a code with
	// readings every minute is one walk, as it would be without the
	// minutes.
	// A run's bounds are computed once, in r, where the walk's can be
	// simple columns.
	cond, args := inRun("r.start", "r.end") // the select list's parameters come first
	args = append(append(append(args, from, to, patientArg), codeArgs...), from/minuteMillis, (to-1)/minuteMillis)
	rows, err := tx.QueryContext(ctx, `SELECT r.start, r.end, (SELECT count(*) FROM observations o WHERE `+cond+`)
		FROM (SELECT max(`+minuteStart("min(minute)")+`, ?) AS start, min(`+minuteEnd("max(minute)")+`, ?) AS end FROM (
			SELECT minute, minute - row_number() OVER (ORDER BY minute) AS run FROM (
				SELECT DISTINCT minute FROM observation_minutes WHERE patient_id = `+patient+` AND code IN `+codes+`
					AND minute >= ? AND minute <= ?))
			GROUP BY run) AS r
		ORDER BY r.start`, args...)
	if err != nil {
		return nil, 0, wrap(err, "count observations")
	}
	defer rows.Close()
	// The page is the readings of the runs in page, after the first skip.
	limit, offset := pageLimit(q), max(q.Offset, 0)
	var page []minuteRun
	total, skip := 0, 0
	for rows.Next() {
		var r minuteRun
		if err := rows.Scan(&r.start, &r.end, &r.n); err != nil {
			return nil, 0, wrap(err, "count observations")
		}
		if r.n > 0 && total+r.n > offset && total-offset < limit {
			if len(page) == 0 {
				skip = offset - total
			}
			page = append(page, r)
		}
		total += r.n
	}
	if err := rows.Err(); err != nil {
		return nil, 0, wrap(err, "count observations")
	}
	rows.Close()

	// Only the page's first and last runs can hold more readings than
	// the page: each is read alone, in the index's order, stopping at the
	// page's end; the runs between, together, and sorted.
	var out []store.Observation
	for len(page) > 0 && len(out) < limit {
		k := 1
		if page[0].n-skip <= limit {
			for k < len(page) && page[k].n <= limit {
				k++
			}
		}
		got, err := s.pageOfRuns(ctx, tx, page[:k], limit-len(out), skip, inRun)
		if err != nil {
			return nil, 0, wrap(err, "search observations")
		}
		out, page, skip = append(out, got...), page[k:], 0
	}
	return out, total, nil
}

// minuteRun is the effective times, [start, end), of consecutive minutes
// of observation_minutes (within a search's range), and how many
// readings the search selects in them.
type minuteRun struct {
	start, end int64
	n          int
}

// pageOfRuns reads, in order, limit of the readings of runs after the
// first skip; inRun is the condition on the readings of a run.
func (s *DB) pageOfRuns(ctx context.Context, tx *sql.Tx, runs []minuteRun, limit, skip int, inRun func(start, end string, bounds ...any) (string, []any)) ([]store.Observation, error) {
	var rows *sql.Rows
	var err error
	if len(runs) == 1 {
		cond, args := inRun("?", "?", runs[0].start, runs[0].end)
		rows, err = tx.QueryContext(ctx, `SELECT `+prefixed("o.", obsCols)+` FROM observations o
			WHERE `+cond+` ORDER BY o.effective_at, o.id LIMIT ? OFFSET ?`, append(args, limit, skip)...)
	} else {
		list := []byte{'['}
		for i, r := range runs {
			if i > 0 {
				list = append(list, ',')
			}
			list = fmt.Appendf(list, "[%d,%d]", r.start, r.end)
		}
		list = append(list, ']')
		cond, args := inRun("(r.value ->> 0)", "(r.value ->> 1)")
		rows, err = tx.QueryContext(ctx, `SELECT `+prefixed("o.", obsCols)+` FROM json_each(?) AS r CROSS JOIN observations o
			WHERE `+cond+` ORDER BY o.effective_at, o.id LIMIT ? OFFSET ?`,
			append(append([]any{string(list)}, args...), limit, skip)...)
	}
	return collect(rows, err, scanObservation)
}

// minuteStart and minuteEnd bound the effective times, [start, end), of
// the minute m (an SQL expression) of observation_minutes. SQLite's
// division, effective_at / 60000, truncates toward zero: minute 0 is
// (-60000, 60000), and a minute m before it is (60000m - 60000, 60000m].
func minuteStart(m string) string {
	return "(CASE WHEN " + m + " > 0 THEN " + m + " * 60000 ELSE " + m + " * 60000 - 59999 END)"
}

// minuteEnd: see minuteStart.
func minuteEnd(m string) string {
	return "(CASE WHEN " + m + " < 0 THEN " + m + " * 60000 + 1 ELSE " + m + " * 60000 + 60000 END)"
}

// sampleQuery selects a patient's (?1) latest reading of each code in each
// span of ?4 milliseconds of [?2, ?3), and the flagged ones; ?5 is the
// length of observation_minutes' minutes. The + before code keeps the
// planner from counting the code as fixed when it orders by the index (it
// is not one of the index's leading columns), which would have it sort
// each seek's readings by ID.
const sampleQuery = `WITH RECURSIVE
	codes(code) AS (
		SELECT min(code) FROM observation_minutes WHERE patient_id = ?1
		UNION ALL
		SELECT (SELECT min(code) FROM observation_minutes WHERE patient_id = ?1 AND code > codes.code) FROM codes WHERE code IS NOT NULL),
	spans(t, start, end) AS (
		SELECT ?2 / ?4 * ?4, ?2, min(?2 / ?4 * ?4 + ?4, ?3)
		UNION ALL
		SELECT t + ?4, t + ?4, min(t + 2 * ?4, ?3) FROM spans WHERE t + ?4 < ?3)
	SELECT ` + obsCols + ` FROM observations WHERE id IN (
		SELECT (SELECT id FROM observations WHERE patient_id = ?1
			AND effective_at >= spans.start AND effective_at < spans.end AND +code = codes.code
			ORDER BY effective_at DESC, code DESC, id DESC LIMIT 1)
		FROM codes, spans WHERE codes.code IS NOT NULL AND EXISTS (
			SELECT 1 FROM observation_minutes WHERE patient_id = ?1 AND code = codes.code
				AND minute >= spans.start / ?5 AND minute <= (spans.end - 1) / ?5)
		UNION ALL
		SELECT id FROM observations WHERE patient_id = ?1 AND effective_at >= ?2 AND effective_at < ?3 AND flags != '')
	ORDER BY effective_at, id`

// prefixed qualifies each column of a column list with p.
func prefixed(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}

// CredentialByID finds a credential of a kind by its ID.
func (s *DB) CredentialByID(ctx context.Context, kind string, id int64) (store.Credential, error) {
	c, err := scanCredential(s.r.QueryRowContext(ctx, `SELECT `+credCols+` FROM credentials WHERE kind = ? AND id = ?`, kind, id))
	if err != nil {
		return c, wrap(err, "%s credential %d", kind, id)
	}
	return c, nil
}

// VisitNote finds a visit's note.
func (s *DB) VisitNote(ctx context.Context, appointmentID int64) (store.VisitNote, error) {
	n := store.VisitNote{AppointmentID: appointmentID}
	var upd int64
	err := s.r.QueryRowContext(ctx, `SELECT author_id, text, updated_at FROM visit_notes WHERE appointment_id = ?`, appointmentID).
		Scan(&n.AuthorID, &n.Text, &upd)
	if err != nil {
		return n, wrap(err, "note of visit %d", appointmentID)
	}
	n.UpdatedAt = at(upd)
	return n, nil
}

// SaveVisitNote creates or replaces a visit's note.
func (s *DB) SaveVisitNote(ctx context.Context, n store.VisitNote) (store.VisitNote, error) {
	_, err := s.w.ExecContext(ctx, `INSERT INTO visit_notes (appointment_id, author_id, text, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (appointment_id) DO UPDATE SET author_id = excluded.author_id, text = excluded.text, updated_at = excluded.updated_at`,
		n.AppointmentID, n.AuthorID, n.Text, ms(n.UpdatedAt))
	if err != nil {
		return n, wrap(err, "save note of visit %d", n.AppointmentID)
	}
	n.UpdatedAt = norm(n.UpdatedAt)
	return n, nil
}
