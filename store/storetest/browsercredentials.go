package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

// testOneLiveBrowserDevice checks that a patient has at most one live
// (unrevoked) browser device: of many made at once exactly one is stored
// and the others fail with store.ErrConflict; once it is revoked another
// may be made; other devices and other patients are not held to it.
func testOneLiveBrowserDevice(t *testing.T, st store.Store) {
	ctx := context.Background()
	p := user(t, st, "two-tabs@example.org", store.RolePatient)
	other := user(t, st, "other-tabs@example.org", store.RolePatient)
	now := time.Now()
	browser := func(owner int64, tok string) (store.Credential, error) {
		return st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte("browser " + tok),
			UserID: owner, Name: "Web browser", CreatedAt: now, Browser: true})
	}

	const racers = 32
	var (
		wg                 sync.WaitGroup
		mu                 sync.Mutex
		made               []store.Credential
		conflicts, failure int
	)
	start := make(chan struct{})
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := browser(p.ID, fmt.Sprint("race ", i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				made = append(made, c)
			case errors.Is(err, store.ErrConflict):
				conflicts++
			default:
				failure++
				t.Errorf("racer %d: %v, want success or store.ErrConflict", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(made) != 1 || conflicts != racers-1 {
		t.Fatalf("%d racers made %d browser devices (%d conflicts, %d other failures), want exactly 1", racers, len(made), conflicts, failure)
	}
	list, err := st.ListCredentials(ctx, store.CredentialDevice, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != made[0].ID || !list[0].Browser {
		t.Fatalf("stored %+v, want only the winner %d", list, made[0].ID)
	}

	// Another patient's, and a device an admin adds, are not held to it.
	if _, err := browser(other.ID, "other"); err != nil {
		t.Errorf("another patient's browser device: %v", err)
	}
	if _, err := st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte("hub"), UserID: p.ID,
		Name: "Home hub", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Errorf("a hub beside the browser device: %v", err)
	}
	// Revoked (the clinic turned it off), it no longer holds the place:
	// allowing the browser again makes a new one.
	if err := st.RevokeCredential(ctx, made[0].ID, now); err != nil {
		t.Fatal(err)
	}
	again, err := browser(p.ID, "again")
	if err != nil {
		t.Fatalf("a browser device after the first was revoked: %v", err)
	}
	if _, err := browser(p.ID, "third"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a second live browser device beside %d: %v, want store.ErrConflict", again.ID, err)
	}
}

// BrowserDuplicates stores what patients could have before a patient was
// held to one live browser device, on a store without that rule: two
// live ones; an older live one beside a newer revoked one; one alone;
// and a hub. It returns the check to run once the rule's migration has
// run: each patient keeps at most one live browser device, the newest,
// nothing is deleted, the hub is untouched, and a second live one is
// refused from then on.
func BrowserDuplicates(t *testing.T, st store.Store) (check func()) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	mk := func(owner int64, tok string, browser bool, revoked time.Time) store.Credential {
		t.Helper()
		c := store.Credential{Kind: store.CredentialDevice, TokenHash: []byte(tok), UserID: owner, Name: "Web browser",
			CreatedAt: now, RevokedAt: revoked, Browser: browser}
		if !browser {
			c.Name, c.ExpiresAt = "Home hub", now.Add(time.Hour)
		}
		c, err := st.CreateCredential(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	twoTabs := user(t, st, "two-tabs@example.org", store.RolePatient)
	turnedOff := user(t, st, "turned-off@example.org", store.RolePatient)
	alone := user(t, st, "alone@example.org", store.RolePatient)
	first := mk(twoTabs.ID, "first tab", true, time.Time{})
	hub := mk(twoTabs.ID, "hub", false, time.Time{})
	second := mk(twoTabs.ID, "second tab", true, time.Time{})
	stray := mk(turnedOff.ID, "stray", true, time.Time{})
	off := mk(turnedOff.ID, "off", true, now.Add(-time.Minute))
	single := mk(alone.ID, "single", true, time.Time{})
	return func() {
		t.Helper()
		live := map[int64]bool{}
		for _, p := range []int64{twoTabs.ID, turnedOff.ID, alone.ID} {
			list, err := st.ListCredentials(ctx, store.CredentialDevice, p)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range list {
				live[c.ID] = c.RevokedAt.IsZero()
			}
		}
		for _, c := range []struct {
			what string
			id   int64
			live bool
		}{
			{"the older of two live", first.ID, false},
			{"the newer of two live", second.ID, true},
			{"the hub", hub.ID, true},
			{"a live one older than a revoked one", stray.ID, false},
			{"the revoked newest", off.ID, false},
			{"one alone", single.ID, true},
		} {
			got, ok := live[c.id]
			if !ok {
				t.Errorf("%s (%d) is gone after the migration", c.what, c.id)
			} else if got != c.live {
				t.Errorf("%s (%d): live %v after the migration, want %v", c.what, c.id, got, c.live)
			}
		}
		if _, err := st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte("third tab"),
			UserID: twoTabs.ID, Name: "Web browser", CreatedAt: now, Browser: true}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("a second live browser device after the migration: %v, want store.ErrConflict", err)
		}
	}
}
