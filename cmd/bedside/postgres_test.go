package main

import (
	"strings"
	"testing"

	"github.com/bedside-health/bedside/store/postgres/pgtest"
)

// TestServeOnPostgres runs the server with DATABASE_URL on a fresh
// PostgreSQL database: it migrates, seeds the demo clinic there (not in
// the data folder) and books a visit.
func TestServeOnPostgres(t *testing.T) {
	db := pgtest.FreshDB(t)
	ts := startServer(t, map[string]string{"DATABASE_URL": db})
	if !strings.Contains(ts.out.String(), "postgres:postgres://") {
		t.Errorf("the server does not say it uses PostgreSQL:\n%s", ts.out.String())
	}
	link := bookFirstFree(t, ts)
	if !strings.HasPrefix(link, ts.URL+"/join/") {
		t.Fatalf("join link %q", link)
	}
	// The admin CLI reaches the same database.
	out := ts.cli(t, "", "user", "add", "--role", "patient", "--email", "pg.patient@example.org", "--name", "PG Patient")
	if !strings.Contains(out, "added patient PG Patient") {
		t.Fatalf("user add on PostgreSQL: %s", out)
	}
}
