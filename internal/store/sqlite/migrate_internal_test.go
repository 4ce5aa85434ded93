package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"golang.org/x/mod/sumdb/tlog"
)

// TestAuditColumnsMigration opens a store whose audit events were written
// under migration 0002 (searchable columns generated from the JSON) and
// checks that after 0005 the ids are in their column and the search
// index is built from the events.
func TestAuditColumnsMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "writ.db")
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	old := &DB{db: raw, path: path, now: time.Now}
	if err := old.migrateTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	events := []audit.Event{
		{ID: "evt_a", Time: time.Unix(1000, 0).UTC(), Type: audit.AccessAllowed, SpiffeID: "spiffe://writ.local/agent/a", Instance: "inst_1", Task: "task_1", Decision: "allow"},
		{ID: "evt_b", Time: time.Unix(1001, 0).UTC(), Type: audit.EntryCreated, Actor: "admin"},
	}
	for i, e := range events {
		data, err := e.MarshalCanonical()
		if err != nil {
			t.Fatal(err)
		}
		leaf := tlog.RecordHash(data)
		if _, err := raw.Exec(`INSERT INTO audit_events (idx, data, hashes) VALUES (?, ?, ?)`, i, string(data), leaf[:]); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()

	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.waitAuditIndex(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := db.Audit().ReadRecords(ctx, 0, 10)
	if err != nil || len(recs) != 2 {
		t.Fatalf("ReadRecords after migration = %d records, %v; want 2", len(recs), err)
	}
	for i, r := range recs {
		if r.Keys == nil || *r.Keys != *audit.KeysOf(&events[i]) {
			t.Errorf("record %d keys after migration = %+v, want %+v", i, r.Keys, audit.KeysOf(&events[i]))
		}
	}
	got, err := db.Audit().SearchRecords(ctx, audit.Query{Task: "task_1", Decision: "allow", Since: time.Unix(999, 0)})
	if err != nil || len(got) != 1 || got[0].Index != 0 {
		t.Errorf("search by task, decision and time after migration = %v, %v; want event 0", got, err)
	}
	if r, err := db.Audit().RecordByID(ctx, "evt_b"); err != nil || r.Index != 1 {
		t.Errorf("RecordByID(evt_b) after migration = %v, %v", r.Index, err)
	}
}

// waitAuditIndex waits until the search index has caught up with the log.
func (d *DB) waitAuditIndex(ctx context.Context) error {
	ix, err := d.auditIndex(ctx)
	if err != nil {
		return err
	}
	for {
		size, err := d.Audit().RecordCount(ctx)
		if err != nil {
			return err
		}
		if ix.upTo() >= size {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}
