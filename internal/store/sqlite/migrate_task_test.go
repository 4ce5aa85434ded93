package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// TestTaskBindInstanceMigration: tasks stored before migration 0007 keep
// the rule they were opened under (bound to their instance, if any); new
// tasks are bound to their SPIFFE ID unless opened with bind_instance.
func TestTaskBindInstanceMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "writ.db")
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	old := &DB{db: raw, path: path, now: time.Now}
	if err := old.migrateTo(ctx, 6); err != nil {
		t.Fatal(err)
	}
	for _, row := range [][2]string{{"task_inst", "inst_1"}, {"task_none", ""}} {
		if _, err := raw.Exec(`INSERT INTO tasks (id, spiffe_id, instance, purpose, on_behalf_of, audiences, scopes, state, budget, calls,
			policy, rule, approval, reason, created_at, expires_at, closed_at) VALUES (?, 'spiffe://writ.local/a', ?, 'p', '', '[]', '[]', 'open', 0, 0, '', '', '', '', 1, 2, 0)`,
			row[0], row[1]); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for id, want := range map[string]bool{"task_inst": true, "task_none": false} {
		got, err := db.GetTask(ctx, id)
		if err != nil || got.BindInstance != want {
			t.Errorf("%s after migration: bind_instance %v, %v; want %v", id, got.BindInstance, err, want)
		}
	}
}
