package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bedside-health/bedside/store"
)

// The readers of readings read both tables: the rows of observations,
// where readings were stored one a row before migration 0024, and the
// packs of observation_packs (pack), where they are stored since. Where
// a range has no packs (a store's readings from before), each reads the
// rows as it did; otherwise it reads both in one snapshot and merges them
// in Go.

// packCols are observation_packs' columns, as scanPack reads them.
const packCols = `id, patient_id, device_id, relayed_id, received_at, first_at, last_at, n, codes_id, flagged, readings`

// scanPack reads a pack's row into p; with raw, its readings are the
// row's own bytes, valid until the next row.
func scanPack(r scanner, p *pack, raw bool) error {
	var readings any = &p.readings
	if raw {
		readings = (*sql.RawBytes)(&p.readings)
	}
	return r.Scan(&p.id, &p.patient, &p.device, &p.relayed, &p.receivedAt, &p.firstAt, &p.lastAt, &p.n, &p.codesID, &p.flagged, readings)
}

// eachPack calls f with each pack a query selects; p and its readings
// are valid only during the call, and f returns false to stop.
func eachPack(rows *sql.Rows, err error, f func(p *pack) (bool, error)) error {
	if err != nil {
		return err
	}
	defer rows.Close()
	var p pack
	for rows.Next() {
		if err := scanPack(rows, &p, true); err != nil {
			return err
		}
		more, err := f(&p)
		if err != nil || !more {
			return err
		}
	}
	return rows.Err()
}

// lastAtUntil is the bound, exclusive, of the last_at of the packs that
// may hold a reading effective before to: the end of the minute before
// to's.
func lastAtUntil(to int64) int64 {
	if to == math.MaxInt64 || to == math.MinInt64 {
		return to
	}
	_, end := minuteBounds(minuteOf(to - 1))
	return end
}

