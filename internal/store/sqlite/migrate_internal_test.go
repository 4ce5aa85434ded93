package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
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
	if err := db.WaitAuditIndex(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := db.Audit().ReadRecords(ctx, 0, 10)
	if err != nil || len(recs) != 2 {
		t.Fatalf("ReadRecords after migration = %d records, %v; want 2", len(recs), err)
	}
	for i, r := range recs {
		if r.Keys == nil || *r.Keys != *auditlog.KeysOf(&events[i]) {
			t.Errorf("record %d keys after migration = %+v, want %+v", i, r.Keys, auditlog.KeysOf(&events[i]))
		}
	}
	got, err := db.Audit().SearchRecords(ctx, auditlog.Query{Task: "task_1", Decision: "allow", Since: time.Unix(999, 0)})
	if err != nil || len(got) != 1 || got[0].Index != 0 {
		t.Errorf("search by task, decision and time after migration = %v, %v; want event 0", got, err)
	}
	if r, err := db.Audit().RecordByID(ctx, "evt_b"); err != nil || r.Index != 1 {
		t.Errorf("RecordByID(evt_b) after migration = %v, %v", r.Index, err)
	}
}

// TestAuditIndexOfAnotherLog: a search index file copied beside another
// store is detected at open and rebuilt from that store's events.
func TestAuditIndexOfAnotherLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	mk := func(name, task string) string {
		path := filepath.Join(dir, name)
		db, err := Open(ctx, path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var recs []auditlog.Record
		for i := range 5 {
			e := audit.Event{ID: fmt.Sprintf("evt_%s_%d", name, i), Time: time.Unix(int64(1000+i), 0).UTC(), Type: audit.AccessAllowed, Task: task}
			data, err := e.MarshalCanonical()
			if err != nil {
				t.Fatal(err)
			}
			leaf := tlog.RecordHash(data)
			recs = append(recs, auditlog.Record{Index: int64(i), Data: data, Hashes: []tlog.Hash{leaf}, Keys: auditlog.KeysOf(&e)})
		}
		if err := db.Audit().WriteRecords(ctx, recs); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil { // indexes what is queued
			t.Fatal(err)
		}
		return path
	}
	a, b := mk("a.db", "task_a"), mk("b.db", "task_b")
	for _, sfx := range []string{"", "-wal", "-shm"} {
		os.Remove(AuditIndexPath(b) + sfx)
		if data, err := os.ReadFile(AuditIndexPath(a) + sfx); err == nil {
			os.WriteFile(AuditIndexPath(b)+sfx, data, 0o600)
		}
	}
	// Read-only (offline verify): the foreign index counts as missing.
	ro, err := OpenReadOnly(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := ro.Audit().ReadRecords(ctx, 0, 10)
	ro.Close()
	if err != nil || len(recs) != 5 || recs[0].Keys != nil {
		t.Fatalf("read-only with another log's index: %d records, keys %+v, %v; want 5 with no index keys", len(recs), recs[0].Keys, err)
	}
	// Writable: rebuilt from b's own events.
	db, err := Open(ctx, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.WaitAuditIndex(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err = db.Audit().ReadRecords(ctx, 0, 10)
	if err != nil || len(recs) != 5 {
		t.Fatalf("ReadRecords: %d, %v", len(recs), err)
	}
	for _, r := range recs {
		if r.Keys == nil || r.Keys.Task != "task_b" {
			t.Fatalf("after open, record %d keys = %+v, want b's own (task_b)", r.Index, r.Keys)
		}
	}
}

// TestAuditIndexDamaged: a search index file that is not a database (as a
// power loss can leave it, since it is written without syncs) is replaced
// by one rebuilt from the events when the store opens.
func TestAuditIndexDamaged(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "writ.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := audit.Event{ID: "evt_1", Time: time.Unix(1000, 0).UTC(), Type: audit.AccessDenied, Task: "task_x"}
	data, _ := e.MarshalCanonical()
	if err := db.Audit().AppendRecords(ctx, []auditlog.Record{{Index: 0, Data: data, Hashes: []tlog.Hash{tlog.RecordHash(data)}, Keys: auditlog.KeysOf(&e)}}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, sfx := range []string{"-wal", "-shm"} {
		os.Remove(AuditIndexPath(path) + sfx)
	}
	if err := os.WriteFile(AuditIndexPath(path), []byte("this is not an SQLite database, it was cut short by a power loss"), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("Open with a damaged search index: %v", err)
	}
	defer db.Close()
	if err := db.WaitAuditIndex(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := db.Audit().SearchRecords(ctx, auditlog.Query{Task: "task_x"})
	if err != nil || len(got) != 1 || db.AuditIndexed() != 1 {
		t.Fatalf("search after the rebuild = %v, %v (indexed %d)", got, err, db.AuditIndexed())
	}
}
