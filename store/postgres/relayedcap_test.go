package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

// TestRelayedDevicesBoundHoldsAcrossConnections: two connections of one
// relay (two nodes, or a takeover) each add a new Bluetooth device while
// the relay has one fewer than it may keep. Under READ COMMITTED each
// would count the relay's devices without the other's uncommitted one and
// both be kept; the second waits for the first instead, then finds the
// relay full.
func TestRelayedDevicesBoundHoldsAcrossConnections(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	p, err := db.CreateUser(ctx, store.User{Email: "p@example.org", Name: "p", Role: store.RolePatient, TimeZone: "Europe/London"})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := db.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: []byte("hub"), UserID: p.ID, Name: "hub", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range store.MaxRelayedDevices - 1 {
		if _, err := db.RelayedDevice(ctx, hub.ID, fmt.Sprintf("strap %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// The other connection's addition, under way: the relay's lock taken
	// and its row inserted, not yet committed.
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, relayLock, int32(hub.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO relayed_devices (relay_id, name, created_at) VALUES ($1, 'other connection''s', now())`, hub.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := db.RelayedDevice(ctx, hub.ID, "this connection's")
		done <- err
	}()
	// This connection's addition waits for the other's to end.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var waiting int
		if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 2`, relayLock, int32(hub.ID)).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("a relayed device was added beside another addition of the same relay, without waiting for it (%v)", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the second addition neither waited nor ended within 10 s")
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, store.ErrTooManyRelayed) {
		t.Fatalf("a new device of a relay that became full meanwhile: %v, want ErrTooManyRelayed", err)
	}
	list, err := db.RelayedDevices(ctx, p.ID)
	if err != nil || len(list) != store.MaxRelayedDevices {
		t.Fatalf("the relay keeps %d relayed devices (%v), want %d", len(list), err, store.MaxRelayedDevices)
	}
}
