package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bedside-health/bedside/store"
)

// appendReq is one AppendObservations call waiting for its group commit.
type appendReq struct {
	deviceID, lastSeq int64
	obs               []store.Observation
}

// maxAppendBatch bounds the calls one transaction commits together: a
// thousand devices' commits fall on the same tick (vitals.ServeDevice),
// and one transaction for all of them costs one WAL commit instead of four.
const maxAppendBatch = 1024

// AppendObservations stores a batch of readings and advances the device's
// LastSeq to max(LastSeq, lastSeq), all in one transaction, which it
// shares with the appends of other devices waiting at the same time (group
// commit). The duplicate check is the device's LastSeq, read in the same
// transaction: a reading with a sequence at or below it is skipped (see
// store.Observations for the rule and why it is enough). A deviceID of 0
// means readings entered by hand: no sequence is advanced. An unknown
// device, or a numbered reading the rule cannot place, fails this call
// alone and stores nothing of it.
func (s *DB) AppendObservations(ctx context.Context, deviceID int64, lastSeq int64, obs []store.Observation) error {
	if err := s.appends.Do(ctx, appendReq{deviceID, lastSeq, obs}); err != nil {
		return wrap(err, "append observations of device %d", deviceID)
	}
	return nil
}

// commitAppends writes a group of appends in one transaction.
func (s *DB) commitAppends(ctx context.Context, batch []appendReq) ([]error, error) {
	// The writer's one connection makes commits take turns already; the
	// lock says so for what they share.
	st := &s.appending
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.prepare(ctx); err != nil {
		return nil, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	st.begin(tx)
	defer st.end()
	if err := st.readLastSeqs(ctx, batch); err != nil {
		return nil, err
	}
	if err := st.readMaxID(ctx); err != nil {
		return nil, err
	}
	each := make([]error, len(batch))
	now := time.Now()
	// A batch of a slot's devices takes milliseconds of CPU (about 4.5
	// ms at 1,000 streaming patients with readings kept as packs). A
	// writer sharing the runtime's Ps lets the goroutines delivering live
	// vitals run between devices, every millisecond of it, rather than
	// wait for the scheduler to preempt the commit; one with its own
	// (WriterHasAProc) has nothing to give way to.
	yield, yielded := !s.WriterHasAProc(), now
	for i, rq := range batch {
		if each[i], err = st.appendOne(ctx, rq, now); err != nil {
			return nil, err
		}
		if yield && time.Since(yielded) >= time.Millisecond {
			runtime.Gosched()
			yielded = time.Now()
		}
	}
	if err := st.flushQueue(ctx, &st.packs); err != nil {
		return nil, err
	}
	if err := st.advanceLastSeqs(ctx); err != nil {
		return nil, err
	}
	if err := st.addMinutes(ctx); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	st.committed()
	return each, nil
}

// appender is what the commits of readings keep from one to the next:
// their statements, prepared once on the writer's connection (preparing
// them in each transaction was a few percent of its CPU), and buffers.
type appender struct {
	mu sync.Mutex
	w  *sql.DB
	tx *sql.Tx // the commit in hand

	// Each device's LastSeq, read for the whole commit in one statement
	// and written back in one, rather than two statements a device: found
	// holds what the commit read, stored what it has advanced that to so
	// far, advanced the devices whose sequence it moved.
	lastSeqs, advance *sql.Stmt
	found, stored     map[int64]int64
	advanced          []int64
	list              []byte // a statement's JSON argument

	seen map[seqCode]bool // the call's readings stored so far
	// The packs of the call in hand (see pack), in the order they were
	// opened, and the readings of each.
	open []openPack
	// The packs to insert, of every device of the commit, go in as few
	// statements as they fit: a statement's own cost (binding, stepping,
	// resetting) is most of a small row's.
	packs rowQueue
	boxes boxes
	// nextID is the ID the commit's next reading takes: above every ID
	// of both tables, read once a commit by maxID.
	maxID  *sql.Stmt
	nextID int64
	blobs  []byte // the queued packs' readings, which their rows slice
	// The IDs of the sets of codes (observation_code_sets) known
	// stored, and those the commit in hand adds, by their encoding.
	sets, newSets map[string]int64
	key           []byte

	// The minutes in which a patient has readings of a code
	// (observation_minutes), where a sample of the patient's readings
	// finds their codes and the spans that have readings of each:
	// minutes holds the latest minute known stored of each patient's
	// code, newMinutes those the commit in hand adds.
	addMinute  *sql.Stmt
	minutes    map[patientCode]int64
	newMinutes map[codeMinute]bool
}

// patientCode is a patient's code.
type patientCode struct {
	patient int64
	code    string
}

// codeMinute is a minute with readings of a patient's code.
type codeMinute struct {
	patientCode
	minute int64
}

// minuteMillis is the length of observation_minutes' minutes.
const minuteMillis = int64(time.Minute / time.Millisecond)

// rowQueue is the rows waiting for one kind of INSERT, and its
// statements: they take insertRows rows, or (the last few) a power of
// two: inserts[k] takes 1<<k rows.
type rowQueue struct {
	cols      int // the values of one row
	rows      []any
	inserts   [insertSizes]*sql.Stmt
	txInserts [insertSizes]*sql.Stmt // the same, in the commit in hand
}

// openPack is a pack of the call in hand, before it is encoded.
type openPack struct {
	patient, device, relayed, minute int64
	obs                              []store.Observation
	codes                            []packCode
}

// take reports whether o may go in p (of its patient, device, relayed
// device and minute, and within a pack's bounds) and, if it may, counts
// its code among p's; the caller then appends it.
func (p *openPack) take(o *store.Observation, minute int64) bool {
	if p.patient != o.PatientID || p.device != o.DeviceID || p.relayed != o.Relayed || p.minute != minute || len(p.obs) == maxPackReadings {
		return false
	}
	for i := range p.codes {
		if p.codes[i].code == o.Code {
			p.codes[i].n++
			return true
		}
	}
	if len(p.codes) == maxPackCodes {
		return false
	}
	p.codes = append(p.codes, packCode{o.Code, 1})
	return true
}

// packColumns are the values of one observation_packs row.
const packColumns = 11

// insertRows is the most rows one INSERT takes: 704 variables at most, well under
// SQLite's limit. It is a power of two, 1<<(insertSizes-1).
const (
	insertRows  = 64
	insertSizes = 7
)

// lastSeqsQuery reads the LastSeq of the devices listed in a JSON array,
// a seek by ID each (the + keeps the planner from scanning the index of
// every device credential, credentials_user, for the kind instead).
const lastSeqsQuery = `SELECT id, last_seq FROM credentials
	WHERE id IN (SELECT value FROM json_each(?)) AND +kind = 'device'`

// maxIDQuery finds the largest reading ID of both tables: the last
// pack's last reading, or the last row.
const maxIDQuery = `SELECT max(coalesce((SELECT max(id) FROM observations), 0),
	coalesce((SELECT id + n - 1 FROM observation_packs ORDER BY id DESC LIMIT 1), 0))`

// addMinuteQuery records a minute with readings of a patient's code.
const addMinuteQuery = `INSERT OR IGNORE INTO observation_minutes (patient_id, code, minute) VALUES (?, ?, ?)`

// advanceQuery sets the LastSeq of the devices given as a JSON object
// {"id": lastSeq, ...}. An object's members come out of json_each as a
// key and a number; the [id, lastSeq] pairs of an array came out as JSON
// text that each ->> parsed again, half the statement's cost.
const advanceQuery = `UPDATE credentials SET last_seq = max(last_seq, a.value)
	FROM json_each(?) AS a WHERE credentials.id = a.key`

// begin takes tx as the commit in hand.
func (st *appender) begin(tx *sql.Tx) {
	st.tx = tx
	st.packs.cols = packColumns
	if st.stored == nil {
		st.found, st.stored = make(map[int64]int64), make(map[int64]int64)
		st.seen = make(map[seqCode]bool)
		st.minutes, st.newMinutes = make(map[patientCode]int64), make(map[codeMinute]bool)
		st.sets, st.newSets = make(map[string]int64), make(map[string]int64)
	}
}

// end forgets the commit in hand.
func (st *appender) end() {
	q := &st.packs
	for i, s := range q.txInserts {
		if s != nil {
			s.Close() // the transaction's handle; the statement stays prepared
			q.txInserts[i] = nil
		}
	}
	clear(q.rows)
	q.rows, st.blobs = q.rows[:0], st.blobs[:0]
	for i := range st.open { // a failed commit's call
		clear(st.open[i].obs)
		st.open[i].obs, st.open[i].codes = st.open[i].obs[:0], st.open[i].codes[:0]
	}
	st.open = st.open[:0]
	clear(st.found)
	clear(st.stored)
	clear(st.seen)
	clear(st.newMinutes)
	clear(st.newSets)
	st.advanced, st.tx = st.advanced[:0], nil
	st.boxes = boxes{} // hold no caller's strings past their commit
}

// close releases the prepared statements.
func (st *appender) close() {
	st.mu.Lock()
	defer st.mu.Unlock()
	stmts := append([]*sql.Stmt{st.lastSeqs, st.advance, st.addMinute, st.maxID}, st.packs.inserts[:]...)
	for _, s := range stmts {
		if s != nil {
			s.Close()
		}
	}
}

// prepare prepares the statements on the writer's pool, once. It
// cannot in a transaction: the pool's one connection is the
// transaction's.
func (st *appender) prepare(ctx context.Context) error {
	if st.lastSeqs != nil {
		return nil
	}
	type stmt struct {
		p     **sql.Stmt
		query string
	}
	var stmts []stmt
	for k, q := range insertQueries() {
		stmts = append(stmts, stmt{&st.packs.inserts[k], q})
	}
	// lastSeqs last: once it is prepared, all are.
	stmts = append(stmts, stmt{&st.advance, advanceQuery}, stmt{&st.addMinute, addMinuteQuery},
		stmt{&st.maxID, maxIDQuery}, stmt{&st.lastSeqs, lastSeqsQuery})
	for _, s := range stmts {
		if *s.p != nil {
			continue
		}
		prepared, err := st.w.PrepareContext(ctx, s.query)
		if err != nil {
			return err
		}
		*s.p = prepared
	}
	return nil
}

// readMaxID finds the ID the commit's first reading takes.
func (st *appender) readMaxID(ctx context.Context) error {
	stmt := st.tx.StmtContext(ctx, st.maxID)
	defer stmt.Close()
	var id int64
	if err := stmt.QueryRowContext(ctx).Scan(&id); err != nil {
		return err
	}
	st.nextID = id + 1
	return nil
}

// readLastSeqs finds the LastSeq of the batch's devices; a device that is
// not found is not in stored.
func (st *appender) readLastSeqs(ctx context.Context, batch []appendReq) error {
	st.list = append(st.list[:0], '[')
	for _, rq := range batch {
		if rq.deviceID == 0 {
			continue
		}
		if len(st.list) > 1 {
			st.list = append(st.list, ',')
		}
		st.list = strconv.AppendInt(st.list, rq.deviceID, 10)
	}
	if len(st.list) == 1 {
		return nil
	}
	st.list = append(st.list, ']')
	// The transaction finds the statement prepared on its connection.
	stmt := st.tx.StmtContext(ctx, st.lastSeqs)
	defer stmt.Close()
	rows, err := stmt.QueryContext(ctx, string(st.list))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, last int64
		if err := rows.Scan(&id, &last); err != nil {
			return err
		}
		st.found[id], st.stored[id] = last, last
	}
	return rows.Err()
}

