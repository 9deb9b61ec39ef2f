package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bedside-health/bedside/store/sqlite"
)

// dbFile is the SQLite store in the data folder. A backup is a folder
// holding it, copied consistently while the server runs, and the server key
// join links are derived from (secretFile; absent when BEDSIDE_SECRET is
// used instead).
const dbFile = "bedside.db"

// isPostgres reports whether DATABASE_URL selects PostgreSQL.
func isPostgres(databaseURL string) bool {
	return strings.HasPrefix(databaseURL, "postgres://") || strings.HasPrefix(databaseURL, "postgresql://")
}

// withoutPassword is the database URL with its password left out, for
// messages: pg_dump then takes it from PGPASSWORD or ~/.pgpass.
func withoutPassword(databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "postgres://…"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	if q := u.Query(); q.Has("password") {
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// lockDataFolder takes the data folder's lock for serve and restore, so that
// neither runs beside a server on the same folder. With PostgreSQL there is
// no store in the folder and nothing to lock (the lock returned is nil,
// whose Release does nothing).
func lockDataFolder(ctx context.Context, data, databaseURL string) (*sqlite.FolderLock, error) {
	if databaseURL != "" {
		return nil, nil
	}
	lock, err := sqlite.LockFolder(ctx, data)
	if errors.Is(err, sqlite.ErrLocked) {
		return nil, fmt.Errorf("the data folder %s is in use by another bedside server or restore (its lock file is %s)", data, filepath.Join(data, ".lock"))
	}
	return lock, err
}

// backup copies the SQLite store and the server key into a new folder
// while the server keeps serving.
func backup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var out string
	data, err := adminFlags("backup", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "out", "", "the folder to make, holding bedside.db and secret.key")
	})
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if dbURL := getenv("DATABASE_URL"); isPostgres(dbURL) {
		return fmt.Errorf("backup: the store is PostgreSQL (DATABASE_URL), which bedside backup does not copy; back it up with pg_dump:\n"+
			"  pg_dump --format=custom --file=bedside.dump '%s'\n"+
			"with the password in PGPASSWORD or ~/.pgpass, and keep BEDSIDE_SECRET with the dump", withoutPassword(dbURL))
	} else if dbURL != "" {
		return fmt.Errorf("DATABASE_URL %q: only postgres:// URLs are recognised", dbURL)
	}
	if out == "" {
		return errors.New("backup: --out DIR is required (a new folder)")
	}
	src := filepath.Join(data, dbFile)
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("backup: no database at %s: %w", src, err)
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Clean(out)), 0o700); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	start := time.Now()
	if err := os.Mkdir(out, 0o700); errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("backup: %s already exists; a backup goes into a new folder and never overwrites one", out)
	} else if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	written, err := backupInto(ctx, data, out)
	if err != nil {
		for _, f := range written {
			os.Remove(f)
		}
		os.Remove(out)
		return fmt.Errorf("backup: %w", err)
	}
	took := time.Since(start)
	fmt.Fprintf(stdout, "backup written to %s in %s:\n", out, took.Round(time.Millisecond))
	for _, f := range written {
		fi, err := os.Stat(f)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		fmt.Fprintf(stdout, "  %-12s %d bytes\n", filepath.Base(f), fi.Size())
	}
	if len(written) == 1 {
		fmt.Fprintf(stdout, "No %s in %s (BEDSIDE_SECRET is set?): keep that secret with the backup, or join links already sent stop working after a restore.\n", secretFile, data)
	}
	return nil
}

// backupInto writes the database and the server key of the data folder into
// the empty folder out, returning the files it wrote.
func backupInto(ctx context.Context, data, out string) (written []string, err error) {
	db, err := sqlite.OpenExisting(ctx, filepath.Join(data, dbFile))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	dst := filepath.Join(out, dbFile)
	if err := db.Backup(ctx, dst); err != nil {
		return nil, err
	}
	written = append(written, dst)
	key := filepath.Join(data, secretFile)
	if _, err := os.Stat(key); errors.Is(err, fs.ErrNotExist) {
		return written, nil
	}
	if err := copyNew(key, filepath.Join(out, secretFile)); err != nil {
		return written, err
	}
	return append(written, filepath.Join(out, secretFile)), nil
}

