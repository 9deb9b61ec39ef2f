package storetest

import (
	"bytes"
	"context"
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
}
