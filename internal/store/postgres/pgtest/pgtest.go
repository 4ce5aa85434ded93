// Package pgtest gives tests a PostgreSQL database of their own: a fresh
// database with a random name on the test server, dropped when the test
// ends, so that tests running in parallel (and other people's tests on the
// same server) never share tables.
//
// The server is WRIT_TEST_POSTGRES (a postgres:// URL of a database to
// connect to for CREATE DATABASE) or, by default, 127.0.0.1:5432 with
// trust authentication, database test, as user postgres or root. When it
// cannot be reached the test is skipped, except under CI=true, where it
// fails: CI always provides PostgreSQL (.ci/run starts it).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// adminDSNs are the servers tried, in order.
func adminDSNs() []string {
	if v := os.Getenv("WRIT_TEST_POSTGRES"); v != "" {
		return []string{v}
	}
	return []string{
		"postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
		"postgres://root@127.0.0.1:5432/test?sslmode=disable",
	}
}

// Admin connects to the test server's admin database, or skips (fails
// under CI=true).
func Admin(t testing.TB) (*pgx.Conn, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, dsn := range adminDSNs() {
		c, err := pgx.Connect(ctx, dsn)
		if err == nil {
			return c, dsn
		}
		errs = append(errs, err)
	}
	msg := fmt.Sprintf("PostgreSQL is not reachable (set WRIT_TEST_POSTGRES or start it on 127.0.0.1:5432): %v", errs)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return nil, ""
}

// DB is a test database of its own.
type DB struct {
	dsn string
}

// DSN creates a new, empty database and returns its connection string. The
// database is dropped (with every connection to it) when t ends. Creating
// a database takes a second or two; tests that need many empty stores take
// one database and a [DB.Schema] for each.
func DSN(t testing.TB) string { return New(t).DSN() }

// DSN returns the database's connection string.
func (d *DB) DSN() string { return d.dsn }

// Schema creates a new, empty schema in d and returns a connection string
// whose search_path is that schema: a store opened with it sees nothing
// of any other. Its commits do not wait for the disk (synchronous_commit
// off): use [DB.DSN] to test durability or measure.
func (d *DB) Schema(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, d.dsn)
	if err != nil {
		t.Fatalf("connect to the test database: %v", err)
	}
	defer c.Close(ctx)
	name := "s_" + randomSuffix(t)
	if _, err := c.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create test schema %s: %v", name, err)
	}
	u, err := url.Parse(d.dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", name)
	// Conformance tests open dozens of stores, each migrating; they do
	// not test durability, so commits need not wait for the disk.
	q.Set("synchronous_commit", "off")
	u.RawQuery = q.Encode()
	return u.String()
}

func randomSuffix(t testing.TB) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// New creates a new, empty database, dropped when t ends.
func New(t testing.TB) *DB {
	t.Helper()
	admin, adminDSN := Admin(t)
	ctx := context.Background()
	defer admin.Close(ctx)
	name := "writ_test_" + randomSuffix(t)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+ident+` TEMPLATE template0 ENCODING 'UTF8'`); err != nil {
		t.Fatalf("create test database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, adminDSN)
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if err := DropRolesOf(ctx, c, name); err != nil {
			t.Error(err)
		}
		if _, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+ident+` WITH (FORCE)`); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(adminDSN)
	if err != nil {
		t.Fatalf("WRIT_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	return &DB{dsn: u.String()}
}

// ErrUnreachable is returned by Create when no test server answers.
var ErrUnreachable = errors.New("PostgreSQL is not reachable (set WRIT_TEST_POSTGRES or start it on 127.0.0.1:5432)")

// Create makes a new, empty database outside a testing.T (for
// testscripts, whose processes are not Go tests): it returns its
// connection string and the function that drops it. Callers skip on
// ErrUnreachable, except under CI=true.
func Create(ctx context.Context) (dsn string, drop func() error, err error) {
	var admin *pgx.Conn
	var adminDSN string
	var errs []error
	for _, d := range adminDSNs() {
		if admin, err = pgx.Connect(ctx, d); err == nil {
			adminDSN = d
			break
		}
		errs = append(errs, err)
	}
	if admin == nil {
		return "", nil, fmt.Errorf("%w: %v", ErrUnreachable, errors.Join(errs...))
	}
	defer admin.Close(ctx)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, err
	}
	name := "writ_test_" + hex.EncodeToString(b[:])
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+ident+` TEMPLATE template0 ENCODING 'UTF8'`); err != nil {
		return "", nil, fmt.Errorf("create test database %s: %w", name, err)
	}
	u, err := url.Parse(adminDSN)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, adminDSN)
		if err != nil {
			return fmt.Errorf("drop test database %s: %w", name, err)
		}
		defer c.Close(ctx)
		if err := DropRolesOf(ctx, c, name); err != nil {
			return err
		}
		if _, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+ident+` WITH (FORCE)`); err != nil {
			return fmt.Errorf("drop test database %s: %w", name, err)
		}
		return nil
	}
	return u.String(), drop, nil
}

// Reachable reports whether a test server answers.
func Reachable(ctx context.Context) bool {
	for _, d := range adminDSNs() {
		if c, err := pgx.Connect(ctx, d); err == nil {
			c.Close(ctx)
			return true
		}
	}
	return false
}

// DropRolesOf drops the roles a test created for database name (those
// granted a privilege on it: writ's dynamic roles, say), which would
// otherwise outlive it on the shared server. admin is a superuser
// connection to another database.
func DropRolesOf(ctx context.Context, admin *pgx.Conn, name string) error {
	rows, err := admin.Query(ctx, `SELECT DISTINCT r.rolname FROM pg_database d, aclexplode(d.datacl) a JOIN pg_roles r ON r.oid = a.grantee
		WHERE d.datname = $1 AND r.oid <> d.datdba AND NOT r.rolsuper`, name)
	if err != nil {
		return fmt.Errorf("list roles of test database %s: %w", name, err)
	}
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(roles) == 0 {
		return err
	}
	cfg := admin.Config().Copy()
	cfg.Database = name
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("drop roles of test database %s: %w", name, err)
	}
	defer c.Close(ctx)
	for _, r := range roles {
		id := pgx.Identifier{r}.Sanitize()
		c.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, r)
		if _, err := c.Exec(ctx, `DROP OWNED BY `+id+`; DROP ROLE IF EXISTS `+id); err != nil {
			return fmt.Errorf("drop role %s of test database %s: %w", r, name, err)
		}
	}
	return nil
}