// advanceLastSeqs writes the LastSeq of the devices the commit advanced.
func (st *appender) advanceLastSeqs(ctx context.Context) error {
	if len(st.advanced) == 0 {
		return nil
	}
	st.list = append(st.list[:0], '{')
	for i, id := range st.advanced {
		if i > 0 {
			st.list = append(st.list, ',')
		}
		st.list = append(st.list, '"')
		st.list = strconv.AppendInt(st.list, id, 10)
		st.list = append(st.list, '"', ':')
		st.list = strconv.AppendInt(st.list, st.stored[id], 10)
	}
	st.list = append(st.list, '}')
	stmt := st.tx.StmtContext(ctx, st.advance)
	defer stmt.Close()
	_, err := stmt.ExecContext(ctx, string(st.list))
	return err
}

// addMinutes records the minutes of the commit's readings that are not
// known stored: for each patient's code, the first reading of each minute.
func (st *appender) addMinutes(ctx context.Context) error {
	if len(st.newMinutes) == 0 {
		return nil
	}
	stmt := st.tx.StmtContext(ctx, st.addMinute)
	defer stmt.Close()
	for h := range st.newMinutes {
		if _, err := stmt.ExecContext(ctx, h.patient, h.code, h.minute); err != nil {
			return err
		}
	}
	return nil
}

