package postgres_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store/postgres"
	"github.com/writ-dev/writ/internal/store/postgres/pgtest"
)

// TestAuditTwoWriters is two servers' audit logs on one database: each
// opens its own store and log, both append concurrently, and the result is
// one log whose every event is in the tree once, with checkpoints from
// both that agree, and that verifies offline.
func TestAuditTwoWriters(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	kek := make([]byte, 32)
	rand.Read(kek)
	sealer, err := keys.NewSealer(kek)
	if err != nil {
		t.Fatal(err)
	}
	// The first server creates the log key; the second finds it.
	open := func() (*postgres.DB, *auditlog.Log) {
		db, err := postgres.Open(ctx, dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		l, err := auditlog.Open(ctx, auditlog.Config{Backend: db.Audit(), Keys: db, Sealer: sealer,
			CheckpointEvery: 250, CheckpointInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return db, l
	}
	dbA, logA := open()
	_, logB := open()
	const perWriter, emitters = 600, 6
	var wg sync.WaitGroup
	errs := make(chan error, 2*emitters)
	for w, l := range []*auditlog.Log{logA, logB} {
		for g := range emitters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWriter / emitters {
					e := audit.Event{ID: fmt.Sprintf("evt_%d_%d_%d", w, g, i), Type: audit.AccessAllowed,
						SpiffeID: fmt.Sprintf("spiffe://writ.local/server/%d", w), Decision: "allow"}
					if err := l.Emit(ctx, e); err != nil {
						errs <- fmt.Errorf("writer %d: %w", w, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, l := range []*auditlog.Log{logA, logB} {
		if err := l.Close(ctx); err != nil {
			t.Fatalf("close: %v", err)
		}
	}
	b := dbA.Audit()
	size, err := b.RecordCount(ctx)
	// Beyond the emitted events, the logs record their own (the key's
	// creation, each open).
	if err != nil || size < 2*perWriter {
		t.Fatalf("RecordCount = %d, %v; want at least %d", size, err, 2*perWriter)
	}
	trusted, _, err := auditlog.StoredVerifiers(ctx, dbA)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := auditlog.Verify(ctx, b, auditlog.VerifyOptions{Trusted: trusted})
	if err != nil {
		t.Fatalf("Verify after two writers: %v", err)
	}
	if rep.Size != size || rep.Checkpoints < 2 || rep.Indexed != rep.Size {
		t.Errorf("Verify report: size %d, %d checkpoints, %d indexed; want %d events, checkpoints from both, all indexed", rep.Size, rep.Checkpoints, rep.Indexed, size)
	}
	// The writers took turns: the log moved under each of them, so
	// each rebuilt its batches on the other's appends.
	recs, err := b.ReadRecords(ctx, 0, int(size))
	if err != nil {
		t.Fatal(err)
	}
	turns, last := 0, ""
	for _, r := range recs {
		if r.Keys.SpiffeID != "" && r.Keys.SpiffeID != last {
			turns, last = turns+1, r.Keys.SpiffeID
		}
	}
	if turns < 3 {
		t.Errorf("the writers' events came in %d runs; want them interleaved (the test did not exercise concurrent appends)", turns)
	}
	// Each writer's events are all there, once.
	for w := range 2 {
		got, err := b.SearchRecords(ctx, auditlog.Query{SpiffeID: fmt.Sprintf("spiffe://writ.local/server/%d", w), Limit: 10 * perWriter})
		if err != nil || len(got) != perWriter {
			t.Errorf("writer %d's events: %d found, %v; want %d", w, len(got), err, perWriter)
		}
	}
}
