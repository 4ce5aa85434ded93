package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// Every connection of the store and of the audit search index has the
// smaller page cache (cacheSize), not SQLite's default of 2 MiB: the DSN's
// pragma applies to each connection a pool opens, so hold several at once.
func TestConnectionCacheSize(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, filepath.Join(t.TempDir(), "writ.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ix, err := d.auditIndex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, db := range map[string]*sql.DB{"store": d.db, "audit index": ix.db} {
		var conns []*sql.Conn
		for range 3 {
			c, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			var kib int
			if err := c.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&kib); err != nil {
				t.Fatal(err)
			}
			if kib != -256 {
				t.Errorf("%s connection %d: cache_size %d, want -256 (256 KiB)", name, len(conns), kib)
			}
		}
		for _, c := range conns {
			c.Close()
		}
	}
}
