package web

import (
	"context"
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
