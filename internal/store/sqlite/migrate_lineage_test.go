package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/rowcodec"
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

// TestLineagePathSumPlans: every query of a whole-graph answer (the
// all-time rollup, open and closed windows of hours and days) is one
// range scan of migration 0022's covering indexes: no table lookup per
// row and no sort.
func TestLineagePathSumPlans(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "writ.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	day := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	for _, f := range []store.LineageFilter{{AllTime: true}, {}, {Since: day.Add(5 * time.Hour)}, {Until: day.Add(50 * time.Hour)},
		{Since: day.Add(5 * time.Hour), Until: day.Add(100 * time.Hour)}} {
		for _, q := range rowcodec.PathSumQueries(f) {
			rows, err := db.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			rows.Close()
			if len(plan) != 1 || !strings.Contains(plan[0], "USING COVERING INDEX lineage_") || !strings.Contains(plan[0], "_path_sums") {
				t.Errorf("plan of %s = %q, want one scan USING COVERING INDEX lineage_*_path_sums", q, plan)
			}
		}
	}
}

// TestLineageAllTimeFilteredPlan: the all-time rollup filtered on a path
// column is one scan of migration 0021's covering partial index: no
// table lookup per path.
func TestLineageAllTimeFilteredPlan(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "writ.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, f := range []store.LineageFilter{{AllTime: true, Identity: "spiffe://writ.local/a"}, {AllTime: true, Task: "t"},
		{AllTime: true, User: "u"}, {AllTime: true, Credential: "c"}, {AllTime: true, Target: "svc"}} {
		q, args := lineageQuery(f)
		rows, err := db.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if len(plan) == 0 || !strings.Contains(plan[0], "USING COVERING INDEX lineage_facts_all_time") {
			t.Errorf("plan of %s = %q, want a scan USING COVERING INDEX lineage_facts_all_time", q, plan)
		}
	}
}

// TestLineagePathsShared: two handles on one store file (a server and
// the CLI) name each other's paths (storetest).
func TestLineagePathsShared(t *testing.T) {
	storetest.RunLineageShared(t, func(t *testing.T) (store.Store, store.Store) {
		path := filepath.Join(t.TempDir(), "writ.db")
		var dbs [2]*DB
		for i := range dbs {
			db, err := Open(context.Background(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			dbs[i] = db
		}
		return dbs[0], dbs[1]
	})
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
