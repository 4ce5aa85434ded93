// Package sqlite is writ's embedded store: SQLite through the pure-Go
// modernc.org/sqlite driver (no cgo), in WAL mode with full synchronous
// commits, so that a crash never leaves a half-written store and an
// acknowledged write survives a kill. The audit log writes through a
// connection of its own that syncs the WAL itself, once per group of
// commits (audit_writer.go), and keeps its search index in a second file
// (audit_index.go).
//
// Schema changes are numbered SQL files in migrations/, embedded in the
// binary and applied in order inside one transaction each when the store
// opens. [DB] implements every aggregate interface of package store.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/rowcodec"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is an open SQLite store.
type DB struct {
	db   *sql.DB
	path string
	// Now returns the current time; it defaults to time.Now.
	now func() time.Time

	readOnly bool // opened by OpenReadOnly

	auditMu sync.Mutex
	auditW  *auditWriter // the audit log's writer connection, once used
	auditIx *auditIndex  // the audit search index, once used

	leaseMu sync.Mutex
	leases  map[string]store.Lease // see leases.go

	paths rowcodec.LineagePaths // the lineage path dictionary's cache, see lineage.go
}

var _ store.Store = (*DB)(nil)

// Options tune Open. The zero value is ready to use.
type Options struct {
	// Now returns the current time used for created/updated stamps.
	// Defaults to time.Now.
	Now func() time.Time
}

// cacheSize is the page cache of each SQLite connection, 256 KiB (SQLite's
// default is 2 MiB). The store and the audit search index keep up to 8
// connections each, and under load most of them fill their caches: at the
// default that was 17 MiB of writ's 55 MiB of private memory while the
// proxy served 9,000 requests/s, and at 1 MiB still 10 MiB (bench/README
// "Proxy"). A larger cache buys little here: the files' pages stay in the
// kernel's page cache either way, so a page SQLite must read again costs
// a pread of memory, not a disk read; the lineage and audit queries over
// a 1M-event log were measured at 1 MiB and 256 KiB (bench/README,
// "Session 14"). The two connections that write every audit event pay for
// it in CPU: at 256 KiB they read back pages of the B-trees they insert
// into, about 1.5% of writ's CPU under proxy load, and at 1 MiB they held
// about 7 MiB more (modernc's allocator rounds a cached page, 4 KiB and
// its header, up to an 8 KiB block).
const cacheSize = "cache_size(-256)"

// Open opens (creating if needed) the database file at path and applies any
// pending migrations. The database and the files SQLite keeps beside it
// are readable by their owner only (mode 0600).
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create store directory %s: %w", dir, err)
		}
	}
	if err := privateFile(path); err != nil {
		return nil, err
	}
	q := url.Values{}
	for _, p := range []string{
		"journal_mode(WAL)",
		"synchronous(FULL)",
		"busy_timeout(10000)",
		"foreign_keys(1)",
		cacheSize,
	} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	sdb, err := sql.Open("sqlite", fileDSN(path, q))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	sdb.SetMaxOpenConns(8)
	sdb.SetMaxIdleConns(8)
	sdb.SetConnMaxIdleTime(0)
	d := &DB{db: sdb, path: path, now: opts.Now}
	if d.now == nil {
		d.now = time.Now
	}
	if err := d.migrate(ctx); err != nil {
		sdb.Close()
		return nil, err
	}
	// Open the audit search index now (catching it up in the
	// background), not on the first append, which would wait for it.
	if _, err := d.auditIndex(ctx); err != nil {
		sdb.Close()
		return nil, err
	}
	return d, nil
}

// fileDSN returns the SQLite URI filename of path with the query q.
// SQLite URI filenames decode %HH escapes; the characters that would
// otherwise end the path ('?', '#') and '%' itself are escaped.
func fileDSN(path string, q url.Values) string {
	return "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path) + "?" + q.Encode()
}

// SQL returns the underlying database handle for packages that keep their
// own tables in this store (such as the audit log).
func (d *DB) SQL() *sql.DB { return d.db }

// Path returns the database file path.
func (d *DB) Path() string { return d.path }

// Close closes the database.
func (d *DB) Close() error {
	d.auditMu.Lock()
	if d.auditIx != nil {
		d.auditIx.close() // first: it may read events to catch up
		d.auditIx = nil
	}
	if d.auditW != nil {
		d.auditW.close()
		d.auditW = nil
	}
	d.auditMu.Unlock()
	return d.db.Close()
}

func (d *DB) migrate(ctx context.Context) error { return d.migrateTo(ctx, -1) }

// migrateTo applies the pending migrations numbered up to last (all of
// them if last is negative).
func (d *DB) migrateTo(ctx context.Context, last int) error {
	if _, err := d.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	ms, err := rowcodec.Migrations(migrations, last)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := d.apply(ctx, m.Version, m.Name, m.Body); err != nil {
			return err
		}
	}
	return nil
}

func (d *DB) apply(ctx context.Context, version int, name, body string) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin migration %s: %w", name, err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
		return fmt.Errorf("check migration %s: %w", name, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return fmt.Errorf("apply migration %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		version, name, d.now().UnixNano()); err != nil {
		return fmt.Errorf("record migration %s: %w", name, err)
	}
	return tx.Commit()
}

// isUnique reports whether err is a SQLite uniqueness violation.
func isUnique(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "UNIQUE constraint failed") ||
		strings.Contains(err.Error(), "PRIMARY KEY"))
}

func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

var unixNano = rowcodec.UnixNano

var fromNano = rowcodec.FromNano
