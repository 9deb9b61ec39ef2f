package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/bedside-health/bedside/store"
)

// A pack is the readings one AppendObservations call stored of one
// patient, device and relayed device within one minute, as one row of
// observation_packs (migration 0024): a row and an index entry for each
// reading cost two thirds of a commit of live readings, and most of that
// is per row. The readings' IDs are the pack's ID and those after it, one
// each, in the order of the call; what they share is the row's columns,
// what they do not is its readings value, encoded by appendPack.
//
// A pack's codes, each with how many of its readings have it, are a row
// of observation_code_sets that the pack names (codes_id): packs of one
// device's stream share a few, and the index of packs holds the ID, so
// that a search counts the readings of a code from the index alone. The
// set is encoded by appendCodes:
//
//	uvarint k, then k times: code (uvarint length, bytes), count (uvarint)
//
// The readings value is a version byte (packVersion), then each reading
// in turn:
//
//	code         uvarint, its index in the pack's codes
//	seq          varint (zigzag)
//	value        8 bytes, IEEE 754 binary64, little-endian
//	unit         uvarint length, bytes
//	effective_at uvarint, milliseconds after the pack's first_at
//	received_at  varint (zigzag), milliseconds after the pack's received_at
//	flags        uvarint length, bytes (store.JoinFlags; empty for none)
//
// A pack never spans two minutes of observation_minutes, so the minutes
// still say where a code has readings, and a reading effective in minute
// m is in a pack whose last_at (and first_at) is in minute m too.
type pack struct {
	id, patient, device, relayed int64
	codesID                      int64
	receivedAt, firstAt, lastAt  int64 // Unix milliseconds
	n                            int
	flagged                      bool
	readings                     []byte
}

// packVersion is the first byte of a pack's readings.
const packVersion = 1

// maxPackReadings bounds the readings of one pack, and maxPackCodes its
// codes: an AppendObservations call is one device's readings of an ack
// interval, a handful a second of a few codes; a larger one is split.
const (
	maxPackReadings = 4096
	maxPackCodes    = 64
)

// errPack reports a pack's readings that do not decode: the store is
// damaged, since only appendPack writes them.
var errPack = errors.New("stored pack of readings does not decode")

// packCode is one of a pack's codes and how many readings have it.
type packCode struct {
	code string
	n    int
}

// appendCodes encodes a pack's codes after b.
func appendCodes(b []byte, codes []packCode) []byte {
	b = binary.AppendUvarint(b, uint64(len(codes)))
	for _, c := range codes {
		b = appendString(b, c.code)
		b = binary.AppendUvarint(b, uint64(c.n))
	}
	return b
}

// decodeCodes decodes a pack's codes.
func decodeCodes(b []byte) ([]packCode, error) {
	r := packReader{b: b}
	k, ok := r.uvarint()
	if !ok || k == 0 || k > maxPackCodes {
		return nil, fmt.Errorf("codes: %d of them: %w", k, errPack)
	}
	codes := make([]packCode, 0, k)
	for range k {
		code, ok := r.text()
		n, ok2 := r.uvarint()
		if !ok || !ok2 || n == 0 || n > maxPackReadings {
			return nil, fmt.Errorf("codes: truncated: %w", errPack)
		}
		codes = append(codes, packCode{code, int(n)})
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("codes: %d bytes after them: %w", len(r.b), errPack)
	}
	return codes, nil
}

// appendPack encodes obs, readings of one pack whose codes are codes
// (each reading's among them), whose earliest is effective at firstAt and
// which was received at receivedAt, after b; flagged reports whether a
// reading carries flags (the pack's flagged column).
func appendPack(b []byte, obs []store.Observation, codes []packCode, firstAt, receivedAt int64) (_ []byte, flagged bool) {
	b = append(b, packVersion)
	for _, o := range obs {
		k := 0
		for codes[k].code != o.Code {
			k++
		}
		b = binary.AppendUvarint(b, uint64(k))
		b = binary.AppendVarint(b, o.Seq)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(o.Value))
		b = appendString(b, o.Unit)
		b = binary.AppendUvarint(b, uint64(ms(o.EffectiveAt)-firstAt))
		b = binary.AppendVarint(b, ms(o.ReceivedAt)-receivedAt)
		flags := ""
		if len(o.Flags) > 0 {
			flags = store.JoinFlags(o.Flags)
		}
		b = appendString(b, flags)
		flagged = flagged || flags != ""
	}
	return b, flagged
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// packReader decodes a pack's readings one at a time. The strings it
// returns (units) are interned across the packs it reads: a patient's
// readings repeat a few.
type packReader struct {
	// sets finds the codes of a pack (DB.codeSet).
	sets  func(id int64) ([]packCode, error)
	p     *pack
	b     []byte
	codes []packCode
	i     int // the next reading's index
	err   error
	texts map[string]string
}

// reset starts reading p.
func (r *packReader) reset(p *pack) error {
	r.p, r.i, r.err = p, 0, nil
	r.b = p.readings
	if r.codes, r.err = r.sets(p.codesID); r.err != nil {
		r.err = fmt.Errorf("pack %d: %w", p.id, r.err)
		return r.err
	}
	if len(r.b) == 0 || r.b[0] != packVersion {
		r.fail("version %v", r.b[:min(len(r.b), 1)])
		return r.err
	}
	r.b = r.b[1:]
	if p.lastAt < p.firstAt {
		r.fail("its last reading at %d before its first at %d", p.lastAt, p.firstAt)
		return r.err
	}
	if sum := countCodes(r.codes, nil); sum != p.n {
		r.fail("its codes count %d readings, the pack %d", sum, p.n)
	}
	return r.err
}

