package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/internal/groupcommit"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is the SQLite store. It is safe for concurrent use.
//
// It holds two pools on the one file: w, a single connection that every
// write goes through, and r, for reads, which WAL lets run beside the writer.
// SQLite allows one writer at a time anyway; queueing writers on w in Go
// instead of in SQLite's busy handler (which polls with sleeps of up to
// 100 ms) keeps contended writes fast and fair. The busy timeout still
// covers writers in other processes, such as the admin CLI.
type DB struct {
	w *sql.DB // the writer: one connection, every write
	r *sql.DB // readers: query_only connections
	// appends group-commits concurrent AppendObservations calls.
	appends   *groupcommit.Committer[appendReq]
	appending appender // the commits' statements
	sets      codeSets // observation_code_sets, as the readers have read them
}

var _ store.Store = (*DB)(nil)

// Open opens the database at path, creating it and its folder if needed
// (the folder 0700, the file 0600, so only the owner can read patient data),
// and applies pending migrations.
func Open(ctx context.Context, path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	// Create the file owner-only before SQLite does so with its default
	// mode; SQLite gives the -wal and -shm files the database file's mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create database file: %w", err)
	}
	f.Close()
	s, err := openPools(abs)
	if err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// maxReaders bounds the connections that read. No store method holds one
// while it waits for another (a read transaction reads through itself),
// so queries queue rather than deadlock.
const maxReaders = 8

// openPools opens the writer and the readers on the database file at the
// absolute path abs, without touching its contents.
func openPools(abs string) (*DB, error) {
	w, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", abs, err)
	}
	// A burst of requests (a clinic's devices and viewers reconnecting at
	// once) opened a reader for each waiting query, 50 to 160 of them,
	// and SQLite's memory for each stayed with the process after they
	// closed. Reads on two cores gain nothing from more than a few at
	// once: queries wait for one of maxReaders instead.
	r.SetMaxOpenConns(maxReaders)
	r.SetMaxIdleConns(maxReaders)
	s := &DB{w: w, r: r}
	s.appending.w = w
	s.appends = groupcommit.New(s.commitAppends, maxAppendBatch, groupcommit.Background(commitNice))
	return s, nil
}

// commitNice lowers the priority of the thread that commits devices'
// readings when they starve in the idle scheduling class, where they
// otherwise run (groupcommit.Background). A commit of a slot's devices
// takes milliseconds of CPU (about 4.5 ms at 1,000 streaming patients,
// with readings kept as packs); on a node that is also delivering live
// vitals, the kernel then runs the delivering threads first, and the
// commits (after which devices are acked, and nothing sooner) take the
// CPU they leave. At 10, a commit thread competing with one busy thread
// for a core still gets about a tenth of it, more than a thousand
// streaming devices' readings take (docs/benchmarks.md).
const commitNice = 10

// WriterLowered reports whether the readings' commits run on a thread of
// their own at a lower priority (the idle class, or nice +10 while they
// starve there): nil if they do, why not if they do not.
// That thread holds one of the runtime's Ps while it commits; a server
// lends it one more for that time (LendWriterAProc).
func (s *DB) WriterLowered() error { return s.appends.Lowered() }

// WriterStarved counts the times a commit of readings waited too long in
// the idle scheduling class and the commits moved to nice +10 for a while.
func (s *DB) WriterStarved() int64 { return s.appends.Starved() }

// LendWriterAProc has the runtime allow one more P while readings commit
// (groupcommit's LendProcs), for a process that leaves GOMAXPROCS to the
// runtime. With its own P and a lowered thread, a commit no longer
// yields between devices: the kernel runs the delivering threads first,
// and each yield of a thread-locked goroutine costs the process several
// thread switches.
func (s *DB) LendWriterAProc() { s.appends.LendProcs(true) }

// WriterHasAProc reports whether the readings commit with a P of their
// own: on a lowered thread, with one more P lent (LendWriterAProc).
func (s *DB) WriterHasAProc() bool { return s.appends.LendsProcs() && s.appends.Lowered() == nil }