// committed notes what the commit in hand stored, once it has.
func (st *appender) committed() {
	for k, id := range st.newSets {
		if len(st.sets) < maxCodeSets {
			st.sets[k] = id
		}
	}
	for h := range st.newMinutes {
		if last, known := st.minutes[h.patientCode]; !known || h.minute > last {
			st.minutes[h.patientCode] = h.minute
		}
	}
}

// add puts o in the call's pack of its patient, device, relayed device
// and minute.
func (st *appender) add(o store.Observation) {
	at := ms(o.EffectiveAt)
	minute := minuteOf(at)
	pc := patientCode{o.PatientID, o.Code}
	if h, known := st.minutes[pc]; !known || h != minute {
		st.newMinutes[codeMinute{pc, minute}] = true
	}
	for i := range st.open {
		if p := &st.open[i]; p.take(&o, minute) {
			p.obs = append(p.obs, o)
			return
		}
	}
	if len(st.open) < cap(st.open) {
		st.open = st.open[:len(st.open)+1] // keeps the readings' buffer
	} else {
		st.open = append(st.open, openPack{})
	}
	p := &st.open[len(st.open)-1]
	p.patient, p.device, p.relayed, p.minute = o.PatientID, o.DeviceID, o.Relayed, minute
	p.obs = append(p.obs[:0], o)
	p.codes = append(p.codes[:0], packCode{o.Code, 1})
}

