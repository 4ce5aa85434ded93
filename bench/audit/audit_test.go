// Package audit_test benchmarks writ's tamper-evident audit log
// (internal/auditlog on the SQLite store): sustained append throughput and
// latency with concurrent writers sharing group commits, offline
// verification of a log of a million events, and indexed searches on it.
// See bench/README.md, section "Audit log", for results.
package audit_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store/sqlite"
	"golang.org/x/mod/sumdb/tlog"
)

// event returns the i'th event of a plausible mix: 100 agent kinds, 1,000
// instances, 5,000 tasks, mostly allowed accesses.
func event(i int) audit.Event {
	e := audit.Event{
		Type:       audit.AccessAllowed,
		SpiffeID:   "spiffe://writ.local/agent/team" + strconv.Itoa(i%10) + "/kind" + strconv.Itoa(i%100),
		Instance:   "inst_" + strconv.Itoa(i%1000),
		Task:       "task_" + strconv.Itoa(i%5000),
		OnBehalfOf: "user" + strconv.Itoa(i%50) + "@example.com",
		Target:     "https://api" + strconv.Itoa(i%20) + ".example.com/v1/messages",
		Action:     "POST",
		Decision:   "allow",
		Policy:     "mail@7",
		Rule:       "send-internal",
		Credential: "cred_mail",
		Source:     "127.0.0.1:" + strconv.Itoa(40000+i%20000),
		Node:       "node-1",
		RequestID:  "req_" + strconv.Itoa(i),
		LatencyUS:  int64(300 + i%500),
	}
	switch i % 20 {
	case 0:
		e.Type, e.Decision, e.Reason = audit.AccessDenied, "deny", "no rule allows POST to this target"
	case 1:
		e.Type = audit.TokenMinted
	}
	return e
}

type logEnv struct {
	db *sqlite.DB
	l  *auditlog.Log
}

func openLog(tb testing.TB, path string, cfg auditlog.Config) *logEnv {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	kek := make([]byte, keys.KEKSize)
	rand.Read(kek)
	sealer, _ := keys.NewSealer(kek)
	cfg.Backend, cfg.Keys, cfg.Sealer = db.Audit(), db, sealer
	l, err := auditlog.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return &logEnv{db, l}
}

func (e *logEnv) close(tb testing.TB) {
	if err := e.l.Close(context.Background()); err != nil {
		tb.Error(err)
	}
	e.db.Close()
}

