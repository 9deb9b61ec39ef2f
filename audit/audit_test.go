package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

// memory is an audit trail in memory, chained as the stores chain it.
type memory struct {
	mu     sync.Mutex
	events []store.AuditEvent
	fail   error
}

func (m *memory) AppendAudit(_ context.Context, e store.AuditEvent) (store.AuditEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return e, m.fail
	}
	e.Seq = int64(len(m.events) + 1)
	if len(m.events) > 0 {
		e.PrevHash = m.events[len(m.events)-1].Hash
	}
	e.Hash = Hash(e.PrevHash, e)
	m.events = append(m.events, e)
	return e, nil
}

func (m *memory) AuditEvents(_ context.Context, q store.AuditQuery) ([]store.AuditEvent, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.AuditEvent
	for _, e := range m.events {
		if e.Seq > q.AfterSeq {
			out = append(out, e)
		}
	}
	total := len(out)
	limit := q.Limit
	if limit == 0 {
		limit = 100
	}
	return out[:min(limit, len(out))], total, nil
}

var t0 = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

func event(i int) store.AuditEvent {
	return store.AuditEvent{At: t0.Add(time.Duration(i) * time.Second), ActorID: 3, ActorRole: "physician", Action: ActionRead,
		PatientID: 4, Resource: Ref("Appointment", int64(i)), Address: "192.0.2.7", Outcome: OutcomeSuccess}
}

// trail is n events, chained.
func trail(n int) *memory {
	m := &memory{}
	for i := range n {
		m.AppendAudit(context.Background(), event(i))
	}
	return m
}

func TestHashCoversEveryFieldUnambiguously(t *testing.T) {
	base := event(1)
	h := Hash([]byte("prev"), base)
	if len(h) != 32 || !bytes.Equal(h, Hash([]byte("prev"), base)) {
		t.Fatalf("Hash is not a stable SHA-256: %x", h)
	}
	for name, change := range map[string]func(*store.AuditEvent){
		"seq":      func(e *store.AuditEvent) { e.Seq++ },
		"at":       func(e *store.AuditEvent) { e.At = e.At.Add(time.Millisecond) },
		"actor":    func(e *store.AuditEvent) { e.ActorID++ },
		"role":     func(e *store.AuditEvent) { e.ActorRole = "admin" },
		"action":   func(e *store.AuditEvent) { e.Action = ActionUpdate },
		"patient":  func(e *store.AuditEvent) { e.PatientID++ },
		"resource": func(e *store.AuditEvent) { e.Resource = "Appointment/2" },
		"address":  func(e *store.AuditEvent) { e.Address = "192.0.2.8" },
		"outcome":  func(e *store.AuditEvent) { e.Outcome = OutcomeDenied },
		// A boundary moved between two strings must change the hash.
		"boundary": func(e *store.AuditEvent) { e.ActorRole, e.Action = "physicianr", "ead" },
	} {
		e := base
		change(&e)
		if bytes.Equal(Hash([]byte("prev"), e), h) {
			t.Errorf("changing %s leaves the hash as it was", name)
		}
	}
	if bytes.Equal(Hash([]byte("other"), base), h) {
		t.Error("the previous hash is not covered")
	}
	e := base
	e.At = e.At.Add(999 * time.Microsecond) // below the stores' precision
	e.PrevHash, e.Hash = []byte("x"), []byte("y")
	if !bytes.Equal(Hash([]byte("prev"), e), h) {
		t.Error("sub-millisecond time, PrevHash or Hash changed the hash")
	}
}

