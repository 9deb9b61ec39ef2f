package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
)

// testAudit checks the audit trail: appends chain with audit.Hash, read
// back with every filter and with paging, and concurrent appends still
// form one contiguous chain.
func testAudit(t *testing.T, st store.Store) {
	ctx := context.Background()
	if page, total, err := st.AuditEvents(ctx, store.AuditQuery{}); err != nil || total != 0 || len(page) != 0 {
		t.Fatalf("empty trail: %d events (%d in all), %v", len(page), total, err)
	}
	t0 := odd(t)
	// Ten events: actors 7 and 8 take turns, patients 100 and 101 every
	// third, a minute apart.
	var in []store.AuditEvent
	for i := range 10 {
		e := store.AuditEvent{At: t0.Add(time.Duration(i) * time.Minute), ActorID: int64(7 + i%2), ActorRole: "physician",
			Action: []string{"read", "search", "update"}[i%3], PatientID: int64(100 + i%3), Resource: fmt.Sprintf("Appointment/%d", i+1),
			Address: "192.0.2.1", Outcome: "success"}
		if i == 9 {
			e.Outcome, e.PatientID, e.ActorID, e.ActorRole = "denied", 0, 0, "anonymous"
		}
		got, err := st.AppendAudit(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		var prev []byte
		if i > 0 {
			prev = in[i-1].Hash
		}
		if got.Seq != int64(i+1) || !bytes.Equal(got.PrevHash, prev) || !bytes.Equal(got.Hash, audit.Hash(prev, got)) || !sameInstant(e.At, got.At) {
			t.Fatalf("AppendAudit %d returned %+v", i, got)
		}
		in = append(in, got)
	}
	all, total, err := st.AuditEvents(ctx, store.AuditQuery{})
	if err != nil || total != 10 || len(all) != 10 {
		t.Fatalf("AuditEvents = %d events (%d in all), %v", len(all), total, err)
	}
	for i, got := range all {
		want := in[i]
		if got.Seq != want.Seq || !sameInstant(want.At, got.At) || got.ActorID != want.ActorID || got.ActorRole != want.ActorRole ||
			got.Action != want.Action || got.PatientID != want.PatientID || got.Resource != want.Resource || got.Address != want.Address ||
			got.Outcome != want.Outcome || !bytes.Equal(got.PrevHash, want.PrevHash) || !bytes.Equal(got.Hash, want.Hash) {
			t.Errorf("event %d read back as %+v, want %+v", i+1, got, want)
		}
	}
	if last, err := audit.Verify(all, nil); err != nil || !bytes.Equal(last, in[9].Hash) {
		t.Fatalf("Verify = %x, %v; want the last hash", last, err)
	}
	if err := audit.VerifyStore(ctx, st); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		q    store.AuditQuery
		want []int64 // seqs
	}{
		{"patient", store.AuditQuery{PatientID: 101}, []int64{2, 5, 8}},
		{"actor", store.AuditQuery{ActorID: 8}, []int64{2, 4, 6, 8}},
		{"action", store.AuditQuery{Action: "update"}, []int64{3, 6, 9}},
		{"from", store.AuditQuery{From: t0.Add(7 * time.Minute)}, []int64{8, 9, 10}},
		{"to", store.AuditQuery{To: t0.Add(2 * time.Minute)}, []int64{1, 2}},
		{"patient last week", store.AuditQuery{PatientID: 100, From: t0.Add(time.Minute), To: t0.Add(7 * time.Minute)}, []int64{4, 7}},
		{"after", store.AuditQuery{AfterSeq: 8}, []int64{9, 10}},
		{"actor and action", store.AuditQuery{ActorID: 7, Action: "read"}, []int64{1, 7}},
		{"none", store.AuditQuery{PatientID: 999}, nil},
	} {
		page, total, err := st.AuditEvents(ctx, c.q)
		var got []int64
		for _, e := range page {
			got = append(got, e.Seq)
		}
		if err != nil || total != len(c.want) || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: %v (%d in all), %v; want %v", c.name, got, total, err, c.want)
		}
	}
	page, total, err := st.AuditEvents(ctx, store.AuditQuery{ActorID: 7, Limit: 2, Offset: 1})
	if err != nil || total != 5 || len(page) != 2 || page[0].Seq != 3 || page[1].Seq != 5 {
		t.Fatalf("actor 7, page 2 of 2: %+v (%d in all), %v; want events 3 and 5 of 5", page, total, err)
	}
	// Paging by AfterSeq, as VerifyStore does, chains page to page.
	var prev []byte
	for after := int64(0); after < 10; after += 4 {
		page, _, err := st.AuditEvents(ctx, store.AuditQuery{AfterSeq: after, Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		if prev, err = audit.Verify(page, prev); err != nil {
			t.Fatalf("page after %d: %v", after, err)
		}
	}

	// Concurrent appends chain one after another, with no gap or fork.
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := st.AppendAudit(ctx, store.AuditEvent{ActorID: int64(i + 1), ActorRole: "scheduler", Action: "read",
				PatientID: 100, Resource: fmt.Sprintf("Patient/%d", i), Address: "2001:db8::1", Outcome: "success"})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := audit.VerifyStore(ctx, st); err != nil {
		t.Fatalf("after %d concurrent appends: %v", n, err)
	}
	if up, err := audit.VerifiedUpTo(ctx, st); err != nil || up != 10+n {
		t.Fatalf("verified up to %d, %v; want %d", up, err, 10+n)
	}
	if _, total, _ := st.AuditEvents(ctx, store.AuditQuery{AfterSeq: 10}); total != n {
		t.Fatalf("%d concurrent events stored, want %d", total, n)
	}
	// A zero At is stored as now.
	e, err := st.AppendAudit(ctx, store.AuditEvent{ActorRole: "system", Action: "read", Outcome: "success"})
	if err != nil || e.At.IsZero() || time.Since(e.At) > time.Minute {
		t.Fatalf("event without a time stored at %v, %v", e.At, err)
	}
}