// appendAll appends events [from, to) with writers concurrent writers and
// returns every append's latency.
func appendAll(tb testing.TB, l *auditlog.Log, d audit.Durability, writers, from, to int) []time.Duration {
	var (
		next = int64(from - 1)
		mu   sync.Mutex
		all  = make([]time.Duration, 0, to-from)
		wg   sync.WaitGroup
	)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			for {
				i := atomic.AddInt64(&next, 1)
				if i >= int64(to) {
					break
				}
				start := time.Now()
				if _, err := l.AppendWith(context.Background(), event(int(i)), d); err != nil {
					tb.Error(err)
					break
				}
				lat = append(lat, time.Since(start))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// BenchmarkAppend measures sustained, durable append throughput: writers
// goroutines append concurrently, each Append returning once its event is
// committed (one fsync per group commit). Reports events/s and the p50 and
// p99 latency of one Append.
func BenchmarkAppend(b *testing.B) { benchAppend(b, audit.Synced, 1, 16, 256, 1024) }

// BenchmarkAppendWritten measures appends that return once their event
// is committed, before the group commit's fsync (audit.Written, the
// access proxy's decisions): the latency an enforcement path waits.
func BenchmarkAppendWritten(b *testing.B) { benchAppend(b, audit.Written, 1, 16) }

// benchAppend runs one sub-benchmark per number of concurrent writers,
// appending with durability d.
func benchAppend(b *testing.B, d audit.Durability, writerCounts ...int) {
	for _, writers := range writerCounts {
		b.Run("writers="+strconv.Itoa(writers), func(b *testing.B) {
			e := openLog(b, filepath.Join(b.TempDir(), "writ.db"), auditlog.Config{})
			defer e.close(b)
			b.ResetTimer()
			lat := appendAll(b, e.l, d, writers, 0, b.N)
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(percentile(lat, 0.50).Microseconds()), "p50-µs")
			b.ReportMetric(float64(percentile(lat, 0.99).Microseconds()), "p99-µs")
		})
	}
}

// millionLog returns a closed log of WRIT_AUDIT_BENCH_EVENTS events
// (default 1,000,000), built once per run in WRIT_AUDIT_BENCH_DIR (default
// a temporary directory) and reused if it is already there.
func millionLog(b *testing.B) (path string, n int) {
	n = 1_000_000
	if s := os.Getenv("WRIT_AUDIT_BENCH_EVENTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	dir := os.Getenv("WRIT_AUDIT_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	path = filepath.Join(dir, fmt.Sprintf("audit-%d.db", n))
	if _, err := os.Stat(path); err == nil {
		return path, n
	}
	start := time.Now()
	tmp := filepath.Join(dir, fmt.Sprintf("audit-%d-building.db", n))
	e := openLog(b, tmp, auditlog.Config{})
	appendAll(b, e.l, audit.Synced, 1024, 0, n)
	e.close(b)
	// Reopen to let the search index catch up with everything.
	db, err := sqlite.Open(context.Background(), tmp, sqlite.Options{})
	if err == nil {
		err = db.WaitAuditIndex(context.Background())
		db.Close()
	}
	if err != nil {
		b.Fatal(err)
	}
	for _, sfx := range []string{"", "-wal", "-shm"} {
		os.Rename(sqlite.AuditIndexPath(tmp)+sfx, sqlite.AuditIndexPath(path)+sfx)
		os.Rename(tmp+sfx, path+sfx)
	}
	b.Logf("built a log of %d events in %v", n, time.Since(start).Round(time.Millisecond))
	return path, n
}

// BenchmarkVerify measures `writ audit verify` on a log of a million
// events: read every event, recompute every stored hash, check the
// checkpoints and every event's search keys. One op is one full
// verification.
func BenchmarkVerify(b *testing.B) {
	path, n := millionLog(b)
	db, err := sqlite.OpenReadOnly(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	trusted, _, err := auditlog.StoredVerifiers(context.Background(), db)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		rep, err := auditlog.Verify(context.Background(), db.Audit(), auditlog.VerifyOptions{Trusted: trusted})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Size < int64(n) {
			b.Fatalf("verified %d events, want at least %d", rep.Size, n)
		}
		if rep.Indexed != rep.Size {
			b.Fatalf("checked the search keys of %d of %d events, want all", rep.Indexed, rep.Size)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/verify")
}

// BenchmarkSearch measures indexed searches (newest 100 matches) on the
// million-event log.
func BenchmarkSearch(b *testing.B) {
	path, _ := millionLog(b)
	db, err := sqlite.OpenReadOnly(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	a := db.Audit()
	n, _ := a.RecordCount(context.Background())
	last, _ := a.ReadRecords(context.Background(), n-1, 1)
	lastEvent, _ := last[0].Event()
	for _, c := range []struct {
		name string
		q    auditlog.Query
	}{
		{"instance", auditlog.Query{Instance: "inst_7"}},
		{"task", auditlog.Query{Task: "task_4321"}},
		{"spiffe-id-prefix", auditlog.Query{SpiffeID: "spiffe://writ.local/agent/team3"}},
		{"type-denied", auditlog.Query{Type: audit.AccessDenied}},
		{"decision-deny", auditlog.Query{Decision: "deny"}},
		{"task-and-denied", auditlog.Query{Task: "task_20", Type: audit.AccessDenied}},
		{"last-minute", auditlog.Query{Since: lastEvent.Time.Add(-time.Minute)}},
		{"rare-task-whole-log", auditlog.Query{Task: "task_none"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			c.q.Limit = 100
			for range b.N {
				if _, err := a.SearchRecords(context.Background(), c.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStoreAppend measures the store's share of a group commit
// alone: batches of 1,024 prepared records (canonical bytes and tree
// hashes computed outside the timer) written with AppendRecords. One op
// is one event.
func BenchmarkStoreAppend(b *testing.B) {
	db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "writ.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	a := db.Audit()
	var stored []tlog.Hash
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	const batch = 1024
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.ResetTimer()
	for from := 0; from < b.N; from += batch {
		b.StopTimer()
		recs := make([]auditlog.Record, min(batch, b.N-from))
		for i := range recs {
			n := from + i
			e := event(n)
			e.ID, e.Time = fmt.Sprintf("evt_%026d", n), t0.Add(time.Duration(n)*time.Millisecond)
			data, err := e.MarshalCanonical()
			if err != nil {
				b.Fatal(err)
			}
			h, err := tlog.StoredHashes(int64(n), data, hr)
			if err != nil {
				b.Fatal(err)
			}
			stored = append(stored, h...)
			recs[i] = auditlog.Record{Index: int64(n), Data: data, Hashes: h}
		}
		b.StartTimer()
		if err := a.AppendRecords(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