func TestVerify(t *testing.T) {
	good := trail(6).events
	if last, err := Verify(good, nil); err != nil || !bytes.Equal(last, good[5].Hash) {
		t.Fatalf("Verify(good) = %x, %v", last, err)
	}
	// A later part of the chain verifies from the hash before it.
	if _, err := Verify(good[3:], good[2].Hash); err != nil {
		t.Fatalf("Verify(good[3:]) = %v", err)
	}
	if last, err := Verify(nil, []byte("h")); err != nil || string(last) != "h" {
		t.Fatalf("Verify(nil) = %q, %v", last, err)
	}
	rehashed := func(i int, f func(*store.AuditEvent)) []store.AuditEvent {
		evs := append([]store.AuditEvent(nil), good...)
		f(&evs[i])
		evs[i].Hash = Hash(evs[i].PrevHash, evs[i])
		return evs
	}
	for _, c := range []struct {
		name   string
		events []store.AuditEvent
		prev   []byte
		seq    int64
		kind   string
	}{
		{"changed", func() []store.AuditEvent {
			evs := append([]store.AuditEvent(nil), good...)
			evs[2].Resource = "Appointment/99"
			return evs
		}(), nil, 3, Changed},
		{"missing", append(append([]store.AuditEvent(nil), good[:2]...), good[3:]...), nil, 3, Missing},
		{"inserted", append(append(append([]store.AuditEvent(nil), good[:3]...), good[2]), good[3:]...), nil, 3, Inserted},
		{"changed and rehashed", rehashed(2, func(e *store.AuditEvent) { e.PatientID = 9 }), nil, 4, Unlinked},
		{"wrong start", good[3:], good[1].Hash, 4, Unlinked},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Verify(c.events, c.prev)
			var b *BreakError
			if !errors.As(err, &b) || b.Seq != c.seq || b.Kind != c.kind {
				t.Fatalf("Verify = %v, want a break at %d (%s)", err, c.seq, c.kind)
			}
			if !strings.Contains(err.Error(), fmt.Sprint("event ", c.seq)) || !strings.Contains(err.Error(), "("+c.kind+")") {
				t.Errorf("the message %q does not name the event and what is wrong", err)
			}
		})
	}
}

func TestVerifyStoreWalksEveryPage(t *testing.T) {
	ctx := context.Background()
	m := trail(2*verifyPage + 5)
	if up, err := VerifiedUpTo(ctx, m); err != nil || up != int64(len(m.events)) {
		t.Fatalf("VerifiedUpTo = %d, %v; want %d", up, err, len(m.events))
	}
	m.events[verifyPage+10].Address = "203.0.113.1" // in the second page
	var b *BreakError
	if up, err := VerifiedUpTo(ctx, m); !errors.As(err, &b) || b.Seq != verifyPage+11 || up != verifyPage+10 {
		t.Fatalf("VerifiedUpTo = %d, %v; want a break at %d", up, err, verifyPage+11)
	}
	m.events = append(m.events[:2], m.events[3:]...) // event 3 deleted
	if err := VerifyStore(ctx, m); !errors.As(err, &b) || b.Seq != 3 || b.Kind != Missing {
		t.Fatalf("VerifyStore = %v, want event 3 missing", err)
	}
	if err := VerifyStore(ctx, &memory{}); err != nil {
		t.Fatalf("an empty trail: %v", err)
	}
}

