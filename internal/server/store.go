package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
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

// Scale-out coordination through the store.
const (
	// bootstrapLease is held while a server creates what the first
	// server on a store creates (the audit log key, the first CA keys):
	// servers starting together on an empty PostgreSQL store take turns.
	bootstrapLease    = "writ/bootstrap"
	bootstrapLeaseTTL = 2 * time.Minute
	// keysChannel announces, between servers on one PostgreSQL store,
	// that signing keys were written: the others reload them, so that a
	// rotation on one server is signed with and published by all.
	keysChannel = "writ_keys"
)

// leaseHolder names this server process in leases.
func leaseHolder(nodeName string) string {
	host := nodeName
	if host == "" {
		host, _ = os.Hostname()
	}
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), rand.Text()[:8])
}

// holdLease waits until holder holds lease name and returns the function
// that releases it.
func holdLease(ctx context.Context, ls store.Leases, name, holder string, ttl time.Duration, now func() time.Time, log *slog.Logger) (func(), error) {
	for {
		l, ok, err := ls.AcquireLease(ctx, name, holder, now(), ttl)
		if err != nil {
			return nil, fmt.Errorf("take lease %s: %w", name, err)
		}
		if ok {
			return func() {
				if err := ls.ReleaseLease(context.WithoutCancel(ctx), name, holder); err != nil {
					log.Warn("release lease", "lease", name, "error", err)
				}
			}, nil
		}
		log.Info("waiting for another server", "lease", name, "holder", l.Holder, "until", l.ExpiresAt)
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("take lease %s (held by %s): %w", name, l.Holder, ctx.Err())
		case <-t.C:
		}
	}
}

// notifier is implemented by stores that can wake the other servers
// sharing them (PostgreSQL LISTEN/NOTIFY).
type notifier interface {
	Notify(ctx context.Context, channel, payload string) error
	Listen(ctx context.Context, channel string, fn func(payload string)) error
}

// announcingKeys tells the other servers when a signing key is written.
type announcingKeys struct {
	store.Keys
	n   notifier
	log *slog.Logger
}

func (k announcingKeys) PutKey(ctx context.Context, key store.Key) error {
	if err := k.Keys.PutKey(ctx, key); err != nil {
		return err
	}
	k.announce(ctx)
	return nil
}

func (k announcingKeys) DeleteKey(ctx context.Context, id string) error {
	if err := k.Keys.DeleteKey(ctx, id); err != nil {
		return err
	}
	k.announce(ctx)
	return nil
}

func (k announcingKeys) announce(ctx context.Context) {
	if err := k.n.Notify(context.WithoutCancel(ctx), keysChannel, ""); err != nil {
		// The others still pick the keys up at their next transition.
		k.log.Warn("announce a key change to the other servers", "error", err)
	}
}