// queueOpen encodes the call's packs, takes their IDs, and queues them,
// inserting what is queued once a statement's worth is.
func (st *appender) queueOpen(ctx context.Context) error {
	for i := range st.open {
		p := &st.open[i]
		first := ms(p.obs[0].EffectiveAt)
		last := first
		for _, o := range p.obs {
			first, last = min(first, ms(o.EffectiveAt)), max(last, ms(o.EffectiveAt))
		}
		received := ms(p.obs[0].ReceivedAt)
		codesID, err := st.codeSetID(ctx, p.codes)
		if err != nil {
			return err
		}
		start := len(st.blobs)
		var flagged bool
		st.blobs, flagged = appendPack(st.blobs, p.obs, p.codes, first, received)
		b := &st.boxes
		q := &st.packs
		q.rows = append(q.rows, st.nextID, b.patient.box(p.patient), b.device.box(p.device), b.relayed.box(p.relayed),
			b.received.box(received), first, last, len(p.obs), b.codes.box(codesID), flagged, st.blobs[start:len(st.blobs):len(st.blobs)])
		st.nextID += int64(len(p.obs))
		clear(p.obs) // hold no caller's strings
		clear(p.codes)
		p.obs, p.codes = p.obs[:0], p.codes[:0]
		if len(q.rows) >= insertRows*q.cols {
			if err := st.flushQueue(ctx, q); err != nil {
				return err
			}
		}
	}
	st.open = st.open[:0]
	return nil
}

// flushQueue inserts q's rows: a full statement's worth with one
// statement, fewer with one for each power of two in their number.
func (st *appender) flushQueue(ctx context.Context, q *rowQueue) error {
	n := len(q.rows) / q.cols
	for k := insertSizes - 1; n > 0; k-- {
		size := 1 << k
		if n < size {
			continue
		}
		stmt := q.txInserts[k]
		if stmt == nil {
			stmt = st.tx.StmtContext(ctx, q.inserts[k])
			q.txInserts[k] = stmt
		}
		from := len(q.rows) - n*q.cols
		if _, err := stmt.ExecContext(ctx, q.rows[from:from+size*q.cols]...); err != nil {
			return err
		}
		n -= size
	}
	clear(q.rows)
	q.rows, st.blobs = q.rows[:0], st.blobs[:0]
	return nil
}

// boxes keeps the values a commit's rows repeat (a call's patient and
// device, the commit's time of receipt, the catalogue's codes and units)
// as the interface values the statements take, rather than allocating
// one for each row. It is emptied after each commit.
type boxes struct {
	patient, device, received, relayed, codes lastBox
	texts                                     [16]struct {
		s   string
		box any
	}
	next int // the entry of texts to replace next
}

// lastBox is the last integer boxed and its box.
type lastBox struct {
	v     int64
	boxed any
}

