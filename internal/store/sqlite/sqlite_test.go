package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
	"github.com/writ-dev/writ/internal/store/storetest"
)

func TestCredentials(t *testing.T) { storetest.RunCredentials(t, openTemp) }

func TestPins(t *testing.T)      { storetest.RunPins(t, openTemp) }
func TestInventory(t *testing.T) { storetest.RunInventory(t, openTemp) }
func TestLineage(t *testing.T)   { storetest.RunLineage(t, openTemp) }
func TestAlerts(t *testing.T)    { storetest.RunAlerts(t, openTemp) }
func TestUsers(t *testing.T)     { storetest.RunUsers(t, openTemp) }
func TestDBRoles(t *testing.T)   { storetest.RunDBRoles(t, openTemp) }

func openTemp(t *testing.T) store.Store {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

func TestSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "writ.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateEntry(ctx, store.Entry{Name: "a", SpiffeID: "spiffe://writ.local/a"}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("reopen (migrations must be idempotent): %v", err)
	}
	defer db.Close()
	if _, err := db.GetEntry(ctx, "a"); err != nil {
		t.Fatalf("identity lost across reopen: %v", err)
	}
}

func TestTasksConformance(t *testing.T) {
	storetest.RunTasks(t, func(t *testing.T) store.Store {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

func TestOddPath(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a #b?c%20d", "writ.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("open %q: %v", path, err)
	}
	defer db.Close()
	if _, err := db.CreateEntry(ctx, store.Entry{Name: "a", SpiffeID: "spiffe://writ.local/a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at the path given: %v", err)
	}
}

func TestNodes(t *testing.T) {
	storetest.RunNodes(t, func(t *testing.T) store.NodeStore { return openTemp(t).(*sqlite.DB) })
}

func TestLeases(t *testing.T) { storetest.RunLeases(t, openTemp) }
