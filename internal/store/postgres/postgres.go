// Package postgres is writ's shared store: PostgreSQL through
// github.com/jackc/pgx/v5, for several writ servers over one database
// (docs/store.md). It implements every aggregate interface of package
// store and the audit log's backend (package auditlog), with the same
// semantics as store/sqlite; the conformance suite in store/storetest runs
// against both.
//
// Schema changes are numbered SQL files in migrations/, mirroring
// store/sqlite's, embedded in the binary and applied in order, each in one
// transaction under an advisory lock, when the store opens; servers that
// start together migrate once. Every statement takes its input as
// parameters.
//
// The store keeps no state of its own between calls beyond its connection
// pool, so any server may serve any request: what must be serialised
// across servers is serialised in the database (the audit log's head row,
// leases).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/rowcodec"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is an open PostgreSQL store.
type DB struct {
	pool *pgxpool.Pool
	desc string // the DSN without its password, for messages
	now  func() time.Time

	paths rowcodec.LineagePaths // the lineage path dictionary's cache, see lineage.go
}

// DB implements every aggregate of store.Store.
var (
	_ store.Store  = (*DB)(nil)
	_ store.Leases = (*DB)(nil)
)

// Options tune Open. The zero value is ready to use.
type Options struct {
	// Now returns the current time used for created/updated stamps.
	// Defaults to time.Now.
	Now func() time.Time
	// MaxConns bounds the connection pool. Default 16 (or pool_max_conns
	// in the DSN).
	MaxConns int32
	// ReadOnly opens the store for reading only, without applying
	// migrations: every transaction is read-only (offline tools such as
	// `writ audit verify`).
	ReadOnly bool
}

// migrationLock is the first key of the advisory lock held while
// migrating; the second is the hash of the schema, so that stores in
// different schemas of one database migrate independently.
const migrationLock = 0x77726974 // "writ"

// ParseDSN parses a PostgreSQL connection string (a postgres:// URL or
// key=value pairs, as libpq takes them). Errors never contain the
// password.
func ParseDSN(dsn string) (*pgxpool.Config, error) {
	if strings.TrimSpace(dsn) == "" {
		return nil, errors.New("empty connection string; give a postgres://USER@HOST:PORT/DATABASE URL")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's own message repeats the string with the password
		// redacted; say only what is wrong.
		var pe *pgconn.ParseConfigError
		if errors.As(err, &pe) && pe.Unwrap() != nil {
			return nil, fmt.Errorf("parse connection string: %s", redactedCause(pe.Unwrap(), dsn))
		}
		return nil, errors.New("parse connection string: not a postgres:// URL or key=value list")
	}
	return cfg, nil
}

// redactedCause returns the text of err with any occurrence of the DSN's
// password removed (a parse error may quote the part it choked on).
func redactedCause(err error, dsn string) string {
	msg := err.Error()
	if pw := dsnPassword(dsn); pw != "" {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	if strings.Contains(msg, dsn) {
		msg = strings.ReplaceAll(msg, dsn, "(the connection string)")
	}
	return msg
}

// dsnPassword finds the password of a URL or key=value DSN, best effort,
// only to keep it out of messages.
func dsnPassword(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
				return pw
			}
		}
		return ""
	}
	for _, f := range strings.Fields(dsn) {
		if v, ok := strings.CutPrefix(f, "password="); ok {
			return strings.Trim(v, "'")
		}
	}
	return ""
}

// Describe names the database a connection config reaches, without the
// password: "postgres://USER@HOST:PORT/DATABASE".
func Describe(cfg *pgconn.Config) string {
	return fmt.Sprintf("postgres://%s@%s/%s", cfg.User, hostPort(cfg.Host, cfg.Port), cfg.Database)
}

func hostPort(host string, port uint16) string {
	if strings.HasPrefix(host, "/") {
		return host // a unix socket directory
	}
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(int(port))
	}
	return host + ":" + strconv.Itoa(int(port))
}

// Open connects to the database named by dsn and applies any pending
// migrations. The DSN never appears in an error; [DB.String] describes
// the database without the password.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	cfg, err := ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	} else if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = 16
	}
	if opts.ReadOnly {
		cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	}
	d := &DB{desc: Describe(&cfg.ConnConfig.Config), now: opts.Now}
	if d.now == nil {
		d.now = time.Now
	}
	d.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", d.desc, err)
	}
	if err := d.pool.Ping(ctx); err != nil {
		d.pool.Close()
		return nil, fmt.Errorf("open store %s: %w (is PostgreSQL running, and does store.dsn name the right host, database and user?)", d.desc, err)
	}
	if opts.ReadOnly {
		var n int
		if err := d.pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n == 0 {
			d.pool.Close()
			return nil, fmt.Errorf("open store %s read-only: no writ store there (has `writ serve` run with this store.dsn?)", d.desc)
		}
		return d, nil
	}
	if err := d.migrate(ctx, -1); err != nil {
		d.pool.Close()
		return nil, err
	}
	return d, nil
}

// String describes the database without the password.
func (d *DB) String() string { return d.desc }

// Pool returns the connection pool, for tests and benchmarks.
func (d *DB) Pool() *pgxpool.Pool { return d.pool }

// Ping checks that the database answers.
func (d *DB) Ping(ctx context.Context) error { return d.pool.Ping(ctx) }

// Close closes every connection.
func (d *DB) Close() error {
	d.pool.Close()
	return nil
}

// migrate applies the pending migrations numbered up to last (all of them
// if last is negative).
func (d *DB) migrate(ctx context.Context, last int) error {
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

// apply runs one migration in a transaction holding the schema's
// migration lock, unless it has been applied.
func (d *DB) apply(ctx context.Context, version int, name, body string) error {
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, migrationLock); err != nil {
			return fmt.Errorf("lock for migration %s: %w", name, err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
			return fmt.Errorf("create migrations table: %w", err)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, version).Scan(&n); err != nil {
			return fmt.Errorf("check migration %s: %w", name, err)
		}
		if n > 0 {
			return nil
		}
		// The simple protocol runs a file of several statements.
		if _, err := tx.Exec(ctx, body, pgx.QueryExecModeSimpleProtocol); err != nil {
			return fmt.Errorf("apply migration %s: %w", name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			version, name, d.now().UnixNano()); err != nil {
			return fmt.Errorf("record migration %s: %w", name, err)
		}
		return nil
	})
}

// querier is satisfied by the pool and by a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// isUnique reports whether err is a uniqueness violation.
func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

var unixNano = rowcodec.UnixNano

var fromNano = rowcodec.FromNano

// collect reads every row of rows with scan.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
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