// box returns v as an interface value, the last one's if v is the same.
func (l *lastBox) box(v int64) any {
	if l.boxed == nil || l.v != v {
		l.v, l.boxed = v, v
	}
	return l.boxed
}

// text returns s as an interface value, one kept if s is among the
// latest few.
func (b *boxes) text(s string) any {
	for i := range b.texts {
		if t := &b.texts[i]; t.box != nil && t.s == s {
			return t.box
		}
	}
	t := &b.texts[b.next]
	t.s, t.box = s, s
	b.next = (b.next + 1) % len(b.texts)
	return t.box
}

// codeSetID finds the ID of a pack's codes in observation_code_sets,
// adding them if they are new.
func (st *appender) codeSetID(ctx context.Context, codes []packCode) (int64, error) {
	st.key = appendCodes(st.key[:0], codes)
	if id, ok := st.sets[string(st.key)]; ok {
		return id, nil
	}
	if id, ok := st.newSets[string(st.key)]; ok {
		return id, nil
	}
	var id int64
	err := st.tx.QueryRowContext(ctx, `SELECT id FROM observation_code_sets WHERE codes = ?`, st.key).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = st.tx.QueryRowContext(ctx, `INSERT INTO observation_code_sets (codes) VALUES (?) RETURNING id`, st.key).Scan(&id)
	}
	if err != nil {
		return 0, err
	}
	st.newSets[string(st.key)] = id
	return id, nil
}

// insertQueries are the INSERTs of 1<<k packs, by k.
func insertQueries() []string {
	qs := make([]string, insertSizes)
	for k := range qs {
		var q strings.Builder
		q.WriteString(`INSERT INTO observation_packs (id, patient_id, device_id, relayed_id, received_at, first_at, last_at, n, codes_id, flagged, readings) VALUES `)
		for i := range 1 << k {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		}
		qs[k] = q.String()
	}
	return qs
}

// seqCode is a numbered reading's key within one device's call.
type seqCode struct {
	seq  int64
	code string
}

// appendOne writes one call's rows; its own error (an unknown device, a
// reading out of its sequence) is mine, a failed statement fails the
// transaction.
func (st *appender) appendOne(ctx context.Context, rq appendReq, now time.Time) (mine, failed error) {
	if err := store.CheckSequenced(rq.deviceID, rq.lastSeq, rq.obs); err != nil {
		return err, nil
	}
	for _, o := range rq.obs {
		// SQLite stored NaN as NULL, which the rows refused, failing
		// the whole commit; a pack would keep it. Neither is a reading.
		if math.IsNaN(o.Value) || math.IsInf(o.Value, 0) {
			return fmt.Errorf("reading %s at %v: value %v is not a number", o.Code, o.EffectiveAt, o.Value), nil
		}
	}
	var stored int64 // readings numbered up to here are stored already
	if rq.deviceID != 0 {
		var known bool
		if stored, known = st.stored[rq.deviceID]; !known {
			return fmt.Errorf("device %d: %w", rq.deviceID, store.ErrNotFound), nil
		}
		if rq.lastSeq > stored {
			if stored == st.found[rq.deviceID] { // not advanced yet
				st.advanced = append(st.advanced, rq.deviceID)
			}
			st.stored[rq.deviceID] = rq.lastSeq
		}
	}
	clear(st.seen)
	for _, o := range rq.obs {
		if o.Seq > 0 {
			k := seqCode{o.Seq, o.Code}
			if o.Seq <= stored || st.seen[k] {
				continue // a resend: stored by an earlier call, or just now
			}
			st.seen[k] = true
		}
		if o.DeviceID == 0 {
			o.DeviceID = rq.deviceID
		}
		if o.ReceivedAt.IsZero() {
			o.ReceivedAt = now
		}
		st.add(o)
	}
	return nil, st.queueOpen(ctx)
}

// AppendDeviceEvent stores a device connecting or disconnecting.
func (s *DB) AppendDeviceEvent(ctx context.Context, e store.DeviceEvent) (store.DeviceEvent, error) {
	res, err := s.w.ExecContext(ctx, `INSERT INTO device_events (patient_id, device_id, device_name, relay, kind, at) VALUES (?, ?, ?, ?, ?, ?)`,
		e.PatientID, e.DeviceID, e.Device, e.Relay, e.Kind, ms(e.At))
	if err != nil {
		return e, wrap(err, "store device %d event", e.DeviceID)
	}
	e.ID, _ = res.LastInsertId()
	e.At = norm(e.At)
	return e, nil
}

