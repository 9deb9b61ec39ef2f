// Package pgtest gives tests a PostgreSQL server: a fresh, empty database
// per test, dropped when the test ends. The server is BEDSIDE_TEST_POSTGRES,
// or the local one at 127.0.0.1:5432. When it cannot be reached, tests are
// skipped, except in CI (CI set), where they fail.
package pgtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// defaultServer is the PostgreSQL server the tests use unless
// BEDSIDE_TEST_POSTGRES names another.
const defaultServer = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Server is the URL of the server to test against: a role that may create
// databases, on a database it can connect to.
func Server() string {
	if u := os.Getenv("BEDSIDE_TEST_POSTGRES"); u != "" {
		return u
	}
	return defaultServer
}

// inCI reports whether the tests run in continuous integration, where a
// missing server is a failure rather than a reason to skip.
func inCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "false" && v != "0"
}

// redacted is u with any password hidden, for messages.
func redacted(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Redacted()
	}
	return "BEDSIDE_TEST_POSTGRES (not a URL)"
}

// Admin connects to the test server, skipping the test if it cannot be
// reached, or failing it in CI.
func Admin(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, Server())
	if err == nil {
		return conn
	}
	msg := fmt.Sprintf("PostgreSQL at %s is not reachable: %v", redacted(Server()), err)
	if inCI() {
		t.Fatalf("%s\nCI is set, so the PostgreSQL tests may not be skipped: give the job a PostgreSQL 13+ server "+
			"(e.g. a postgres:15 service container) and set BEDSIDE_TEST_POSTGRES to its postgres:// URL", msg)
	}
	t.Skipf("%s\nto run these tests, start one, e.g.\n\tdocker run --rm -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15\n"+
		"or set BEDSIDE_TEST_POSTGRES to the postgres:// URL of a role that may create databases", msg)
	return nil
}

// RandomName is a fresh name for a database or role.
func RandomName(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return fmt.Sprintf("%s_%x", prefix, b)
}

// FreshDB creates an empty database for t, dropped (with any connections
// left) when t ends, and returns its URL.
func FreshDB(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	conn := Admin(t)
	defer conn.Close(ctx)
	name := RandomName("bedside_test")
	// template0 holds nothing a local template1 may have gained, and nobody
	// connects to it, which CREATE DATABASE would refuse.
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE template0`); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		conn := Admin(t)
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(Server())
	if err != nil {
		t.Fatalf("BEDSIDE_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}
