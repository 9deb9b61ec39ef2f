package vitals

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// memStore is a small real implementation of the store's observation rules,
// so the Ingester is tested against behaviour rather than call counts: an
// Append is all or nothing, a reading is unique by (device, seq, code), and
// it sets the device's last handled sequence. It also fails the test if
// anything implausible or out of the catalogue's units is ever stored.
type memStore struct {
	t        testing.TB
	mu       sync.Mutex
	rows     []StoredReading
	keys     map[string]bool
	lastSeq  map[int64]int64
	failNext int // Appends still to fail
	appends  int
}

var _ Sink = (*memStore)(nil)

var errDiskFull = errors.New("disk full")

func newMemStore(t testing.TB) *memStore {
	return &memStore{t: t, keys: map[string]bool{}, lastSeq: map[int64]int64{}}
}

func (m *memStore) Append(_ context.Context, deviceID, lastSeq int64, rs []StoredReading) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failNext > 0 {
		m.failNext--
		return errDiskFull
	}
	m.appends++
	for _, r := range rs {
		if unit, ok := Unit(r.Reading.Code); !ok || unit != r.Reading.Unit || !Plausible(r.Reading.Code, r.Reading.Value) || r.Seq < 1 || r.Seq > lastSeq {
			m.t.Errorf("store asked to keep an invalid reading %+v (last seq %d)", r, lastSeq)
		}
		k := fmt.Sprintf("%d/%d/%s", deviceID, r.Seq, r.Reading.Code)
		if m.keys[k] {
			continue
		}
		m.keys[k] = true
		m.rows = append(m.rows, r)
	}
	m.lastSeq[deviceID] = lastSeq
	return nil
}

func (m *memStore) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.rows)
}

func (m *memStore) last(deviceID int64) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastSeq[deviceID]
}

// seqs lists the sequences of the stored readings, in storage order.
func (m *memStore) seqs() []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int64
	for _, r := range m.rows {
		out = append(out, r.Seq)
	}
	return out
}

// memPub records published messages per patient.
type memPub struct {
	mu   sync.Mutex
	msgs map[int64][][]byte
}

var _ Publisher = (*memPub)(nil)

func (p *memPub) Publish(_ context.Context, patientID int64, msg []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.msgs == nil {
		p.msgs = map[int64][][]byte{}
	}
	p.msgs[patientID] = append(p.msgs[patientID], bytes.Clone(msg))
	return nil
}

func (p *memPub) count(patientID int64) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.msgs[patientID])
}