// byTimeThenID orders readings by effective time, then ID.
func byTimeThenID(a, b store.Observation) int {
	if c := a.EffectiveAt.Compare(b.EffectiveAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// ObservationByID finds one stored observation: a row, or a reading of
// the pack at or below its ID.
func (s *DB) ObservationByID(ctx context.Context, id int64) (store.Observation, error) {
	o, err := scanObservation(s.r.QueryRowContext(ctx, `SELECT `+obsCols+` FROM observations WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		o, err = s.packedByID(ctx, id)
	}
	if err != nil {
		return o, wrap(err, "observation %d", id)
	}
	return o, nil
}

// packedByID finds a reading of a pack by its ID.
func (s *DB) packedByID(ctx context.Context, id int64) (store.Observation, error) {
	var p pack
	var o store.Observation
	err := scanPack(s.r.QueryRowContext(ctx, `SELECT `+packCols+` FROM observation_packs WHERE id <= ? ORDER BY id DESC LIMIT 1`, id), &p, false)
	if err != nil {
		return o, err
	}
	if id >= p.id+int64(p.n) {
		return o, sql.ErrNoRows
	}
	r := s.packReader(ctx, s.r)
	if err := r.reset(&p); err != nil {
		return o, err
	}
	for r.next(&o) {
		if o.ID == id {
			return o, nil
		}
	}
	if r.err != nil {
		return o, r.err
	}
	return o, sql.ErrNoRows
}

// ObservationsBetween lists a patient's observations effective in [from,
// to), by effective time then ID.
func (s *DB) ObservationsBetween(ctx context.Context, patientID int64, from, to time.Time) ([]store.Observation, error) {
	out, err := s.observationsBetween(ctx, patientID, ms(from), ms(to))
	if err != nil {
		return nil, wrap(err, "list observations of patient %d", patientID)
	}
	return out, nil
}

func (s *DB) observationsBetween(ctx context.Context, patientID, from, to int64) ([]store.Observation, error) {
	if from >= to {
		return nil, nil
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT `+obsCols+`
		FROM observations WHERE patient_id = ? AND effective_at >= ? AND effective_at < ? ORDER BY effective_at, id`,
		patientID, from, to)
	out, err := collect(rows, err, scanObservation)
	if err != nil {
		return nil, err
	}
	sorted := len(out)
	r := s.packReader(ctx, tx)
	var o store.Observation
	rows, err = tx.QueryContext(ctx, `SELECT `+packCols+` FROM observation_packs
		WHERE patient_id = ? AND last_at >= ? AND last_at < ? AND first_at < ? ORDER BY last_at`,
		patientID, from, lastAtUntil(to), to)
	err = eachPack(rows, err, func(p *pack) (bool, error) {
		if err := r.reset(p); err != nil {
			return false, err
		}
		for r.next(&o) {
			if t := ms(o.EffectiveAt); t >= from && t < to {
				out = append(out, o)
			}
		}
		return true, r.err
	})
	if err != nil {
		return nil, err
	}
	if len(out) > sorted {
		slices.SortFunc(out, byTimeThenID)
	}
	return out, nil
}

// SearchObservations returns one page of the observations q selects and
// how many it selects in all.
//
// A range with packs is searched in two passes over one snapshot. The
// first counts what q selects in each minute: the rows with SQL, the
// packs from their sets of codes, which the index of packs names,
// decoding only a pack that the range cuts or that holds a blood-pressure
// panel that Panels makes one. The minutes give the total and the minutes the page
// falls in; the second pass reads those. A minute holds all the readings
// of its times, so a page cut at minutes keeps the order by time then ID.
// A patient's search by code (as searchByMinute) reads only the minutes
// with readings of the codes (observation_minutes).
func (s *DB) SearchObservations(ctx context.Context, q store.ObservationQuery) ([]store.Observation, int, error) {
	from, to := queryBounds(q)
	if from >= to {
		return nil, 0, nil
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, wrap(err, "search observations")
	}
	defer tx.Rollback()
	sr := &search{q: q, tx: tx, from: from, to: to, r: s.packReader(ctx, tx)}
	packed, err := sr.hasPacks(ctx)
	if err != nil {
		return nil, 0, wrap(err, "search observations")
	}
	if !packed {
		tx.Rollback()
		if len(q.Codes) > 0 && (q.PatientID != 0 || q.DeviceID != 0) {
			return s.searchByMinute(ctx, q)
		}
		return s.searchAll(ctx, q)
	}
	page, total, err := sr.run(ctx)
	if err != nil {
		return nil, 0, wrap(err, "search observations")
	}
	return page, total, nil
}

// queryBounds are q's effective times, [from, to), in Unix milliseconds;
// unbounded, the least and greatest.
func queryBounds(q store.ObservationQuery) (from, to int64) {
	from, to = math.MinInt64, math.MaxInt64
	if !q.From.IsZero() {
		from = ms(q.From)
	}
	if !q.To.IsZero() {
		to = ms(q.To)
	}
	return from, to
}

// search is one SearchObservations over rows and packs.
type search struct {
	q        store.ObservationQuery
	tx       *sql.Tx
	from, to int64 // effective times, [from, to)
	// patient is q's patient, or its device's (0 for neither: all
	// patients).
	patient int64
	r       *packReader
	buf     []store.Observation // a pack's readings
}

// hasPacks reports whether the search's range has packs, and finds its
// patient; not for a device that is not found, or not q's patient's,
// whose search selects nothing.
func (sr *search) hasPacks(ctx context.Context) (bool, error) {
	sr.patient = sr.q.PatientID
	if sr.q.DeviceID != 0 {
		err := sr.tx.QueryRowContext(ctx, `SELECT user_id FROM credentials WHERE id = ?`, sr.q.DeviceID).Scan(&sr.patient)
		if errors.Is(err, sql.ErrNoRows) || err == nil && sr.q.PatientID != 0 && sr.patient != sr.q.PatientID {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	var found bool
	var err error
	if sr.patient != 0 {
		err = sr.tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM observation_packs WHERE patient_id = ? AND last_at >= ? AND last_at < ?)`,
			sr.patient, sr.from, lastAtUntil(sr.to)).Scan(&found)
	} else {
		err = sr.tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM observation_packs)`).Scan(&found)
	}
	return found, err
}

// minuteCount is how many readings a search selects in a minute.
type minuteCount struct {
	minute int64
	n      int
}

// run searches.
func (sr *search) run(ctx context.Context) ([]store.Observation, int, error) {
	runs, err := sr.runs(ctx)
	if err != nil {
		return nil, 0, err
	}
	var counts []minuteCount
	for _, r := range runs {
		rows, err := sr.rowCounts(ctx, r)
		if err != nil {
			return nil, 0, err
		}
		packs, err := sr.packCounts(ctx, r)
		if err != nil {
			return nil, 0, err
		}
		counts = mergeCounts(counts, rows, packs)
	}
	limit, offset := pageLimit(sr.q), max(sr.q.Offset, 0)
	total, skip := 0, 0
	var page *minuteRun // the effective times of the page's minutes
	for _, c := range counts {
		if total+c.n > offset && total < offset+limit {
			start, end := minuteBounds(c.minute)
			if page == nil {
				page, skip = &minuteRun{start: max(start, sr.from)}, offset-total
			}
			page.end = min(end, sr.to)
		}
		total += c.n
	}
	if page == nil {
		return nil, total, nil
	}
	var out []store.Observation
	for _, r := range runs {
		r.start, r.end = max(r.start, page.start), min(r.end, page.end)
		if r.start >= r.end {
			continue
		}
		if out, err = sr.read(ctx, r, out); err != nil {
			return nil, 0, err
		}
	}
	slices.SortFunc(out, byTimeThenID)
	if skip >= len(out) {
		// Both passes read one snapshot: the counts and the readings
		// disagree only if a pack's codes do not say what it holds.
		return nil, 0, fmt.Errorf("the page's minutes hold %d readings, counted %d and more: %w", len(out), skip, errPack)
	}
	return out[skip:min(len(out), skip+limit)], total, nil
}

// runs are the effective times, [start, end), that may hold what the
// search selects: a patient's search by code, the runs of consecutive
// minutes with readings of the codes; any other, its range.
func (sr *search) runs(ctx context.Context) ([]minuteRun, error) {
	if len(sr.q.Codes) == 0 || sr.patient == 0 {
		return []minuteRun{{start: sr.from, end: sr.to}}, nil
	}
	args := []any{sr.patient, minuteOf(sr.from), minuteOf(sr.to - 1)}
	for _, c := range sr.q.Codes {
		args = append(args, c)
	}
	rows, err := sr.tx.QueryContext(ctx, `SELECT DISTINCT minute FROM observation_minutes
		WHERE patient_id = ? AND minute >= ? AND minute <= ? AND code IN (`+placeholders(len(sr.q.Codes))+`) ORDER BY minute`, args...)
	minutes, err := collect(rows, err, func(r scanner) (int64, error) {
		var m int64
		return m, r.Scan(&m)
	})
	if err != nil {
		return nil, err
	}
	var runs []minuteRun
	for i, m := range minutes {
		start, end := minuteBounds(m)
		if i > 0 && m == minutes[i-1]+1 {
			runs[len(runs)-1].end = min(end, sr.to)
			continue
		}
		runs = append(runs, minuteRun{start: max(start, sr.from), end: min(end, sr.to)})
	}
	return runs, nil
}

// packCond is the condition on the packs (p) of the search that may hold
// readings effective in [start, end), and its parameters.
func (sr *search) packCond(start, end int64) (string, []any) {
	where := []string{"p.last_at >= ?", "p.last_at < ?"}
	args := []any{start, lastAtUntil(end)}
	if sr.patient != 0 {
		where, args = append(where, "p.patient_id = ?"), append(args, sr.patient)
	}
	if sr.q.DeviceID != 0 {
		where, args = append(where, "p.device_id = ?"), append(args, sr.q.DeviceID)
	}
	switch {
	case sr.q.Relayed > 0:
		where, args = append(where, "p.relayed_id = ?"), append(args, sr.q.Relayed)
	case sr.q.Relayed == store.NotRelayed:
		where = append(where, "p.relayed_id = 0")
	}
	return strings.Join(where, " AND "), args
}

// rowCounts counts the rows of the search in each minute of r.
func (sr *search) rowCounts(ctx context.Context, r minuteRun) ([]minuteCount, error) {
	cond, args := rowCond(sr.q, r.start, r.end)
	rows, err := sr.tx.QueryContext(ctx, `SELECT o.effective_at / 60000, count(*) FROM observations o WHERE `+cond+` GROUP BY 1 ORDER BY 1`, args...)
	return collect(rows, err, func(r scanner) (minuteCount, error) {
		var c minuteCount
		return c, r.Scan(&c.minute, &c.n)
	})
}

// packCounts counts the readings of the packs of the search in each
// minute of r: from the index's counts of each pack's codes, but for a
// pack that r may cut (in r's first minute, where r does not start at
// the minute's start, or its last) or that holds a panel the search
// counts as one, which it decodes.
func (sr *search) packCounts(ctx context.Context, r minuteRun) ([]minuteCount, error) {
	cond, args := sr.packCond(r.start, r.end)
	firstStart, firstEnd := minuteBounds(minuteOf(r.start))
	rows, err := sr.tx.QueryContext(ctx, `SELECT p.id, p.last_at, p.codes_id FROM observation_packs p WHERE `+cond+` ORDER BY p.last_at`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var counts []minuteCount
	var cut []int64 // the packs to decode
	for rows.Next() {
		var id, last, codesID int64
		if err := rows.Scan(&id, &last, &codesID); err != nil {
			return nil, err
		}
		codes, err := sr.r.sets(codesID)
		if err != nil {
			return nil, err
		}
		if last >= r.end || last < firstEnd && r.start != firstStart || sr.panels(codes) {
			cut = append(cut, id)
			continue
		}
		counts = addCount(counts, minuteOf(last), countCodes(codes, sr.codes()))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(cut) == 0 {
		return counts, nil
	}
	// The packs decoded, their counts added in order.
	var more []minuteCount
	for _, id := range cut {
		var p pack
		if err := scanPack(sr.tx.QueryRowContext(ctx, `SELECT `+packCols+` FROM observation_packs WHERE id = ?`, id), &p, false); err != nil {
			return nil, err
		}
		got, err := sr.selected(nil, &p, r)
		if err != nil {
			return nil, err
		}
		more = addCount(more, minuteOf(p.lastAt), len(got))
	}
	return mergeCounts(nil, counts, more), nil
}

// addCount adds n readings of minute m, the latest so far, to counts.
func addCount(counts []minuteCount, m int64, n int) []minuteCount {
	if n == 0 {
		return counts
	}
	if k := len(counts) - 1; k >= 0 && counts[k].minute == m {
		counts[k].n += n
		return counts
	}
	return append(counts, minuteCount{m, n})
}

// codes are the codes the search selects, nil for all.
func (sr *search) codes() []string {
	if len(sr.q.Codes) == 0 {
		return nil
	}
	return sr.q.Codes
}

// panels reports whether a pack of codes may hold a blood-pressure panel
// that the search counts as one, through its systolic reading: with
// Panels, a diastolic reading that has a systolic one of the same
// device, sequence and time. The two come in one call, so in one pack.
func (sr *search) panels(codes []packCode) bool {
	return sr.q.Panels && hasCode(codes, store.CodeSystolic) && hasCode(codes, store.CodeDiastolic)
}

// selected appends the readings of p that the search selects in r to
// out.
func (sr *search) selected(out []store.Observation, p *pack, r minuteRun) ([]store.Observation, error) {
	all, err := decodePack(sr.buf[:0], p, sr.r)
	sr.buf = all
	if err != nil {
		return out, err
	}
	panels := sr.panels(sr.r.codes)
	for i := range all {
		o := &all[i]
		if t := ms(o.EffectiveAt); t < r.start || t >= r.end {
			continue
		}
		if len(sr.q.Codes) > 0 && !slices.Contains(sr.q.Codes, o.Code) {
			continue
		}
		if panels && o.Code == store.CodeDiastolic && slices.ContainsFunc(all, func(x store.Observation) bool {
			return x.Code == store.CodeSystolic && x.Seq == o.Seq && x.EffectiveAt.Equal(o.EffectiveAt)
		}) {
			continue
		}
		out = append(out, *o)
	}
	return out, nil
}

// mergeCounts adds a run's counts of rows and of packs, both by minute,
// to counts.
func mergeCounts(counts, rows, packs []minuteCount) []minuteCount {
	for len(rows) > 0 || len(packs) > 0 {
		switch {
		case len(packs) == 0 || len(rows) > 0 && rows[0].minute < packs[0].minute:
			counts, rows = append(counts, rows[0]), rows[1:]
		case len(rows) == 0 || packs[0].minute < rows[0].minute:
			counts, packs = append(counts, packs[0]), packs[1:]
		default:
			counts = append(counts, minuteCount{rows[0].minute, rows[0].n + packs[0].n})
			rows, packs = rows[1:], packs[1:]
		}
	}
	return counts
}

// read appends the readings of the search in r to out.
func (sr *search) read(ctx context.Context, r minuteRun, out []store.Observation) ([]store.Observation, error) {
	cond, args := rowCond(sr.q, r.start, r.end)
	rows, err := sr.tx.QueryContext(ctx, `SELECT `+prefixed("o.", obsCols)+` FROM observations o WHERE `+cond, args...)
	got, err := collect(rows, err, scanObservation)
	if err != nil {
		return nil, err
	}
	out = append(out, got...)
	cond, args = sr.packCond(r.start, r.end)
	rows, err = sr.tx.QueryContext(ctx, `SELECT `+prefixed("p.", packCols)+` FROM observation_packs p WHERE `+cond, args...)
	err = eachPack(rows, err, func(p *pack) (bool, error) {
		var err error
		out, err = sr.selected(out, p, r)
		return true, err
	})
	return out, err
}

// SampleObservations thins a patient's observations for display.
//
// The rows are sampled in SQL (sampleRows). The packs: for each span,
// each code's latest minute in it (observation_minutes) says where its
// latest reading is; the packs of that minute are walked back from the
// span's end by their latest reading, until every code sought there is
// found and the next pack's latest reading is before them all. A code
// whose minute has none in the span (the span ends within it, or its
// readings there are rows) is sought in its minute before. The flagged
// readings come from observation_packs_flagged. The latest of the two
// for each code and span, and every flagged one, are the sample.
func (s *DB) SampleObservations(ctx context.Context, patientID int64, from, to time.Time, every time.Duration) ([]store.Observation, int, error) {
	out, total, err := s.sample(ctx, patientID, ms(from), ms(to), max(every.Milliseconds(), 1))
	if err != nil {
		return nil, 0, wrap(err, "sample observations of patient %d", patientID)
	}
	return out, total, nil
}

func (s *DB) sample(ctx context.Context, patientID, from, to, span int64) ([]store.Observation, int, error) {
	if from >= to {
		return nil, 0, nil
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, err
	}
	defer tx.Rollback()
	// The first pack of the range: the packs are the later readings.
	var firstPack int64
	err = tx.QueryRowContext(ctx, `SELECT last_at FROM observation_packs WHERE patient_id = ? AND last_at >= ? AND last_at < ? ORDER BY last_at LIMIT 1`,
		patientID, from, lastAtUntil(to)).Scan(&firstPack)
	if errors.Is(err, sql.ErrNoRows) {
		return sampleRows(ctx, tx, patientID, from, to, span)
	}
	if err != nil {
		return nil, 0, err
	}
	rows, total, err := sampleRows(ctx, tx, patientID, from, to, span)
	if err != nil {
		return nil, 0, err
	}
	ps := packSample{tx: tx, patient: patientID, from: from, to: to, span: span, r: s.packReader(ctx, tx)}
	n, err := ps.count(ctx)
	if err != nil {
		return nil, 0, err
	}
	packs, err := ps.sample(ctx, minuteOf(firstPack))
	if err != nil {
		return nil, 0, err
	}
	return ps.merge(rows, packs), total + n, nil
}

// sampleRows samples the rows of observations, as SampleObservations
// did before packs: grouping every reading of the range by code and span
// made SQLite sort them all, the bulk of a visit record's cost. Instead:
// the patient's codes are found by skipping from one to the next in
// observation_minutes (patient, code, minute), which also says, with one
// seek, whether a span has readings of a code; for each span and code
// that has, one backward walk of observations_patient (patient, time,
// code) from the span's end finds the latest reading (a few entries when
// the codes come together); the flagged ones come from
// observations_flagged. Nothing sorts more than the sample.
func sampleRows(ctx context.Context, tx *sql.Tx, patientID, from, to, span int64) ([]store.Observation, int, error) {
	var total int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM observations WHERE patient_id = ? AND effective_at >= ? AND effective_at < ?`,
		patientID, from, to).Scan(&total); err != nil {
		return nil, 0, err
	}
	if total == 0 {
		return nil, 0, nil
	}
	rows, err := tx.QueryContext(ctx, sampleQuery, patientID, from, to, span, minuteMillis)
	out, err := collect(rows, err, scanObservation)
	return out, total, err
}

// packSample is one SampleObservations of packs.
type packSample struct {
	tx                *sql.Tx
	patient, from, to int64
	span              int64
	r                 *packReader
	o                 store.Observation
	found             map[string]store.Observation // the latest of each code in the span in hand
	sought            []string
	// walkQuery, prepared once for the sample's walks: a walk a span
	// or more, each a short query, spent about a fifth of the sample
	// preparing it.
	walks *sql.Stmt
}

// walkQuery lists a patient's (?1) packs whose latest reading is in
// [?2, ?3), latest first.
const walkQuery = `SELECT ` + packCols + ` FROM observation_packs WHERE patient_id = ? AND last_at >= ? AND last_at < ? ORDER BY last_at DESC`

// count counts the readings of the packs in the range: those of the
// packs within it from the index alone, decoding only those it cuts.
func (ps *packSample) count(ctx context.Context) (int, error) {
	_, firstEnd := minuteBounds(minuteOf(ps.from))
	total := 0
	if firstEnd < ps.to {
		if err := ps.tx.QueryRowContext(ctx, `SELECT coalesce(sum(n), 0) FROM observation_packs WHERE patient_id = ? AND last_at >= ? AND last_at < ?`,
			ps.patient, firstEnd, ps.to).Scan(&total); err != nil {
			return 0, err
		}
	}
	for _, edge := range [][2]int64{{ps.from, min(firstEnd, ps.to)}, {ps.to, lastAtUntil(ps.to)}} {
		if edge[0] >= edge[1] {
			continue
		}
		rows, err := ps.tx.QueryContext(ctx, `SELECT `+packCols+` FROM observation_packs WHERE patient_id = ? AND last_at >= ? AND last_at < ?`,
			ps.patient, edge[0], edge[1])
		err = eachPack(rows, err, func(p *pack) (bool, error) {
			if p.firstAt >= ps.from && p.lastAt < ps.to {
				total += p.n
				return true, nil
			}
			if err := ps.r.reset(p); err != nil {
				return false, err
			}
			for ps.r.next(&ps.o) {
				if t := ms(ps.o.EffectiveAt); t >= ps.from && t < ps.to {
					total++
				}
			}
			return true, ps.r.err
		})
		if err != nil {
			return 0, err
		}
	}
	return total, nil
}

// codeMinutes are the minutes with readings of one code.
type codeMinutes struct {
	code    string
	minutes []int64
}

// sample samples the packs of the range, from minute first, its first
// pack's.
func (ps *packSample) sample(ctx context.Context, first int64) ([]store.Observation, error) {
	rows, err := ps.tx.QueryContext(ctx, `SELECT code, minute FROM observation_minutes
		WHERE patient_id = ? AND minute >= ? AND minute <= ? ORDER BY code, minute`, ps.patient, max(first, minuteOf(ps.from)), minuteOf(ps.to-1))
	var codes []codeMinutes
	err = func() error {
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var code string
			var m int64
			if err := rows.Scan(&code, &m); err != nil {
				return err
			}
			if k := len(codes) - 1; k >= 0 && codes[k].code == code {
				codes[k].minutes = append(codes[k].minutes, m)
			} else {
				codes = append(codes, codeMinutes{code, []int64{m}})
			}
		}
		return rows.Err()
	}()
	if err != nil {
		return nil, err
	}
	var out []store.Observation
	ps.found = make(map[string]store.Observation)
	latest := make(map[string]int, len(codes)) // each code's latest minute sought, an index in its minutes
	// The spans, as sampleQuery counts them: the first from from (the
	// division truncates toward zero, so before 1970 t0 is after from).
	t0 := ps.from / ps.span * ps.span
	for t := t0; t < ps.to; t += ps.span {
		start, end := t, min(t+ps.span, ps.to)
		if t == t0 {
			start = ps.from
		}
		// Each code's latest minute in the span.
		clear(latest)
		for _, c := range codes {
			i := sort.Search(len(c.minutes), func(i int) bool {
				s, _ := minuteBounds(c.minutes[i])
				return s >= end
			}) - 1
			if i >= 0 {
				if _, e := minuteBounds(c.minutes[i]); e > start {
					latest[c.code] = i
				}
			}
		}
		clear(ps.found)
		for len(latest) > 0 {
			// The latest minute sought, and the codes sought in it.
			m := int64(math.MinInt64)
			for _, c := range codes {
				if i, ok := latest[c.code]; ok {
					m = max(m, c.minutes[i])
				}
			}
			ps.sought = ps.sought[:0]
			for _, c := range codes {
				if i, ok := latest[c.code]; ok && c.minutes[i] == m {
					ps.sought = append(ps.sought, c.code)
				}
			}
			if err := ps.walk(ctx, m, start, end); err != nil {
				return nil, err
			}
			// A code not found there is sought in its minute before.
			for _, c := range codes {
				i, ok := latest[c.code]
				if !ok || c.minutes[i] != m {
					continue
				}
				if _, got := ps.found[c.code]; got || i == 0 {
					delete(latest, c.code)
					continue
				}
				if _, e := minuteBounds(c.minutes[i-1]); e > start {
					latest[c.code] = i - 1
				} else {
					delete(latest, c.code)
				}
			}
		}
		for _, o := range ps.found {
			out = append(out, o)
		}
	}
	// The flagged readings.
	rows, err = ps.tx.QueryContext(ctx, `SELECT `+packCols+` FROM observation_packs WHERE patient_id = ? AND flagged AND last_at >= ? AND last_at < ?`,
		ps.patient, ps.from, lastAtUntil(ps.to))
	err = eachPack(rows, err, func(p *pack) (bool, error) {
		if err := ps.r.reset(p); err != nil {
			return false, err
		}
		for ps.r.next(&ps.o) {
			if t := ms(ps.o.EffectiveAt); len(ps.o.Flags) > 0 && t >= ps.from && t < ps.to {
				out = append(out, ps.o)
			}
		}
		return true, ps.r.err
	})
	return out, err
}

// walk finds, in ps.found, the latest reading in [start, end) of each
// sought code in the packs of minute m.
func (ps *packSample) walk(ctx context.Context, m, start, end int64) error {
	mStart, mEnd := minuteBounds(m)
	if ps.walks == nil {
		var err error
		if ps.walks, err = ps.tx.PrepareContext(ctx, walkQuery); err != nil { // closed with the transaction
			return err
		}
	}
	rows, err := ps.walks.QueryContext(ctx, ps.patient, max(start, mStart), mEnd)
	return eachPack(rows, err, func(p *pack) (bool, error) {
		if p.firstAt >= end {
			return true, nil
		}
		// Done once every code sought is found, at or after this pack's
		// latest reading (at it, a reading of a later ID might be here).
		done := true
		for _, c := range ps.sought {
			if f, ok := ps.found[c]; !ok || ms(f.EffectiveAt) <= p.lastAt {
				done = false
				break
			}
		}
		if done {
			return false, nil
		}
		if err := ps.r.reset(p); err != nil {
			return false, err
		}
		some := false
		for _, c := range ps.sought {
			some = some || hasCode(ps.r.codes, c)
		}
		if !some {
			return true, nil
		}
		for ps.r.next(&ps.o) {
			t := ms(ps.o.EffectiveAt)
			if t < start || t >= end || !slices.Contains(ps.sought, ps.o.Code) {
				continue
			}
			if f, ok := ps.found[ps.o.Code]; !ok || byTimeThenID(ps.o, f) > 0 {
				ps.found[ps.o.Code] = ps.o
			}
		}
		return true, ps.r.err
	})
}

// merge joins the samples of the rows and of the packs: the latest of
// each code in each span, and every flagged reading, once, by time then
// ID.
func (ps *packSample) merge(rows, packs []store.Observation) []store.Observation {
	type codeSpan struct {
		code string
		span int64
	}
	t0 := ps.from / ps.span * ps.span
	latest := make(map[codeSpan]store.Observation)
	var out []store.Observation
	for _, o := range slices.Concat(rows, packs) {
		if len(o.Flags) > 0 {
			out = append(out, o)
		}
		k := codeSpan{o.Code, max(0, floorDiv(ms(o.EffectiveAt)-t0, ps.span))}
		if l, ok := latest[k]; !ok || byTimeThenID(o, l) > 0 {
			latest[k] = o
		}
	}
	for _, o := range latest {
		out = append(out, o)
	}
	slices.SortFunc(out, byTimeThenID)
	return slices.CompactFunc(out, func(a, b store.Observation) bool { return a.ID == b.ID })
}

// floorDiv is a / b rounded down; b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
