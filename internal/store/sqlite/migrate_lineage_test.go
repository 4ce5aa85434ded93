package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/storetest"
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

// TestLineageAllTimePlan: the whole graph over all time (the all-time
// rollup, no filter) is one scan of the covering partial index of
// migration 0021, with no table lookup per path and no sort.
func TestLineageAllTimePlan(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "writ.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q, args := lineageQuery(store.LineageFilter{AllTime: true})
	rows, err := db.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(plan) != 1 || !strings.Contains(plan[0], "USING COVERING INDEX lineage_facts_all_time") {
		t.Errorf("plan of %s = %q, want one scan USING COVERING INDEX lineage_facts_all_time", q, plan)
	}
}

// TestLineageDailyBackfill: migration 0016 fills the daily rollup from
// the hourly facts of a store folded before it (storetest).
func TestLineageDailyBackfill(t *testing.T) {
	storetest.RunLineageBackfill(t, func(t *testing.T) (store.Store, func(string) error, func() store.Store) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "writ.db")
		db, err := Open(ctx, path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		exec := func(q string) error { _, err := db.db.ExecContext(ctx, q); return err }
		reopen := func() store.Store {
			db.Close()
			db2, err := Open(ctx, path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db2.Close() })
			return db2
		}
		return db, exec, reopen
	})
}
