package sqlite

import (
	"context"
	"strings"
	"time"

	"github.com/bedside-health/bedside/store"
)

const obsCols = `id, patient_id, device_id, seq, code, value, unit, effective_at, received_at, flags`

func scanObservation(r scanner) (store.Observation, error) {
	var o store.Observation
	var eff, rec int64
	var flags string
	err := r.Scan(&o.ID, &o.PatientID, &o.DeviceID, &o.Seq, &o.Code, &o.Value, &o.Unit, &eff, &rec, &flags)
	o.EffectiveAt, o.ReceivedAt, o.Flags = at(eff), at(rec), store.SplitFlags(flags)
	return o, err
}

// ObservationByID finds one stored observation.
func (s *DB) ObservationByID(ctx context.Context, id int64) (store.Observation, error) {
	o, err := scanObservation(s.r.QueryRowContext(ctx, `SELECT `+obsCols+` FROM observations WHERE id = ?`, id))
	if err != nil {
		return o, wrap(err, "observation %d", id)
	}
	return o, nil
}

// SearchObservations returns one page of the observations q selects and
// how many it selects in all.
func (s *DB) SearchObservations(ctx context.Context, q store.ObservationQuery) ([]store.Observation, int, error) {
	var where []string
	var args []any
	if q.PatientID != 0 {
		where, args = append(where, "o.patient_id = ?"), append(args, q.PatientID)
	}
	if q.DeviceID != 0 {
		// A device's readings are its patient's: seek the patient's
		// readings (there is no index by device; migration 0017).
		where, args = append(where, "o.device_id = ?", "o.patient_id = (SELECT user_id FROM credentials WHERE id = ?)"), append(args, q.DeviceID, q.DeviceID)
	}
	if len(q.Codes) > 0 {
		where = append(where, "o.code IN (?"+strings.Repeat(", ?", len(q.Codes)-1)+")")
		for _, c := range q.Codes {
			args = append(args, c)
		}
	}
	if !q.From.IsZero() {
		where, args = append(where, "o.effective_at >= ?"), append(args, ms(q.From))
	}
	if !q.To.IsZero() {
		where, args = append(where, "o.effective_at < ?"), append(args, ms(q.To))
	}
	if q.Panels {
		where = append(where, `NOT (o.code = ? AND EXISTS (SELECT 1 FROM observations p WHERE p.code = ?
			AND p.patient_id = o.patient_id AND p.device_id = o.device_id AND p.seq = o.seq AND p.effective_at = o.effective_at))`)
		args = append(args, store.CodeDiastolic, store.CodeSystolic)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM observations o`+cond, args...).Scan(&total); err != nil {
		return nil, 0, wrap(err, "count observations")
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+prefixed("o.", obsCols)+` FROM observations o`+cond+
		` ORDER BY o.effective_at, o.id LIMIT ? OFFSET ?`, append(args, limit, q.Offset)...)
	out, err := collect(rows, err, scanObservation)
	if err != nil {
		return nil, 0, wrap(err, "search observations")
	}
	return out, total, nil
}

// SampleObservations thins a patient's observations for display.
//
// Grouping every reading of the range by code and span made SQLite sort
// them all, the bulk of a visit record's cost. Instead: the patient's
// codes are found by skipping from one to the next in observation_minutes
// (patient, code, minute), which also says, with one seek, whether a span
// has readings of a code; for each span and code that has, one backward
// walk of observations_patient (patient, time, code) from the span's end
// finds the latest reading (a few entries when the codes come together);
// the flagged ones come from observations_flagged. Nothing sorts more than
// the sample.
func (s *DB) SampleObservations(ctx context.Context, patientID int64, from, to time.Time, every time.Duration) ([]store.Observation, int, error) {
	span := max(every.Milliseconds(), 1)
	var total int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM observations WHERE patient_id = ? AND effective_at >= ? AND effective_at < ?`,
		patientID, ms(from), ms(to)).Scan(&total); err != nil {
		return nil, 0, wrap(err, "count observations of patient %d", patientID)
	}
	if total == 0 {
		return nil, 0, nil
	}
	rows, err := s.r.QueryContext(ctx, sampleQuery, patientID, ms(from), ms(to), span, minuteMillis)
	out, err := collect(rows, err, scanObservation)
	if err != nil {
		return nil, 0, wrap(err, "sample observations of patient %d", patientID)
	}
	return out, total, nil
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
