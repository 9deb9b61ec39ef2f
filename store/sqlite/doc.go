// Package sqlite implements store.Store on an embedded SQLite file (pure Go,
// modernc.org/sqlite), Bedside's default on a single machine.
//
// The database runs in WAL mode with foreign keys on and a busy timeout, so
// readers never block the writer and another process (the admin CLI, say)
// waits for the write lock instead of failing. Within the process every write
// goes through one connection, so writers queue in Go rather than in SQLite's
// sleeping busy handler, and reads use a pool of query-only connections.
// Every transaction begins IMMEDIATE: it takes the write lock at BEGIN, which
// serialises writers across processes too and rules out the lock-upgrade
// deadlocks of deferred transactions.
//
// Instants are stored as Unix milliseconds in UTC, with 0 meaning the zero
// time; a time read back equals the one written, truncated to the
// millisecond and in UTC.
//
// The schema lives in migrations/*.sql, embedded in the binary and applied in
// name order, each in its own transaction, and recorded in schema_migrations.
// A migration that has shipped is never edited; a change is a new file.
//
// The rule that two live appointments of one physician never overlap is held
// by the database itself (triggers that abort the statement), not only by the
// check BookAppointment makes before inserting.
package sqlite
