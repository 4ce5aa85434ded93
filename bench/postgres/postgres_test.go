// Package postgres_test benchmarks the PostgreSQL store (internal/store/postgres)
// side by side with the SQLite store in the same run: durable audit appends
// with concurrent writers sharing group commits, and the store operations
// on the servers' hot paths (loading the entries the registry matches
// against, loading the revocation set, reading a task). See
// bench/README.md, section "PostgreSQL store (#17)".
//
// PostgreSQL is the test server of internal/store/postgres/pgtest (a fresh
// database per run, synchronous_commit on, as a server runs it).
package postgres_test

import (
	"context"
	"crypto/rand"
	"fmt"
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
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/postgres"
	"github.com/writ-dev/writ/internal/store/postgres/pgtest"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// backend is one store under test.
type backend struct {
	s     store.Store
	audit auditlog.Backend
}

var stores = []struct {
	name string
	open func(tb testing.TB) backend
}{
	{"sqlite", func(tb testing.TB) backend {
		db, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "writ.db"), sqlite.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		return backend{db, db.Audit()}
	}},
	{"postgres", func(tb testing.TB) backend {
		db, err := postgres.Open(context.Background(), pgtest.DSN(tb), postgres.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		return backend{db, db.Audit()}
	}},
}

// event is the i'th event of the mix bench/audit uses.
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
	if i%20 == 0 {
		e.Type, e.Decision, e.Reason = audit.AccessDenied, "deny", "no rule allows POST to this target"
	}
	return e
}

// BenchmarkAuditAppend measures sustained, durable audit appends (each
// Append returns once its event is committed and on disk) with 256 and
// 1,024 concurrent writers, on SQLite and on PostgreSQL in turn. Reports
// events/s and the p50 and p99 latency of one Append.
func BenchmarkAuditAppend(b *testing.B) {
	for _, writers := range []int{256, 1024} {
		for _, st := range stores {
			b.Run(fmt.Sprintf("store=%s/writers=%d", st.name, writers), func(b *testing.B) {
				be := st.open(b)
				kek := make([]byte, keys.KEKSize)
				rand.Read(kek)
				sealer, _ := keys.NewSealer(kek)
				l, err := auditlog.Open(context.Background(), auditlog.Config{Backend: be.audit, Keys: be.s, Sealer: sealer})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close(context.Background())
				b.ResetTimer()
				lat := appendAll(b, l, writers, b.N)
				b.StopTimer()
				slices.Sort(lat)
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds()), "p99-µs")
			})
		}
	}
}

func appendAll(tb testing.TB, l *auditlog.Log, writers, n int) []time.Duration {
	var (
		next = int64(-1)
		mu   sync.Mutex
		all  = make([]time.Duration, 0, n)
		wg   sync.WaitGroup
	)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			for {
				i := atomic.AddInt64(&next, 1)
				if i >= int64(n) {
					break
				}
				start := time.Now()
				if _, err := l.AppendWith(context.Background(), event(int(i)), audit.Synced); err != nil {
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

// The hot-path load: 1,000 entries, 1,000 revocations, 10,000 tasks.
const (
	hotEntries     = 1000
	hotRevocations = 1000
	hotTasks       = 10000
)

func fill(b *testing.B, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range hotEntries {
		if _, err := s.CreateEntry(ctx, store.Entry{Name: fmt.Sprintf("e%04d", i), SpiffeID: fmt.Sprintf("spiffe://writ.local/agent/a%d", i),
			Selectors: []store.Selector{{Type: "unix", Value: "uid:" + strconv.Itoa(1000+i)}, {Type: "unix", Value: "path:/usr/bin/python3"}},
			Labels:    map[string]string{"team": "t" + strconv.Itoa(i%10)}}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range hotRevocations {
		if _, _, err := s.PutRevocation(ctx, store.Revocation{Kind: store.RevokeToken, Value: fmt.Sprintf("jti_%06d", i), Reason: "bench",
			CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range hotTasks {
		if _, err := s.CreateTask(ctx, store.Task{ID: fmt.Sprintf("task_%06d", i), SpiffeID: "spiffe://writ.local/agent/a1", Purpose: "bench",
			Audiences: []string{"mail"}, Scopes: []string{"mail.read"}, State: store.TaskOpen, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHotPaths measures the store operations on the servers' hot
// paths, 8 goroutines at a time: loading every entry (what the registry
// matches workloads against, on start and on every change), loading the
// revocation set (what the kill switch checks requests against), and
// reading one task (token exchange and every access in a task). Reports
// operations/s.
func BenchmarkHotPaths(b *testing.B) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, st := range stores {
		be := st.open(b)
		fill(b, be.s)
		ops := []struct {
			name string
			fn   func(ctx context.Context, i int) error
		}{
			{"entries", func(ctx context.Context, _ int) error {
				l, err := be.s.ListEntries(ctx)
				if err == nil && len(l) != hotEntries {
					err = fmt.Errorf("%d entries", len(l))
				}
				return err
			}},
			{"revocations", func(ctx context.Context, _ int) error {
				l, err := be.s.ListRevocations(ctx, t0)
				if err == nil && len(l) != hotRevocations {
					err = fmt.Errorf("%d revocations", len(l))
				}
				return err
			}},
			{"task-get", func(ctx context.Context, i int) error {
				_, err := be.s.GetTask(ctx, fmt.Sprintf("task_%06d", i%hotTasks))
				return err
			}},
		}
		for _, op := range ops {
			b.Run(fmt.Sprintf("store=%s/op=%s", st.name, op.name), func(b *testing.B) {
				var n atomic.Int64
				b.SetParallelism(4) // 4 × GOMAXPROCS (2) goroutines
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					for pb.Next() {
						if err := op.fn(ctx, int(n.Add(1))); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			})
		}
	}
}
