package postgres_test

import (
	"context"
	"testing"

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
	t.Run("Audit", func(t *testing.T) {
		storetest.RunAudit(t, func(t *testing.T) auditlog.Backend { return open(t).Audit() })
	})
}