// dsn is the driver's name for the database file at the absolute path abs: a
// file: URI, so characters such as '?', '#' and '%' in the path are escaped
// rather than read as URI syntax. A readOnly connection refuses writes.
func dsn(abs string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(30000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	// NORMAL in WAL mode survives a crash of the process (a restart loses
	// nothing committed); only a power cut can lose the last commits. FULL
	// would fsync every commit, about four times the cost of a booking.
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate") // every write BeginTx is BEGIN IMMEDIATE
	if !readOnly {
		// Device readings touch index pages all over the observations
		// table: a 64 MB cache keeps them, and checkpointing every 8,192
		// pages (32 MB of WAL) rather than 1,000 copies each page back to
		// the database once per many commits instead of once per commit.
		q.Add("_pragma", "cache_size(-65536)")
		q.Add("_pragma", "wal_autocheckpoint(8192)")
		// A many-row INSERT in a transaction keeps a statement journal
		// (a copy of each page before the statement first changes it,
		// to undo that statement alone); on disk, that was a temporary
		// file written a page at a time, a fifth of a readings commit's
		// CPU. In memory it is a copy. Crash safety is the WAL's, not
		// the statement journal's.
		q.Add("_pragma", "temp_store(MEMORY)")
	}
	if readOnly {
		q.Add("_pragma", "query_only(1)")
		// A read transaction takes its snapshot at its first read and never
		// needs the write lock.
		q.Set("_txlock", "deferred")
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	if !strings.HasPrefix(u.Path, "/") { // a Windows path: file:///C:/...
		u.Path = "/" + u.Path
	}
	return u.String()
}

// Migrate applies, in name order, each embedded migration not yet recorded in
// schema_migrations, each in its own transaction. Open calls it; running it
// again does nothing.
func (s *DB) Migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := s.migrateOne(ctx, name); err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return nil
}

// migrateOne applies one migration unless it is recorded. The check runs
// inside the (immediate) transaction, so two processes opening a new database
// at once apply each migration once.
func (s *DB) migrateOne(ctx context.Context, name string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE name = ?`, name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	body, err := migrations.ReadFile(name)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)`, name, ms(time.Now())); err != nil {
		return err
	}
	return tx.Commit()
}

// Ping checks that the database answers a query.
func (s *DB) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *DB) Close() error {
	s.appends.Close()
	s.appending.close()
	return errors.Join(s.r.Close(), s.w.Close())
}

// ms converts an instant to stored Unix milliseconds; the zero time is 0.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// at converts stored Unix milliseconds back to a UTC instant; 0 is the zero time.
func at(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// norm is t as it will read back: UTC, truncated to the millisecond.
func norm(t time.Time) time.Time { return at(ms(t)) }

// overlapMessage is what the no-overlap triggers raise (see migrations).
const overlapMessage = "appointment overlaps another"

// code is SQLite's extended result code for err, or 0.
func code(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

// isUnique reports a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool {
	c := code(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// isOverlap reports that a no-overlap trigger refused the statement.
func isOverlap(err error) bool {
	return code(err) == sqlite3.SQLITE_CONSTRAINT_TRIGGER && strings.Contains(err.Error(), overlapMessage)
}

// isForeignKey reports a reference to a row that does not exist.
func isForeignKey(err error) bool { return code(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY }

// wrap adds context to err, mapping SQLite's errors to the store's
// sentinels: no rows and a dangling reference are store.ErrNotFound, a
// uniqueness violation store.ErrConflict.
func wrap(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	case isForeignKey(err):
		return fmt.Errorf("%s: a referenced record is missing: %w", what, store.ErrNotFound)
	case isUnique(err):
		return fmt.Errorf("%s: %w", what, store.ErrConflict)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(...any) error }

// collect reads every row of a query with scan.
func collect[T any](rows *sql.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
