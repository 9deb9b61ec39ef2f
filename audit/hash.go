package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/bedside-health/bedside/store"
)

// hashVersion names the encoding Hash uses; a new encoding gets a new name,
// so that old and new hashes can never be confused.
const hashVersion = "bedside-audit-v1"

// Hash is the hash of e chained to prev, the hash of the event before it
// (nil or empty for the first event): SHA-256 over hashVersion, e's Seq,
// At (Unix milliseconds, 0 for the zero time), ActorID, ActorRole, Action,
// PatientID, Resource, Address, Outcome, and prev. Every string and prev
// is written with its length before it, and every number as 8 bytes, so no
// two different events encode alike. e.PrevHash and e.Hash are ignored.
func Hash(prev []byte, e store.AuditEvent) []byte {
	var b bytes.Buffer
	str := func(s string) {
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(s))))
		b.WriteString(s)
	}
	num := func(n int64) { b.Write(binary.BigEndian.AppendUint64(nil, uint64(n))) }
	str(hashVersion)
	num(e.Seq)
	num(millis(e.At))
	num(e.ActorID)
	str(e.ActorRole)
	str(e.Action)
	num(e.PatientID)
	str(e.Resource)
	str(e.Address)
	str(e.Outcome)
	str(string(prev))
	sum := sha256.Sum256(b.Bytes())
	return sum[:]
}

// millis is t as the stores keep it: Unix milliseconds, 0 for the zero time.
func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// Kinds of break in the chain.
const (
	// Changed: an event's fields do not match its own hash.
	Changed = "changed"
	// Missing: one or more events are absent where the Seq jumps.
	Missing = "missing"
	// Inserted: an event repeats or goes back in Seq.
	Inserted = "inserted"
	// Unlinked: an event's PrevHash is not the Hash of the event before
	// it, which was changed and rehashed, or events before it were removed
	// or inserted and renumbered.
	Unlinked = "unlinked"
)

// BreakError is where and how the chain breaks: at Seq, the first event
// in chain order that is wrong (for Missing, the first absent Seq).
type BreakError struct {
	Seq  int64
	Kind string // Changed, Missing, Inserted or Unlinked
}

func (e *BreakError) Error() string {
	why := "it does not follow from the event before it: that one was changed, or events were removed or inserted before it"
	switch e.Kind {
	case Changed:
		why = "its fields do not match its hash"
	case Missing:
		why = "the event is gone (deleted)"
	case Inserted:
		why = "the sequence repeats or goes back"
	}
	return fmt.Sprintf("audit chain broken at event %d (%s): %s", e.Seq, e.Kind, why)
}

// chain checks events one after another.
type chain struct {
	next int64  // the Seq the next event must have
	prev []byte // the Hash the next event must chain to
}

// add checks e as the next event and moves on past it.
func (c *chain) add(e store.AuditEvent) error {
	switch {
	case e.Seq > c.next:
		return &BreakError{Seq: c.next, Kind: Missing}
	case e.Seq < c.next:
		return &BreakError{Seq: e.Seq, Kind: Inserted}
	case !bytes.Equal(Hash(e.PrevHash, e), e.Hash):
		return &BreakError{Seq: e.Seq, Kind: Changed}
	case !bytes.Equal(e.PrevHash, c.prev):
		return &BreakError{Seq: e.Seq, Kind: Unlinked}
	}
	c.next, c.prev = e.Seq+1, e.Hash
	return nil
}

// Verify checks that events, in chain order, form an unbroken chain: Seq
// counting up by one from the first event's, each Hash matching its event,
// each PrevHash the Hash before it, the first one's prev (nil for the
// first event of all). It returns the last event's Hash (prev if there are
// none), to verify the next events from; or a *BreakError at the first
// break.
func Verify(events []store.AuditEvent, prev []byte) (last []byte, err error) {
	if len(events) == 0 {
		return prev, nil
	}
	c := chain{next: events[0].Seq, prev: prev}
	for _, e := range events {
		if err := c.add(e); err != nil {
			return nil, err
		}
	}
	return c.prev, nil
}
