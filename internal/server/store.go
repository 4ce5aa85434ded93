package server

import (
	"context"
	"fmt"
	"time"

	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/config"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/postgres"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// backingStore is what the server needs of a store: every aggregate, the
// audit log's backend, and a health check.
type backingStore interface {
	store.Store
	store.NodeStore
	AuditBackend() auditlog.Backend
	Ping(ctx context.Context) error
	// AuditIndexed is how many of the log's size events searches find
	// through an index (the rest are read from the log).
	AuditIndexed(size int64) int64
	// Describe names the store for the banner and logs, never with a
	// password.
	Describe() string
}

// openStore opens the store cfg.Store names.
func openStore(ctx context.Context, cfg config.Store, now func() time.Time) (backingStore, error) {
	switch cfg.Driver {
	case "sqlite":
		db, err := sqlite.Open(ctx, cfg.DSN, sqlite.Options{Now: now})
		if err != nil {
			return nil, err
		}
		return sqliteStore{db}, nil
	case "postgres":
		db, err := postgres.Open(ctx, cfg.DSN, postgres.Options{Now: now})
		if err != nil {
			return nil, fmt.Errorf("store.dsn: %w", err)
		}
		return postgresStore{db}, nil
	}
	return nil, fmt.Errorf("store.driver %q: use sqlite or postgres", cfg.Driver)
}

type sqliteStore struct{ *sqlite.DB }

func (s sqliteStore) AuditBackend() auditlog.Backend { return s.Audit() }
func (s sqliteStore) Ping(ctx context.Context) error { return s.SQL().PingContext(ctx) }
func (s sqliteStore) AuditIndexed(size int64) int64  { return min(s.DB.AuditIndexed(), size) }
func (s sqliteStore) Describe() string               { return "sqlite " + s.Path() }

// postgresStore indexes every event in the transaction that appends it.
type postgresStore struct{ *postgres.DB }

func (p postgresStore) AuditBackend() auditlog.Backend { return p.Audit() }
func (p postgresStore) AuditIndexed(size int64) int64  { return size }
func (p postgresStore) Describe() string               { return "postgres " + p.String() }
