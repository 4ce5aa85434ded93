package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/store/sqlite"
	"github.com/writ-dev/writ/internal/store/storetest"
)

func TestAuditConformance(t *testing.T) {
	storetest.RunAudit(t, func(t *testing.T) auditlog.Backend {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "writ.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db.Audit()
	})
}

// TestAuditQueryPlans checks that the queries SearchRecords and
// RecordByID issue are answered from the primary key and the search
// indexes, not by scanning the log.
func TestAuditQueryPlans(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "writ.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// A search opens (creates) the search index.
	if _, err := db.Audit().SearchRecords(ctx, auditlog.Query{Task: "x"}); err != nil {
		t.Fatal(err)
	}
	ix, err := sql.Open("sqlite", "file:"+sqlite.AuditIndexPath(path)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	for _, c := range []struct {
		db           *sql.DB
		table, query string
		want         string
	}{
		{ix, "audit_keys", `(idx >> 12) = 1 AND task = 'x' AND idx >= 0 AND idx < 100 ORDER BY idx DESC`, "INDEX audit_keys_task"},
		{ix, "audit_keys", `(idx >> 12) = 1 AND instance = 'x' AND idx >= 0 AND idx < 100 ORDER BY idx ASC`, "INDEX audit_keys_instance"},
		{ix, "audit_keys", `(idx >> 12) = 1 AND spiffe_id >= 'a' AND spiffe_id < 'b' AND idx >= 0 AND idx < 100 ORDER BY idx DESC`, "INDEX audit_keys_spiffe_id"},
		{ix, "audit_keys", `(idx >> 12) = 1 AND type = 'x' AND idx >= 0 AND idx < 100 ORDER BY idx DESC`, "INDEX audit_keys_type"},
		{db.SQL(), "audit_events", `(data ->> '$.decision') = 'deny' AND idx >= 0 AND idx < 100 ORDER BY idx DESC`, "USING INTEGER PRIMARY KEY"},
		{db.SQL(), "audit_events", `idx IN (1, 5, 9) ORDER BY idx DESC`, "USING INTEGER PRIMARY KEY"},
		{db.SQL(), "audit_events", `id = 'x'`, "INDEX audit_events_id"},
	} {
		var plan string
		rows, err := c.db.Query("EXPLAIN QUERY PLAN SELECT idx FROM " + c.table + " WHERE " + c.query + " LIMIT 10")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan += detail + "; "
		}
		rows.Close()
		if !strings.Contains(plan, c.want) || strings.Contains(plan, "TEMP B-TREE") && !strings.Contains(c.query, "spiffe_id") {
			t.Errorf("plan for %s:\n  %s\nwant %s and no sort", c.query, plan, c.want)
		}
	}
}

func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "writ.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Audit().PutCheckpoint(ctx, auditlog.StoredCheckpoint{Size: 1, Note: []byte("n")}); err != nil {
		t.Fatal(err)
	}
	// While the writer has it open, and after it closed (no -wal, -shm).
	for _, when := range []string{"open", "closed"} {
		if when == "closed" {
			db.Close()
		}
		ro, err := sqlite.OpenReadOnly(ctx, path)
		if err != nil {
			t.Fatalf("%s: OpenReadOnly: %v", when, err)
		}
		if c, err := ro.Audit().LatestCheckpoint(ctx); err != nil || c.Size != 1 {
			t.Errorf("%s: read through a read-only store = %+v, %v", when, c, err)
		}
		if err := ro.Audit().PutCheckpoint(ctx, auditlog.StoredCheckpoint{Size: 2, Note: []byte("x")}); err == nil {
			t.Errorf("%s: a read-only store accepted a write", when)
		}
		ro.Close()
	}
	if _, err := sqlite.OpenReadOnly(ctx, filepath.Join(t.TempDir(), "none.db")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("OpenReadOnly of a missing file: %v", err)
	}
}
