package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/postgres"
	"github.com/bedside-health/bedside/store/sqlite"
)

// openStore opens the server's store, as provisioning writes straight into
// it: DATABASE_URL if set, else the SQLite database in data.
func openStore(ctx context.Context, data string, getenv func(string) string) (store.Store, error) {
	if u := getenv("DATABASE_URL"); strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://") {
		return postgres.Open(ctx, u)
	} else if u != "" {
		return nil, fmt.Errorf("DATABASE_URL %q: only postgres:// URLs are recognised", u)
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	return sqlite.Open(ctx, filepath.Join(data, "bedside.db"))
}

// provisionTag names a provisioning run, so that running it again adds a
// fresh set of users beside the last.
func provisionTag(now time.Time) string { return now.UTC().Format("20060102t150405") }

// createLoadUser adds one load-test user; kind and i make its address unique
// within the run's tag.
func createLoadUser(ctx context.Context, st store.Store, tag, kind string, i int, name string, role store.Role) (store.User, error) {
	return st.CreateUser(ctx, store.User{Email: fmt.Sprintf("loadtest-%s-%s%d@loadtest.invalid", tag, kind, i),
		Name: fmt.Sprintf("%s %d", name, i), Role: role, TimeZone: "UTC"})
}

// createLoadSession signs user in for 12 hours, as a sign-in would (visit
// 0), or as a join link would (confined to visit), and returns the token.
func createLoadSession(ctx context.Context, st store.Store, user, visit int64, now time.Time) (string, error) {
	token, hash := auth.NewToken()
	err := st.CreateSession(ctx, store.Session{TokenHash: hash, UserID: user, AppointmentID: visit,
		CreatedAt: now, ExpiresAt: now.Add(12 * time.Hour), LastSeenAt: now})
	return token, err
}

// writeTokens writes what provisioning made for run to read: tokens, so the
// file is readable by its owner only.
func writeTokens(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// readTokens reads what writeTokens wrote.
func readTokens(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read tokens: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read tokens %s: %w", path, err)
	}
	return nil
}