// countCodes is how many readings of a pack whose codes are codes have
// one of only (all, for nil).
func countCodes(codes []packCode, only []string) int {
	n := 0
	for _, c := range codes {
		if only == nil || slices.Contains(only, c.code) {
			n += c.n
		}
	}
	return n
}

// hasCode reports whether a pack whose codes are codes has a reading of
// code.
func hasCode(codes []packCode, code string) bool {
	return slices.ContainsFunc(codes, func(c packCode) bool { return c.code == code })
}

// next decodes the next reading into o; false at the pack's end, or at
// an error (r.err).
func (r *packReader) next(o *store.Observation) bool {
	if r.err != nil {
		return false
	}
	if r.i == r.p.n {
		if len(r.b) != 0 {
			r.fail("%d bytes after its %d readings", len(r.b), r.p.n)
		}
		return false
	}
	k, ok := r.uvarint()
	seq, ok2 := r.varint()
	if !ok || !ok2 || k >= uint64(len(r.codes)) || len(r.b) < 8 {
		return r.fail("reading %d: truncated", r.i)
	}
	value := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	unit, ok := r.text()
	eff, ok2 := r.uvarint()
	rec, ok3 := r.varint()
	flags, ok4 := r.text()
	if !ok || !ok2 || !ok3 || !ok4 {
		return r.fail("reading %d: truncated", r.i)
	}
	if eff > uint64(r.p.lastAt-r.p.firstAt) {
		return r.fail("reading %d: effective %d ms after the pack's first, its last %d", r.i, eff, r.p.lastAt-r.p.firstAt)
	}
	*o = store.Observation{
		ID: r.p.id + int64(r.i), PatientID: r.p.patient, DeviceID: r.p.device, Seq: seq,
		Code: r.codes[k].code, Value: value, Unit: unit,
		EffectiveAt: at(r.p.firstAt + int64(eff)), ReceivedAt: at(r.p.receivedAt + rec),
		Relayed: r.p.relayed,
	}
	if flags != "" {
		o.Flags = store.SplitFlags(flags)
	}
	r.i++
	return true
}

func (r *packReader) fail(format string, args ...any) bool {
	r.err = fmt.Errorf("pack %d: %s: %w", r.p.id, fmt.Sprintf(format, args...), errPack)
	return false
}

func (r *packReader) varint() (int64, bool) {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		return 0, false
	}
	r.b = r.b[n:]
	return v, true
}

func (r *packReader) uvarint() (uint64, bool) {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		return 0, false
	}
	r.b = r.b[n:]
	return v, true
}

// text decodes a string, interned.
func (r *packReader) text() (string, bool) {
	l, ok := r.uvarint()
	if !ok || l > uint64(len(r.b)) {
		return "", false
	}
	raw := r.b[:l]
	r.b = r.b[l:]
	if r.texts == nil {
		r.texts = make(map[string]string)
	}
	if s, ok := r.texts[string(raw)]; ok { // no allocation to look up
		return s, true
	}
	s := string(raw)
	if len(r.texts) < 256 {
		r.texts[s] = s
	}
	return s, true
}

// decodePack decodes all of p's readings after out.
func decodePack(out []store.Observation, p *pack, r *packReader) ([]store.Observation, error) {
	if err := r.reset(p); err != nil {
		return out, err
	}
	var o store.Observation
	for r.next(&o) {
		out = append(out, o)
	}
	return out, r.err
}

// minuteOf is the minute of observation_minutes of an effective time in
// Unix milliseconds. Go's division truncates toward zero, as SQLite's
// does, which wrote the minutes before the store wrote them in Go.
func minuteOf(ms int64) int64 { return ms / minuteMillis }

// minuteBounds are the effective times, [start, end), of minute m: see
// minuteStart.
func minuteBounds(m int64) (start, end int64) {
	if m > 0 {
		start = m * minuteMillis
	} else {
		start = m*minuteMillis - minuteMillis + 1
	}
	if m < 0 {
		end = m*minuteMillis + 1
	} else {
		end = m*minuteMillis + minuteMillis
	}
	return start, end
}

// maxCodeSets bounds the sets of codes the writer and the readers keep
// in memory: a device's stream repeats a few; past that many (readings
// of ever new sets of codes), the rest are read from the store each time.
const maxCodeSets = 4096

// codeSets caches the rows of observation_code_sets by ID: they never
// change once written.
type codeSets struct {
	mu   sync.RWMutex
	byID map[int64][]packCode
}

// querier is a connection of the store's or a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// codeSet finds the codes of observation_code_sets' row id, reading
// them through q: a reader in a transaction holds one of the readers'
// connections, and must not wait for another.
func (s *DB) codeSet(ctx context.Context, q querier, id int64) ([]packCode, error) {
	c := &s.sets
	c.mu.RLock()
	codes, ok := c.byID[id]
	c.mu.RUnlock()
	if ok {
		return codes, nil
	}
	var b []byte
	err := q.QueryRowContext(ctx, `SELECT codes FROM observation_code_sets WHERE id = ?`, id).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		// Not "not found": the pack that names it is.
		err = errPack
	}
	if err != nil {
		return nil, fmt.Errorf("codes %d: %w", id, err)
	}
	codes, err = decodeCodes(b)
	if err != nil {
		return nil, fmt.Errorf("codes %d: %w", id, err)
	}
	c.mu.Lock()
	if c.byID == nil {
		c.byID = make(map[int64][]packCode)
	}
	if len(c.byID) < maxCodeSets {
		c.byID[id] = codes
	}
	c.mu.Unlock()
	return codes, nil
}

// packReader is a reader of the store's packs, which reads their codes
// through q.
func (s *DB) packReader(ctx context.Context, q querier) *packReader {
	return &packReader{sets: func(id int64) ([]packCode, error) { return s.codeSet(ctx, q, id) }}
}