func TestRecorder(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	m := &memory{}
	rec := &Recorder{Store: m, Log: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return t0 }}
	r := httptest.NewRequest("GET", "/fhir/Patient/4", nil)
	r.RemoteAddr = "[2001:db8::5]:51234"
	who := User(store.User{ID: 3, Role: store.RolePhysician}, r)
	cctx, cancel := context.WithCancel(ctx)
	cancel() // the client hung up: the event is still recorded
	rec.Success(cctx, who, ActionRead, 4, "Patient/4")
	rec.Denied(ctx, who, ActionUpdate, 4, "Appointment/12")
	rec.Failed(ctx, Who{}, ActionCreate, 0, "Appointment")
	rec.Record(ctx, store.AuditEvent{At: t0.Add(time.Hour), ActorRole: RoleDevice, ActorID: 9, Action: "stream",
		PatientID: 4, Resource: "vitals/live", Address: "192.0.2.1:80", Outcome: OutcomeSuccess})
	want := []store.AuditEvent{
		{At: t0, ActorID: 3, ActorRole: "physician", Action: "read", PatientID: 4, Resource: "Patient/4", Address: "2001:db8::5", Outcome: "success"},
		{At: t0, ActorID: 3, ActorRole: "physician", Action: "update", PatientID: 4, Resource: "Appointment/12", Address: "2001:db8::5", Outcome: "denied"},
		{At: t0, ActorRole: "anonymous", Action: "create", Resource: "Appointment", Outcome: "failed"},
		{At: t0.Add(time.Hour), ActorID: 9, ActorRole: "device", Action: "stream", PatientID: 4, Resource: "vitals/live", Address: "192.0.2.1", Outcome: "success"},
	}
	if len(m.events) != len(want) {
		t.Fatalf("%d events recorded, want %d", len(m.events), len(want))
	}
	for i, e := range m.events {
		e.Seq, e.PrevHash, e.Hash = 0, nil, nil
		if fmt.Sprintf("%+v", e) != fmt.Sprintf("%+v", want[i]) {
			t.Errorf("event %d = %+v, want %+v", i+1, e, want[i])
		}
	}
	if logs.Len() != 0 {
		t.Errorf("valid events logged: %s", logs.String())
	}

	// Fields that are not identifiers are never stored, nor logged.
	const secret = "SpO2 88 chest pain"
	rec.Record(ctx, store.AuditEvent{ActorID: 3, ActorRole: "physician", Action: "read", PatientID: 4,
		Resource: "Observation/" + secret, Address: secret, Outcome: secret})
	rec.Record(ctx, store.AuditEvent{ActorID: 3, ActorRole: secret, Action: secret, Resource: secret, Outcome: OutcomeSuccess})
	got := m.events[len(m.events)-2:]
	if e := got[0]; e.Resource != "Observation" || e.Address != "invalid" || e.Outcome != "invalid" {
		t.Errorf("bad fields stored as %+v", e)
	}
	if e := got[1]; e.Resource != "invalid" || e.ActorRole != "invalid" || e.Action != "invalid" {
		t.Errorf("bad fields stored as %+v", e)
	}
	if !strings.Contains(logs.String(), "fields refused") || strings.Contains(logs.String(), "SpO2") || strings.Contains(logs.String(), "chest pain") {
		t.Errorf("want the refusal logged without the values: %s", logs.String())
	}

	// A store that fails: logged loudly, with identifiers only; no panic.
	logs.Reset()
	m.fail = errors.New("disk full")
	rec.Success(ctx, who, ActionRead, 4, "Patient/4")
	if s := logs.String(); !strings.Contains(s, "level=ERROR") || !strings.Contains(s, "AUDIT EVENT NOT RECORDED") ||
		!strings.Contains(s, "resource=Patient/4") || !strings.Contains(s, "disk full") {
		t.Errorf("failure log: %s", s)
	}

	// A nil Recorder records nothing and does not panic.
	var none *Recorder
	none.Success(ctx, who, ActionRead, 4, "Patient/4")
	(&Recorder{}).Record(ctx, event(1))
}

// TestRepeated: a summary's resource reads back as the first event's and
// its count, is stored as it is even after four segments, and nothing
// else passes for one.
func TestRepeated(t *testing.T) {
	for _, c := range []struct {
		first string
		n     int
	}{{"Observation", 56}, {"password-link", 1}, {"Appointment/12/guest/5/vitals", 1234567}} {
		res := Repeated(c.first, c.n)
		if first, n := RepeatCount(res); first != c.first || n != c.n {
			t.Errorf("RepeatCount(%q) = %q, %d; want %q, %d", res, first, n, c.first, c.n)
		}
		e := store.AuditEvent{ActorRole: RoleAnonymous, Action: ActionCreate, Resource: res, Outcome: OutcomeDenied}
		if bad := clean(&e); len(bad) > 0 || e.Resource != res {
			t.Errorf("summary %q refused (%v), stored as %q", res, bad, e.Resource)
		}
	}
	for _, res := range []string{"Observation", "Observation/repeated/", "Observation/repeated/0", "Observation/repeated/x", "Observation/repeated-5"} {
		if first, n := RepeatCount(res); first != res || n != 0 {
			t.Errorf("RepeatCount(%q) = %q, %d; want itself and 0", res, first, n)
		}
	}
	// Five plain segments are still too many: only a summary's mark may
	// follow the fourth.
	e := store.AuditEvent{ActorRole: RoleAnonymous, Action: ActionCreate, Resource: "Appointment/12/guest/5/vitals/x", Outcome: OutcomeDenied}
	if bad := clean(&e); len(bad) == 0 {
		t.Errorf("a resource of five segments was stored as %q", e.Resource)
	}
}
