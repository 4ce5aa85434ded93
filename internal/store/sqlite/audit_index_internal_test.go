package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
	"golang.org/x/mod/sumdb/tlog"
)

// TestAuditIndexDroppedQueue: events whose keys were dropped from the
// indexer's queue (it was full) are read back from the store and
// indexed; once caught up, an empty queue reads nothing from the store.
func TestAuditIndexDroppedQueue(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "writ.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var next int64
	write := func(n int) {
		t.Helper()
		recs := make([]auditlog.Record, n)
		for i := range recs {
			e := audit.Event{ID: fmt.Sprintf("evt_%06d", next), Time: time.Unix(1000+next, 0).UTC(), Type: audit.AccessAllowed,
				SpiffeID: "spiffe://writ.local/a", Task: fmt.Sprintf("task_%d", next)}
			data, err := e.MarshalCanonical()
			if err != nil {
				t.Fatal(err)
			}
			recs[i] = auditlog.Record{Index: next, Data: data, Hashes: []tlog.Hash{tlog.RecordHash(data)}, Keys: auditlog.KeysOf(&e)}
			next++
		}
		if err := db.Audit().WriteRecords(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	ix, err := db.auditIndex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write(10)
	if err := db.WaitAuditIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if ix.unqueued.Load() {
		t.Error("the indexer reads the events after catching up")
	}
	ix.mu.Lock()
	ix.maxPending = 20
	ix.mu.Unlock()
	write(25) // queued (the queue keeps the newest rows)
	write(5)  // past the bound: the 25 are dropped, these queued after a gap
	if err := db.WaitAuditIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if got := db.AuditIndexed(); got != next {
		t.Fatalf("indexed %d events, want %d", got, next)
	}
	keys, err := ix.keys(ctx, 0, next)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if want := fmt.Sprintf("task_%d", i); k.Task != want {
			t.Errorf("index row %d: task %q, want %q", i, k.Task, want)
		}
	}
	if ix.unqueued.Load() {
		t.Error("the indexer still reads the events after catching up")
	}
}
