package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// TestLineageAllTimeMigration: the hourly lineage facts folded before
// migration 0015 are summed into the all-time rollup, so a query over
// every hour answers as before.
func TestLineageAllTimeMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "writ.db")
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	old := &DB{db: raw, path: path, now: time.Now}
	if err := old.migrateTo(ctx, 14); err != nil {
		t.Fatal(err)
	}
	for i, hour := range []int64{1772618400, 1772622000} {
		if _, err := raw.Exec(`INSERT INTO lineage_facts (hour, user, identity, instance, task, via, target_kind, target, tool, credential,
			approved_by, allowed, denied, held, first_seen, last_seen) VALUES (?, '', 'spiffe://writ.local/a', 'inst_1', '', 'process', 'service',
			'mail', '', '', '', ?, 1, 0, ?, ?)`, hour, 2+i, hour*1e9+1, hour*1e9+2); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.ListLineage(ctx, store.LineageFilter{AllTime: true})
	if err != nil || len(got) != 1 || got[0].Allowed != 5 || got[0].Denied != 2 || got[0].FirstSeen.UnixNano() != 1772618400*1e9+1 ||
		got[0].LastSeen.UnixNano() != 1772622000*1e9+2 {
		t.Fatalf("all-time rollup after the migration = %+v, %v", got, err)
	}
	if hourly, _ := db.ListLineage(ctx, store.LineageFilter{}); len(hourly) != 1 || hourly[0].Allowed != 5 {
		t.Errorf("hourly sum after the migration = %+v", hourly)
	}
}
