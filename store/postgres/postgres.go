package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/internal/groupcommit"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is the PostgreSQL store: a pool of connections to one database. It is
// safe for concurrent use, and several processes may use one database.
type DB struct {
	pool *pgxpool.Pool
	// appends group-commits concurrent AppendObservations calls.
	appends *groupcommit.Committer[appendReq]
}

var _ store.Store = (*DB)(nil)

// defaultMaxConns is the pool size when the URL sets no pool_max_conns.
// pgxpool's own default (4, or the number of CPUs) would queue a burst of
// bookings in Go; PostgreSQL's default max_connections of 100 leaves room
// for a few nodes of 20.
const defaultMaxConns = 20

// Open connects to the PostgreSQL database at url, a postgres:// URL such as
// postgres://bedside:secret@db.internal:5432/bedside?sslmode=verify-full
// (pgxpool's pool_* parameters, such as pool_max_conns, are honoured; the
// pool holds 20 connections unless told otherwise), checks that it answers
// and applies pending migrations.
func Open(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", where, err)
	}
	s := &DB{pool: pool}
	s.appends = groupcommit.New(s.commitAppends, maxAppendBatch)
	if err := s.Ping(ctx); err != nil {
		s.appends.Close()
		pool.Close()
		return nil, fmt.Errorf("open postgres %s: %w", where, err)
	}
	if err := s.Migrate(ctx); err != nil {
		s.appends.Close()
		pool.Close()
		return nil, fmt.Errorf("open postgres %s: %w", where, err)
	}
	return s, nil
}

// migrationLock is the key of the advisory lock that migrations hold, so
// that nodes starting at once apply them one at a time ("bedside" in ASCII).
// Advisory locks are per database.
const migrationLock int64 = 0x62656473696465

// Migrate applies, in name order, each embedded migration not yet recorded in
// schema_migrations, each in its own transaction. Open calls it; running it
// again, or on several nodes at once, applies nothing twice.
func (s *DB) Migrate(ctx context.Context) error {
	err := s.migrationTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`)
		return err
	})
	if err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := s.migrateOne(ctx, name); err != nil {
			return fmt.Errorf("migration %s: %w", name, s.explainExtension(err))
		}
	}
	return nil
}

// migrationTx runs fn in a transaction that first takes the migration lock.
// The lock is held to the end of the transaction; another node waiting for
// it then reads, in a new statement of its own READ COMMITTED transaction,
// what this one committed.
func (s *DB) migrationTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return err
		}
		return fn(tx)
	})
}

// migrateOne applies one migration unless it is recorded, in a transaction
// holding the migration lock.
func (s *DB) migrateOne(ctx context.Context, name string) error {
	return s.migrationTx(ctx, func(tx pgx.Tx) error {
		var done bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = $1)`, name).Scan(&done); err != nil {
			return err
		}
		if done {
			return nil
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		// Without arguments pgx sends the file as one simple query, which
		// may hold many statements.
		if _, err := tx.Exec(ctx, string(body)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO schema_migrations (name) VALUES ($1)`, name)
		return err
	})
}

// explainExtension turns PostgreSQL's refusal to create btree_gist into an
// error that says what to run; other errors come back as they are.
func (s *DB) explainExtension(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || !strings.Contains(pe.Message, "btree_gist") {
		return err
	}
	db := s.pool.Config().ConnConfig.Database
	if pe.Code == "42501" { // insufficient_privilege
		return fmt.Errorf("the btree_gist extension is required and this role may not create it: "+
			"connect to database %q as a superuser (or as the database's owner) and run CREATE EXTENSION btree_gist; then start Bedside again: %w", db, err)
	}
	return fmt.Errorf("the btree_gist extension is required and this PostgreSQL server lacks it: "+
		"install PostgreSQL's contrib modules (Debian and Ubuntu ship them in the postgresql-NN package), "+
		"then, as a superuser, run CREATE EXTENSION btree_gist; in database %q: %w", db, err)
}

// Ping checks that the database answers a query.
func (s *DB) Ping(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// Close closes every connection of the pool, waiting for those in use.
func (s *DB) Close() error {
	s.appends.Close()
	s.pool.Close()
	return nil
}

// inTx runs fn in a transaction, committing if fn returns nil and rolling
// back otherwise.
func (s *DB) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// norm is t as it will read back: UTC, truncated to the millisecond, as the
// SQLite store keeps it. The zero time stays zero.
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMilli(t.UnixMilli()).UTC()
}

// null is the argument for a nullable instant: NULL for the zero time, else
// the instant to the millisecond.
func null(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return norm(t)
}

// instant is a scan target for a timestamptz: it stores the instant in UTC,
// and NULL as the zero time.
type instant struct{ t *time.Time }

// utc returns a scan target that stores a timestamptz in *t.
func utc(t *time.Time) *instant { return &instant{t} }

// ScanTimestamptz implements pgtype.TimestamptzScanner.
func (i *instant) ScanTimestamptz(v pgtype.Timestamptz) error {
	*i.t = time.Time{}
	if v.Valid && v.InfinityModifier == pgtype.Finite {
		*i.t = v.Time.UTC()
	}
	return nil
}

// SQLSTATE codes the store maps to its sentinels.
const (
	codeUnique     = "23505" // unique_violation
	codeForeignKey = "23503" // foreign_key_violation
	codeExclusion  = "23P01" // exclusion_violation: the no-overlap rule
)

// pgCode is PostgreSQL's SQLSTATE for err, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// isOverlap reports that the no-overlap exclusion constraint refused a write.
func isOverlap(err error) bool { return pgCode(err) == codeExclusion }

// wrap adds context to err, mapping PostgreSQL's errors to the store's
// sentinels: no rows and a dangling reference are store.ErrNotFound, a
// uniqueness violation store.ErrConflict, an overlap
// scheduling.ErrSlotTaken.
func wrap(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	switch code := pgCode(err); {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	case code == codeForeignKey:
		return fmt.Errorf("%s: a referenced record is missing: %w", what, store.ErrNotFound)
	case code == codeUnique:
		return fmt.Errorf("%s: %w", what, store.ErrConflict)
	case code == codeExclusion:
		return fmt.Errorf("%s: %w", what, scheduling.ErrSlotTaken)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// execOne runs a statement that must change exactly one row; none is
// store.ErrNotFound.
func (s *DB) execOne(ctx context.Context, what, query string, args ...any) error {
	tag, err := s.pool.Exec(ctx, query, args...)
	if err != nil {
		return wrap(err, "%s", what)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// collect reads every row of a query with scan.
func collect[T any](rows pgx.Rows, err error, scan func(pgx.Row) (T, error)) ([]T, error) {
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

// page is a query's LIMIT and OFFSET: a limit of 0 is 100, and neither
// may be negative or the limit above 1000.
func page(limit, offset int) (int, int) {
	if limit <= 0 {
		limit = 100
	}
	return min(limit, 1000), max(offset, 0)
}

// likeEscape escapes LIKE's wildcards in a search word.
func likeEscape(w string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(w)
}