// DeviceEventsBetween lists a patient's device events in [from, to),
// oldest first.
func (s *DB) DeviceEventsBetween(ctx context.Context, patientID int64, from, to time.Time) ([]store.DeviceEvent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, patient_id, device_id, device_name, relay, kind, at FROM device_events
		WHERE patient_id = ? AND at >= ? AND at < ? ORDER BY at, id`, patientID, ms(from), ms(to))
	out, err := collect(rows, err, func(r scanner) (store.DeviceEvent, error) {
		var e store.DeviceEvent
		var t int64
		err := r.Scan(&e.ID, &e.PatientID, &e.DeviceID, &e.Device, &e.Relay, &e.Kind, &t)
		e.At = at(t)
		return e, err
	})
	if err != nil {
		return nil, wrap(err, "list device events of patient %d", patientID)
	}
	return out, nil
}

// relayedCols are a relayed device's columns, r joined with its relay c.
const relayedCols = `r.id, r.relay_id, c.user_id, r.name, c.name, r.created_at`

func scanRelayed(r scanner) (store.RelayedDevice, error) {
	var d store.RelayedDevice
	var created int64
	err := r.Scan(&d.ID, &d.RelayID, &d.PatientID, &d.Name, &d.Relay, &created)
	d.CreatedAt = at(created)
	return d, err
}

// RelayedDevice finds the device relayID relays as name, keeping it if
// it is new.
func (s *DB) RelayedDevice(ctx context.Context, relayID int64, name string) (store.RelayedDevice, error) {
	if name == "" {
		return store.RelayedDevice{}, fmt.Errorf("relayed device of device %d: no name", relayID)
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO relayed_devices (relay_id, name, created_at)
		SELECT id, ?, ? FROM credentials WHERE id = ? AND kind = 'device'
		AND (SELECT count(*) FROM relayed_devices WHERE relay_id = ?) < ?
		ON CONFLICT (relay_id, name) DO NOTHING`, name, ms(time.Now()), relayID, relayID, store.MaxRelayedDevices); err != nil {
		return store.RelayedDevice{}, wrap(err, "keep relayed device of device %d", relayID)
	}
	d, err := scanRelayed(s.w.QueryRowContext(ctx, `SELECT `+relayedCols+` FROM relayed_devices r
		JOIN credentials c ON c.id = r.relay_id WHERE r.relay_id = ? AND r.name = ?`, relayID, name))
	if errors.Is(err, sql.ErrNoRows) && s.relayFull(ctx, relayID) {
		return d, fmt.Errorf("relayed device of device %d: %w", relayID, store.ErrTooManyRelayed)
	}
	if err != nil {
		return d, wrap(err, "relayed device of device %d", relayID)
	}
	return d, nil
}

// relayFull reports whether relayID, a device, has as many relayed
// devices as it may keep.
func (s *DB) relayFull(ctx context.Context, relayID int64) bool {
	var n int
	err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM relayed_devices r JOIN credentials c ON c.id = r.relay_id
		WHERE r.relay_id = ? AND c.kind = 'device'`, relayID).Scan(&n)
	return err == nil && n >= store.MaxRelayedDevices
}

// RelayedDeviceByID finds one relayed device.
func (s *DB) RelayedDeviceByID(ctx context.Context, id int64) (store.RelayedDevice, error) {
	d, err := scanRelayed(s.r.QueryRowContext(ctx, `SELECT `+relayedCols+` FROM relayed_devices r
		JOIN credentials c ON c.id = r.relay_id WHERE r.id = ?`, id))
	if err != nil {
		return d, wrap(err, "relayed device %d", id)
	}
	return d, nil
}

// RelayedDevices lists the devices a patient's relays relayed, oldest
// first.
func (s *DB) RelayedDevices(ctx context.Context, patientID int64) ([]store.RelayedDevice, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+relayedCols+` FROM credentials c
		JOIN relayed_devices r ON r.relay_id = c.id WHERE c.kind = 'device' AND c.user_id = ? ORDER BY r.id`, patientID)
	out, err := collect(rows, err, scanRelayed)
	if err != nil {
		return nil, wrap(err, "relayed devices of patient %d", patientID)
	}
	return out, nil
}
