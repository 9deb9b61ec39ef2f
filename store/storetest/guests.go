package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

func testGuestLinks(t *testing.T, st store.Store) {
	ctx := context.Background()
	doc := user(t, st, "doc@example.org", store.RolePhysician)
	p := user(t, st, "p@example.org", store.RolePatient)
	a, err := booker{st, p.ID}.book(doc.ID, slotAt(9), 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t0 := odd(t)
	in := store.GuestLink{AppointmentID: a.ID, TokenHash: []byte("hash-one-0123456789abcdef01234567"), Role: store.GuestInterpreter,
		Name: "Ines Duarte", IssuedBy: doc.ID, CreatedAt: t0, ExpiresAt: t0.Add(3 * time.Hour)}
	g, err := st.CreateGuestLink(ctx, in)
	if err != nil || g.ID == 0 {
		t.Fatalf("CreateGuestLink = %+v, %v", g, err)
	}
	got, err := st.GuestLinkByHash(ctx, in.TokenHash)
	if err != nil || got.ID != g.ID || got.AppointmentID != a.ID || got.Role != store.GuestInterpreter || got.Name != "Ines Duarte" ||
		got.IssuedBy != doc.ID || !sameInstant(t0, got.CreatedAt) || !sameInstant(t0.Add(3*time.Hour), got.ExpiresAt) || !got.RevokedAt.IsZero() ||
		!bytes.Equal(got.TokenHash, in.TokenHash) {
		t.Fatalf("GuestLinkByHash = %+v, %v", got, err)
	}
	_, err = st.GuestLinkByHash(ctx, []byte("no such hash"))
	wantErr(t, "unknown hash", err, store.ErrNotFound)
	_, err = st.CreateGuestLink(ctx, in)
	wantErr(t, "the same token twice", err, store.ErrConflict)
	bad := in
	bad.TokenHash, bad.AppointmentID = []byte("hash-two"), a.ID+100
	_, err = st.CreateGuestLink(ctx, bad)
	wantErr(t, "a link to an unknown visit", err, store.ErrNotFound)
	bad = in
	bad.TokenHash, bad.Role = []byte("hash-three"), "patient"
	if _, err := st.CreateGuestLink(ctx, bad); err == nil {
		t.Error("a guest link with the role patient was stored")
	}
	second := in
	second.TokenHash, second.Role, second.Name = []byte("hash-four"), store.GuestFamily, "Sam Lee"
	g2, err := st.CreateGuestLink(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	list, err := st.GuestLinks(ctx, a.ID)
	if err != nil || len(list) != 2 || list[0].ID != g.ID || list[1].ID != g2.ID {
		t.Fatalf("GuestLinks = %+v, %v; want both, oldest first", list, err)
	}
	if list, err := st.GuestLinks(ctx, a.ID+100); err != nil || len(list) != 0 {
		t.Fatalf("GuestLinks of another visit = %+v, %v", list, err)
	}
	if err := st.RevokeGuestLink(ctx, g.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeGuestLink(ctx, g.ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, _ = st.GuestLinkByHash(ctx, in.TokenHash)
	if !sameInstant(t0.Add(time.Minute), got.RevokedAt) {
		t.Errorf("revoked at %v, want the first revocation %v", got.RevokedAt, t0.Add(time.Minute))
	}
	if got, _ := st.GuestLinkByHash(ctx, second.TokenHash); !got.RevokedAt.IsZero() {
		t.Errorf("revoking one link revoked another: %+v", got)
	}
	wantErr(t, "revoke an unknown link", st.RevokeGuestLink(ctx, g2.ID+100, t0), store.ErrNotFound)

	// The cap: revoked and expired links do not count; links created at
	// once never pass it.
	b, err := booker{st, p.ID}.book(doc.ID, slotAt(11), 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	link := func(i int, created, expires time.Time) store.GuestLink {
		return store.GuestLink{AppointmentID: b.ID, TokenHash: fmt.Appendf(nil, "cap-%02d-0123456789abcdef0123456789", i), Role: store.GuestFamily,
			Name: fmt.Sprintf("Guest %d", i), IssuedBy: doc.ID, CreatedAt: created, ExpiresAt: expires}
	}
	if _, err := st.CreateGuestLinkLimited(ctx, link(0, t0.Add(-2*time.Hour), t0.Add(-time.Hour)), 3); err != nil {
		t.Fatal(err) // expired by the time the others are created
	}
	revoked, err := st.CreateGuestLinkLimited(ctx, link(1, t0, t0.Add(3*time.Hour)), 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeGuestLink(ctx, revoked.ID, t0); err != nil {
		t.Fatal(err)
	}
	const tries = 8
	errs := make([]error, tries)
	var wg sync.WaitGroup
	for i := range tries {
		wg.Go(func() {
			_, errs[i] = st.CreateGuestLinkLimited(ctx, link(i+2, t0.Add(time.Minute), t0.Add(3*time.Hour)), 3)
		})
	}
	wg.Wait()
	stored := 0
	for _, err := range errs {
		switch {
		case err == nil:
			stored++
		case !errors.Is(err, store.ErrLimit):
			t.Errorf("CreateGuestLinkLimited at once: %v, want nil or ErrLimit", err)
		}
	}
	if stored != 3 {
		t.Errorf("%d of %d links created at once were stored, want the cap of 3", stored, tries)
	}
	_, err = st.CreateGuestLinkLimited(ctx, link(20, t0.Add(time.Minute), t0.Add(3*time.Hour)), 3)
	wantErr(t, "a fourth live link", err, store.ErrLimit)
	_, err = st.CreateGuestLinkLimited(ctx, link(21, t0.Add(time.Minute), t0.Add(3*time.Hour)), 4)
	if err != nil {
		t.Errorf("a fourth live link under a cap of 4: %v", err)
	}
	bad = link(22, t0, t0.Add(time.Hour))
	bad.AppointmentID = b.ID + 100
	_, err = st.CreateGuestLinkLimited(ctx, bad, 3)
	wantErr(t, "a capped link to an unknown visit", err, store.ErrNotFound)
}
