package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	sqlite3 "modernc.org/sqlite/lib"
)

// ErrLocked is returned by LockFolder when another process (or another
// LockFolder in this one) holds the folder.
var ErrLocked = errors.New("data folder in use")

// OpenExisting opens the database at path like Open, but neither creates
// it nor applies migrations: for copying a store that a running server,
// perhaps of another version of Bedside, owns.
func OpenExisting(ctx context.Context, path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("open sqlite: %s is not a file", abs)
	}
	s, err := openPools(abs)
	if err != nil {
		return nil, err
	}
	if _, err := applied(ctx, s.r); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", abs, err)
	}
	return s, nil
}

// Backup writes a consistent copy of the database to path while it stays in
// use: VACUUM INTO reads one snapshot, so every write committed before Backup
// is called is in the copy, and writers carry on meanwhile (WAL). The copy is
// written to a temporary file beside path, owner-only (0600), checked (see
// Check, and that it records the same migrations as the database), then
// moved to path. An existing path is refused with an error wrapping
// fs.ErrExist; nothing is left behind on failure.
func (s *DB) Backup(ctx context.Context, path string) (err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("backup to %s: %w", path, err)
	}
	if _, err := os.Lstat(abs); err == nil {
		return fmt.Errorf("backup to %s: %w", abs, fs.ErrExist)
	}
	// VACUUM INTO fills an empty file and keeps its mode.
	f, err := os.CreateTemp(filepath.Dir(abs), "."+filepath.Base(abs)+".tmp-*")
	if err != nil {
		return fmt.Errorf("backup to %s: %w", abs, err)
	}
	tmp := f.Name()
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp)
			os.Remove(tmp + "-journal")
		}
	}()
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fmt.Errorf("backup to %s: %w", abs, err)
	}
	if err := s.vacuumInto(ctx, tmp); err != nil {
		return fmt.Errorf("backup to %s: %w", abs, err)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("backup to %s: %w", abs, err)
	}
	got, err := Check(ctx, tmp)
	if err != nil {
		return fmt.Errorf("backup to %s: check the copy: %w", abs, err)
	}
	want, err := applied(ctx, s.r)
	if err != nil {
		return fmt.Errorf("backup to %s: %w", abs, err)
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("backup to %s: the copy records migrations %v, the database %v", abs, got, want)
	}
	// A hard link, unlike a rename, never replaces a file that appeared at
	// path meanwhile.
	if err := os.Link(tmp, abs); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("backup to %s: %w", abs, fs.ErrExist)
		}
		return fmt.Errorf("backup to %s: %w", abs, err)
	}
	os.Remove(tmp)
	return syncFile(filepath.Dir(abs))
}

// vacuumInto copies the database into the empty file at path. It runs on a
// connection of its own: the readers are query_only, which refuses VACUUM
// INTO, and the writer would hold up every write until the copy is done. In
// WAL mode the copy reads one snapshot and neither waits for writers nor
// holds them up.
func (s *DB) vacuumInto(ctx context.Context, path string) error {
	var seq int
	var name, file string
	if err := s.r.QueryRowContext(ctx, `SELECT seq, name, file FROM pragma_database_list WHERE name = 'main'`).Scan(&seq, &name, &file); err != nil {
		return fmt.Errorf("find the database file: %w", err)
	}
	db, err := sql.Open("sqlite", dsn(file, false))
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("vacuum into: %w", err)
	}
	return db.Close()
}

// Check opens the SQLite database file at path read-only, runs PRAGMA
// integrity_check, and returns the names of the migrations it records, in
// order. It refuses a database that records a migration this build does
// not have (one made by a newer Bedside).
func Check(ctx context.Context, path string) ([]string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a file", abs)
	}
	db, err := sql.Open("sqlite", readOnlyDSN(abs))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return nil, fmt.Errorf("integrity check: %w", err)
	}
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return nil, fmt.Errorf("integrity check: %w", err)
		}
		problems = append(problems, line)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("integrity check: %w", err)
	}
	if len(problems) != 1 || problems[0] != "ok" {
		return nil, fmt.Errorf("integrity check failed: %s", strings.Join(problems, "; "))
	}
	names, err := applied(ctx, db)
	if err != nil {
		return nil, err
	}
	known, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("the database records migration %s, which this build of Bedside does not have (it was made by a newer one)", n)
		}
	}
	return names, nil
}

// applied lists the migrations db records, in name order.
func applied(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM schema_migrations ORDER BY name`)
	names, err := collect(rows, err, func(r scanner) (string, error) {
		var n string
		return n, r.Scan(&n)
	})
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return names, nil
}

// readOnlyDSN opens the file at abs for reading only. Immutable tells SQLite
// that nobody writes the file meanwhile (true of a backup): it then needs no
// locks and no -wal or -shm file beside it.
func readOnlyDSN(abs string) string {
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("immutable", "1")
	q.Add("_pragma", "query_only(1)")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	if !strings.HasPrefix(u.Path, "/") { // a Windows path: file:///C:/...
		u.Path = "/" + u.Path
	}
	return u.String()
}

// syncFile flushes the file or folder at path to stable storage.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// FolderLock is held on a data folder by LockFolder until Release.
type FolderLock struct {
	db   *sql.DB
	conn *sql.Conn
	path string
}

// LockFolder takes the lock file .lock in the folder dir (creating both,
// owner-only, if need be), so that one process at a time serves, or
// restores into, the store kept there. It fails at once, with an error
// wrapping ErrLocked, while another holder has it, in this process or in
// another; the operating system lets go of it when a holder exits, crashed
// or not.
//
// The lock file is an empty SQLite database held in an exclusive
// transaction: SQLite's file locking works on every platform the driver
// supports and between connections of one process.
func LockFolder(ctx context.Context, dir string) (*FolderLock, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("lock %s: %w", abs, err)
	}
	path := filepath.Join(abs, ".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", abs, err)
	}
	f.Close()
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: "_pragma=busy_timeout(0)"}
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path
	}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", abs, err)
	}
	conn, err := db.Conn(ctx)
	if err == nil {
		_, err = conn.ExecContext(ctx, `BEGIN EXCLUSIVE`)
	}
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		db.Close()
		if c := code(err); c&0xff == sqlite3.SQLITE_BUSY || c&0xff == sqlite3.SQLITE_LOCKED {
			return nil, fmt.Errorf("lock %s: %w", abs, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", abs, err)
	}
	return &FolderLock{db: db, conn: conn, path: path}, nil
}

// Release lets go of the lock. The lock file stays.
func (l *FolderLock) Release() error {
	if l == nil {
		return nil
	}
	_, err := l.conn.ExecContext(context.Background(), `ROLLBACK`)
	return errors.Join(err, l.conn.Close(), l.db.Close())
}