// restore puts a backup made by bedside backup in place of the data
// folder's store and key, keeping the files it replaces beside them. It
// refuses while a server runs on the folder.
func restore(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var from string
	data, err := adminFlags("restore", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&from, "from", "", "a folder made by bedside backup")
	})
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if dbURL := getenv("DATABASE_URL"); isPostgres(dbURL) {
		return fmt.Errorf("restore: the store is PostgreSQL (DATABASE_URL); restore a pg_dump backup with:\n"+
			"  pg_restore --clean --if-exists --dbname='%s' bedside.dump\n"+
			"with the password in PGPASSWORD or ~/.pgpass", withoutPassword(dbURL))
	} else if dbURL != "" {
		return fmt.Errorf("DATABASE_URL %q: only postgres:// URLs are recognised", dbURL)
	}
	if from == "" {
		return errors.New("restore: --from DIR is required (a folder made by bedside backup)")
	}
	if _, err := os.Stat(filepath.Join(from, dbFile)); err != nil {
		return fmt.Errorf("restore: %s is not a backup: %w", from, err)
	}
	lock, err := lockDataFolder(ctx, data, "")
	if err != nil {
		return fmt.Errorf("restore: %w; stop it first", err)
	}
	defer lock.Release()

	stamp := ".before-restore-" + time.Now().UTC().Format("20060102T150405.000Z")
	for _, p := range []string{dbFile, secretFile} {
		if _, err := os.Lstat(filepath.Join(data, p+stamp)); err == nil {
			return fmt.Errorf("restore: %s already exists; try again", filepath.Join(data, p+stamp))
		}
	}
	// Copy into the data folder first, and check the copy that will be used.
	tmp, err := copyTemp(filepath.Join(from, dbFile), data)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer os.Remove(tmp) // after the rename below, there is nothing to remove
	migrations, err := sqlite.Check(ctx, tmp)
	if err != nil {
		return fmt.Errorf("restore: the backup %s fails its check, nothing was changed: %w", filepath.Join(from, dbFile), err)
	}
	dst := filepath.Join(data, dbFile)
	// The write-ahead log goes aside with its database: left behind, SQLite
	// would apply it to the restored one.
	var aside string
	var moved []string
	undo := func(err error) error {
		for _, suffix := range moved {
			if uerr := os.Rename(dst+stamp+suffix, dst+suffix); uerr != nil {
				return fmt.Errorf("restore: %w; then putting %s back failed: %v", err, dst+suffix, uerr)
			}
		}
		return fmt.Errorf("restore: %w; nothing was changed", err)
	}
	for _, suffix := range []string{"-wal", "-shm", ""} {
		if err := os.Rename(dst+suffix, dst+stamp+suffix); err == nil {
			moved = append(moved, suffix)
			if suffix == "" {
				aside = dst + stamp
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return undo(fmt.Errorf("move the current database aside: %w", err))
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return undo(err)
	}
	fmt.Fprintf(stdout, "restored %s from %s (%d migrations; the server applies newer ones when it starts)\n", dst, from, len(migrations))
	if aside != "" {
		fmt.Fprintf(stdout, "the database it replaces is kept as %s\n", aside)
	}

	key := filepath.Join(from, secretFile)
	if _, err := os.Stat(key); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stdout, "the backup holds no %s: join links depend on the key in use (BEDSIDE_SECRET, or %s)\n", secretFile, filepath.Join(data, secretFile))
		return syncFile(data)
	}
	tmpKey, err := copyTemp(key, data)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer os.Remove(tmpKey)
	dstKey := filepath.Join(data, secretFile)
	if err := os.Rename(dstKey, dstKey+stamp); err == nil {
		fmt.Fprintf(stdout, "restored %s; the key it replaces is kept as %s\n", dstKey, dstKey+stamp)
	} else if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stdout, "restored %s\n", dstKey)
	} else {
		return fmt.Errorf("restore: move the current key aside: %w", err)
	}
	if err := os.Rename(tmpKey, dstKey); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return syncFile(data)
}

// copyTemp copies the file src into a new owner-only temporary file in the
// folder dir (created 0700 if need be), flushed to disk, and returns its name.
func copyTemp(src, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.CreateTemp(dir, ".restore-*") // mode 0600
	if err != nil {
		return "", err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out.Name())
		return "", fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Name(), nil
}

// copyNew copies the file src to dst, which must not exist, owner-only and
// flushed to disk.
func copyNew(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

// syncFile flushes the file or folder at path to disk.
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
