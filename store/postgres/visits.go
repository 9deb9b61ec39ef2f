package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bedside-health/bedside/store"
)

const obsCols = `id, patient_id, device_id, seq, code, value, unit, effective_at, received_at, flags, relayed_id`

func scanObservation(r pgx.Row) (store.Observation, error) {
	var o store.Observation
	var flags string
	err := r.Scan(&o.ID, &o.PatientID, &o.DeviceID, &o.Seq, &o.Code, &o.Value, &o.Unit, utc(&o.EffectiveAt), utc(&o.ReceivedAt), &flags, &o.Relayed)
	o.Flags = store.SplitFlags(flags)
	return o, err
}

// ObservationByID finds one stored observation.
func (s *DB) ObservationByID(ctx context.Context, id int64) (store.Observation, error) {
	o, err := scanObservation(s.pool.QueryRow(ctx, `SELECT `+obsCols+` FROM observations WHERE id = $1`, id))
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
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if q.PatientID != 0 {
		where = append(where, "o.patient_id = "+arg(q.PatientID))
	}
	if q.DeviceID != 0 {
		where = append(where, "o.device_id = "+arg(q.DeviceID))
	}
	switch {
	case q.Relayed > 0:
		where = append(where, "o.relayed_id = "+arg(q.Relayed))
	case q.Relayed == store.NotRelayed:
		where = append(where, "o.relayed_id = 0")
	}
	if len(q.Codes) > 0 {
		where = append(where, "o.code = ANY("+arg(q.Codes)+"::text[])")
	}
	if !q.From.IsZero() {
		where = append(where, "o.effective_at >= "+arg(norm(q.From)))
	}
	if !q.To.IsZero() {
		where = append(where, "o.effective_at < "+arg(norm(q.To)))
	}
	if q.Panels {
		where = append(where, `NOT (o.code = `+arg(store.CodeDiastolic)+` AND EXISTS (SELECT 1 FROM observations p WHERE p.code = `+arg(store.CodeSystolic)+`
			AND p.patient_id = o.patient_id AND p.device_id = o.device_id AND p.seq = o.seq AND p.effective_at = o.effective_at))`)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM observations o`+cond, args...).Scan(&total); err != nil {
		return nil, 0, wrap(err, "count observations")
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	sql := `SELECT ` + prefixed("o.", obsCols) + ` FROM observations o` + cond + ` ORDER BY o.effective_at, o.id LIMIT ` + arg(limit) + ` OFFSET ` + arg(q.Offset)
	rows, err := s.pool.Query(ctx, sql, args...)
	out, err := collect(rows, err, scanObservation)
	if err != nil {
		return nil, 0, wrap(err, "search observations")
	}
	return out, total, nil
}

// SampleObservations thins a patient's observations for display.
func (s *DB) SampleObservations(ctx context.Context, patientID int64, from, to time.Time, every time.Duration) ([]store.Observation, int, error) {
	span := max(every.Milliseconds(), 1)
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM observations WHERE patient_id = $1 AND effective_at >= $2 AND effective_at < $3`,
		patientID, norm(from), norm(to)).Scan(&total); err != nil {
		return nil, 0, wrap(err, "count observations of patient %d", patientID)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+obsCols+` FROM observations
		WHERE patient_id = $1 AND effective_at >= $2 AND effective_at < $3 AND (flags <> '' OR id IN (
			SELECT DISTINCT ON (code, floor(extract(epoch FROM effective_at) * 1000 / $4)) id
			FROM observations WHERE patient_id = $1 AND effective_at >= $2 AND effective_at < $3
			ORDER BY code, floor(extract(epoch FROM effective_at) * 1000 / $4), effective_at DESC, id DESC))
		ORDER BY effective_at, id`, patientID, norm(from), norm(to), span)
	out, err := collect(rows, err, scanObservation)
	if err != nil {
		return nil, 0, wrap(err, "sample observations of patient %d", patientID)
	}
	return out, total, nil
}

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
	c, err := scanCredential(s.pool.QueryRow(ctx, `SELECT `+credCols+` FROM credentials WHERE kind = $1 AND id = $2`, kind, id))
	if err != nil {
		return c, wrap(err, "%s credential %d", kind, id)
	}
	return c, nil
}

// VisitNote finds a visit's note.
func (s *DB) VisitNote(ctx context.Context, appointmentID int64) (store.VisitNote, error) {
	n := store.VisitNote{AppointmentID: appointmentID}
	err := s.pool.QueryRow(ctx, `SELECT author_id, text, updated_at FROM visit_notes WHERE appointment_id = $1`, appointmentID).
		Scan(&n.AuthorID, &n.Text, utc(&n.UpdatedAt))
	if err != nil {
		return n, wrap(err, "note of visit %d", appointmentID)
	}
	return n, nil
}

// SaveVisitNote creates or replaces a visit's note.
func (s *DB) SaveVisitNote(ctx context.Context, n store.VisitNote) (store.VisitNote, error) {
	n.UpdatedAt = norm(n.UpdatedAt)
	_, err := s.pool.Exec(ctx, `INSERT INTO visit_notes (appointment_id, author_id, text, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (appointment_id) DO UPDATE SET author_id = excluded.author_id, text = excluded.text, updated_at = excluded.updated_at`,
		n.AppointmentID, n.AuthorID, n.Text, n.UpdatedAt)
	if err != nil {
		return n, wrap(err, "save note of visit %d", n.AppointmentID)
	}
	return n, nil
}
