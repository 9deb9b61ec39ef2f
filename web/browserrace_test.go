package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/postgres"
	"github.com/bedside-health/bedside/store/postgres/pgtest"
	"github.com/bedside-health/bedside/store/sqlite"
)

// TestBrowserDeviceFirstConnectionsRace: many first connections of one
// patient's browser at the same moment (tabs opening the visit) all
// stream as one browser device, made once and audited once, on both
// stores; and two admins allowing a turned-off browser again at once
// make one new device between them.
func TestBrowserDeviceFirstConnectionsRace(t *testing.T) {
	for _, c := range []struct {
		name string
		open func(t *testing.T) store.Store
	}{
		{"sqlite", func(t *testing.T) store.Store {
			st, err := sqlite.Open(context.Background(), t.TempDir()+"/bedside.db")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}},
		{"postgres", func(t *testing.T) store.Store {
			st, err := postgres.Open(context.Background(), pgtest.FreshDB(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}},
	} {
		t.Run(c.name, func(t *testing.T) { testBrowserDeviceRace(t, c.open(t)) })
	}
}

func testBrowserDeviceRace(t *testing.T, st store.Store) {
	ctx := context.Background()
	s := &server{Deps: Deps{Store: st, Now: time.Now, Audit: &audit.Recorder{Store: st}}}
	p, err := st.CreateUser(ctx, store.User{Email: "tabs@example.org", Name: "Tabs", Role: store.RolePatient})
	if err != nil {
		t.Fatal(err)
	}
	by := audit.Who{ID: p.ID, Role: string(store.RolePatient), Address: "192.0.2.1"}

	// race runs n calls of f at once and returns the IDs they got.
	race := func(n int, f func() (store.Credential, error)) []int64 {
		t.Helper()
		ids := make([]int64, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				cred, err := f()
				if err != nil {
					t.Errorf("caller %d: %v", i, err)
				}
				ids[i] = cred.ID
			}()
		}
		close(start)
		wg.Wait()
		return ids
	}
	browsers := func() []store.Credential {
		t.Helper()
		list, err := st.ListCredentials(ctx, store.CredentialDevice, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		var out []store.Credential
		for _, c := range list {
			if c.Browser {
				out = append(out, c)
			}
		}
		return out
	}
	created := func() int {
		t.Helper()
		evs, _, err := st.AuditEvents(ctx, store.AuditQuery{PatientID: p.ID, Action: audit.ActionCreate})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}

	const tabs = 24
	ids := race(tabs, func() (store.Credential, error) { return s.browserCredential(ctx, by, p.ID) })
	made := browsers()
	if len(made) != 1 {
		t.Fatalf("%d first connections at once made %d browser devices, want 1", tabs, len(made))
	}
	for i, id := range ids {
		if id != made[0].ID {
			t.Errorf("connection %d streams as device %d, want %d, the one made", i, id, made[0].ID)
		}
	}
	if n := created(); n != 1 {
		t.Errorf("the browser device's creation audited %d times, want once", n)
	}

	// Turned off by the clinic, then allowed again by two admins at once:
	// one new device, which both get.
	if err := st.RevokeCredential(ctx, made[0].ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.browserCredential(ctx, by, p.ID); err != errBrowserOff {
		t.Fatalf("a turned-off browser connecting: %v, want errBrowserOff", err)
	}
	ids = race(2, func() (store.Credential, error) { return s.newBrowserCredential(ctx, by, p.ID) })
	var live []store.Credential
	for _, c := range browsers() {
		if c.RevokedAt.IsZero() {
			live = append(live, c)
		}
	}
	if len(live) != 1 || ids[0] != live[0].ID || ids[1] != live[0].ID {
		t.Errorf("allowed again twice at once: got devices %v, live %+v; want both the one live device", ids, live)
	}
}

// TestAllowExpiredBrowserAgain: a browser device that expired rather than
// being revoked (the browser's is made without an expiry, but one may be
// set in the store) still holds the patient's one live browser device;
// allowing the browser again revokes it and makes the new one.
func TestAllowExpiredBrowserAgain(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir()+"/bedside.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := &server{Deps: Deps{Store: st, Now: time.Now}}
	p, err := st.CreateUser(ctx, store.User{Email: "expired@example.org", Name: "Expired", Role: store.RolePatient})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := st.CreateUser(ctx, store.User{Email: "admin@example.org", Name: "Admin", Role: store.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	old, err := st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte("old"), UserID: p.ID,
		Name: browserDevice, CreatedAt: time.Now().Add(-2 * time.Hour), ExpiresAt: time.Now().Add(-time.Hour), Browser: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.browserCredential(ctx, audit.Who{ID: p.ID}, p.ID); err != errBrowserOff {
		t.Fatalf("an expired browser device connecting: %v, want errBrowserOff", err)
	}
	r := httptest.NewRequest(http.MethodPost, "/admin/users/1/allow-browser", nil)
	if _, _, err := s.adminAllowBrowser(r, caller{User: admin}, p); err != nil {
		t.Fatalf("allowing the browser again: %v", err)
	}
	cred, err := s.browserCredential(ctx, audit.Who{ID: p.ID}, p.ID)
	if err != nil || cred.ID == old.ID {
		t.Fatalf("after allowing again the browser streams as %d (%v), want a new device", cred.ID, err)
	}
	if got, err := st.CredentialByID(ctx, store.CredentialDevice, old.ID); err != nil || got.RevokedAt.IsZero() {
		t.Errorf("the expired device %+v (%v), want it revoked", got, err)
	}
}
