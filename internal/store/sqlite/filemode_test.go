package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// TestFilesArePrivate opens a store in a directory other users may read,
// under the common umask 022, and writes to it: the database, its
// write-ahead log and shared-memory file, and the audit search index's,
// must all be readable by their owner only. SQLite creates -wal and -shm
// itself, with the database file's mode at that moment.
func TestFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	path := filepath.Join(dir, "writ.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.CreateEntry(ctx, store.Entry{Name: "a", SpiffeID: "spiffe://writ.local/a",
		Selectors: []store.Selector{{Type: "unix", Value: "uid:1"}}}); err != nil {
		t.Fatal(err)
	}
	want := []string{"writ.db", "writ.db-wal", "writ.db-shm", "writ.audit-index.db", "writ.audit-index.db-wal", "writ.audit-index.db-shm"}
	for _, name := range want {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", name, fi.Mode().Perm())
		}
	}
}
