// Package postgres implements store.Store on PostgreSQL (13 or later) with
// pgx, for clinics that run several Bedside nodes on one database; Bedside
// uses it when DATABASE_URL is a postgres:// URL.
//
// Instants are timestamptz, written to the millisecond and read back in UTC,
// so a time read back equals the one written truncated to the millisecond,
// as with the SQLite store. A zero time is stored as NULL where it means
// "none" (no expiry, not revoked, not sent).
//
// The schema lives in migrations/*.sql, embedded in the binary and applied in
// name order, each in its own transaction, and recorded in
// schema_migrations. Each transaction first takes a transaction-level
// advisory lock, so nodes starting at once apply each migration once: the
// others wait, then find it recorded. A migration that has shipped is never
// edited; a change is a new file.
//
// The rule that two live appointments of one physician never overlap is
// held by the database itself: an exclusion constraint over the physician
// and the half-open range [start, end) of the appointments that are not
// cancelled or entered-in-error, which needs the btree_gist extension. A
// write that would break it fails with SQLSTATE 23P01, which the store
// reports as scheduling.ErrSlotTaken. Bookings and moves of one physician's
// appointments also queue on an advisory lock per physician, so that of
// several overlapping attempts at once one commits and the others fail at
// once, rather than waiting on each other's uncommitted rows until the
// deadlock detector picks victims.
//
// Errors map to the store's sentinels as in the SQLite store: no rows and
// foreign key violations (23503) give store.ErrNotFound, unique violations
// (23505) store.ErrConflict.
package postgres
