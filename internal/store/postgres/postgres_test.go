package postgres_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/postgres"
	"github.com/writ-dev/writ/internal/store/postgres/pgtest"
	"github.com/writ-dev/writ/internal/store/storetest"
)

// opener returns a function that opens a fresh store in a schema of its
// own, all in one database created for t.
func opener(t *testing.T) func(t *testing.T) *postgres.DB {
	pg := pgtest.New(t)
	return func(t *testing.T) *postgres.DB { return openDSN(t, pg.Schema(t)) }
}

func openDSN(t *testing.T, dsn string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestConformance runs the whole conformance suite, as store/sqlite does,
// in one database.
func TestConformance(t *testing.T) {
	open := opener(t)
	so := func(t *testing.T) store.Store { return open(t) }
	t.Run("Store", func(t *testing.T) { storetest.Run(t, so) })
	t.Run("Tasks", func(t *testing.T) { storetest.RunTasks(t, so) })
	t.Run("Credentials", func(t *testing.T) { storetest.RunCredentials(t, so) })
	t.Run("Pins", func(t *testing.T) { storetest.RunPins(t, so) })
	t.Run("Inventory", func(t *testing.T) { storetest.RunInventory(t, so) })
	t.Run("Leases", func(t *testing.T) { storetest.RunLeases(t, so) })
	t.Run("Users", func(t *testing.T) { storetest.RunUsers(t, so) })
	t.Run("Lineage", func(t *testing.T) { storetest.RunLineage(t, so) })
	t.Run("Alerts", func(t *testing.T) { storetest.RunAlerts(t, so) })
	t.Run("DBRoles", func(t *testing.T) { storetest.RunDBRoles(t, so) })
	t.Run("Nodes", func(t *testing.T) { storetest.RunNodes(t, func(t *testing.T) store.NodeStore { return open(t) }) })
	t.Run("Audit", func(t *testing.T) {
		storetest.RunAudit(t, func(t *testing.T) auditlog.Backend { return open(t).Audit() })
	})
}

// TestLineageDailyBackfill: migration 0016 fills the daily rollup from
// the hourly facts of a store folded before it (storetest).
func TestLineageDailyBackfill(t *testing.T) {
	pg := pgtest.New(t)
	storetest.RunLineageBackfill(t, func(t *testing.T) (store.Store, func(string) error, func() store.Store) {
		dsn := pg.Schema(t)
		db := openDSN(t, dsn)
		exec := func(q string) error { _, err := db.Pool().Exec(context.Background(), q); return err }
		return db, exec, func() store.Store { return openDSN(t, dsn) }
	})
}

// TestLineagePathsShared: two handles on one database (two servers) name
// each other's paths (storetest).
func TestLineagePathsShared(t *testing.T) {
	dsn := pgtest.New(t).Schema(t)
	storetest.RunLineageShared(t, func(t *testing.T) (store.Store, store.Store) { return openDSN(t, dsn), openDSN(t, dsn) })
}

// TestListenChanges checks the server-to-server wake-up: an append to the
// change feed through one store handle (one server) is announced, with its
// sequence number, to a listener on another.
func TestListenChanges(t *testing.T) {
	pg := pgtest.New(t)
	dsn := pg.Schema(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 16)
	done := make(chan error, 1)
	go func() { done <- b.Listen(ctx, postgres.ChangesChannel, func(p string) { got <- p }) }()
	// The listener may not be connected yet: append until one arrives.
	var seq int64
	deadline := time.After(20 * time.Second)
	for {
		var err error
		if seq, err = a.AppendChange(ctx, store.Change{Kind: "revocation", Key: "spiffe_id/x", Op: store.ChangePut}); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-got:
			if p == "" {
				continue
			}
			if want := strconv.FormatInt(seq, 10); p != want {
				// An earlier append's notice: read on.
				for p != want {
					select {
					case p = <-got:
					case <-deadline:
						t.Fatalf("no notice for seq %s", want)
					}
				}
			}
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Listen returned %v, want context.Canceled", err)
			}
			return
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("no notification within 20s")
		}
	}
}

func TestListenBadChannel(t *testing.T) {
	db := openDSN(t, pgtest.New(t).Schema(t))
	for _, ch := range []string{"", strings.Repeat("x", 64)} {
		if err := db.Listen(context.Background(), ch, func(string) {}); err == nil {
			t.Errorf("Listen(%q) accepted the name", ch)
		}
	}
	// A name that needs quoting is quoted, not interpreted.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := db.Listen(ctx, `x"; DROP TABLE tasks; --`, func(string) {}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Listen(hostile name) = %v, want it to listen until the deadline", err)
	}
	if _, err := db.ListTasks(context.Background(), store.TaskFilter{}); err != nil {
		t.Errorf("after a hostile channel name: %v", err)
	}
}
