// Package learn_test benchmarks `writ policy learn` and `writ policy
// replay` (internal/learn) over a large audit log: one op reads every
// event of the log. CPU seconds come from getrusage (the machine is
// shared, so wall time says little) and the peak resident set shows that
// memory does not grow with the log. See bench/README.md, "Policy
// learning".
package learn_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/writ-dev/writ/bench/benchlog"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/learn"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

var t0 = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

// event is the i'th event: 100 identities over 20 services, paths with
// numeric ids, uuids and dates, 5% denied, 5% token events, ten events a
// second.
func event(i int) audit.Event {
	id := i % 100
	svc := "api" + strconv.Itoa(id%20)
	var path string
	switch i % 4 {
	case 0:
		path = "/v1/items/" + strconv.Itoa(i%100000)
	case 1:
		path = fmt.Sprintf("/v1/blobs/%08x-0000-4000-8000-%012x", i, i)
	case 2:
		path = "/v1/days/" + t0.AddDate(0, 0, i%365).Format(time.DateOnly)
	default:
		path = "/v1/list"
	}
	method := []string{"GET", "GET", "POST", "GET"}[i%4]
	e := audit.Event{
		Time: t0.Add(time.Duration(i) * 100 * time.Millisecond), Type: audit.AccessAllowed, Decision: "allow",
		SpiffeID: "spiffe://writ.local/agent/kind" + strconv.Itoa(id), Instance: "inst_" + strconv.Itoa(i%1000),
		Action: method + " " + path, Policy: "p@1", Rule: "r", Source: "127.0.0.1:4000", Node: "n1",
		Details: map[string]string{"method": method, "path": path, "service": svc, "status": "200", "via": "process"},
	}
	switch i % 20 {
	case 0:
		e.Type, e.Decision, e.Details["method"] = audit.AccessDenied, "deny", "DELETE"
	case 1:
		e.Type, e.Details = audit.TokenMinted, nil
	}
	return e
}

// bigLog returns a store holding WRIT_LEARN_BENCH_EVENTS events (default
// 1,000,000), built once in WRIT_LEARN_BENCH_DIR (default a temporary
// directory) and reused when it is there.
func bigLog(b *testing.B) (string, int) {
	n := 1_000_000
	if s := os.Getenv("WRIT_LEARN_BENCH_EVENTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	dir := os.Getenv("WRIT_LEARN_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	return benchlog.Build(b, dir, "learn", n, event), n
}

var (
	cpu    = benchlog.CPU
	maxRSS = benchlog.MaxRSS
)

// BenchmarkLearn is `writ policy learn` over the whole log.
func BenchmarkLearn(b *testing.B) {
	path, n := bigLog(b)
	db, err := sqlite.OpenReadOnly(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	c0 := cpu()
	b.ResetTimer()
	var files []learn.File
	for range b.N {
		l, err := learn.Learn(context.Background(), db.Audit(), learn.Filter{}, learn.Options{Generalizer: learn.DefaultGeneralizer()})
		if err != nil {
			b.Fatal(err)
		}
		if l.Events() < int64(n)*9/10 {
			b.Fatalf("learned from %d of %d events", l.Events(), n)
		}
		files = l.Files()
	}
	b.ReportMetric((cpu()-c0).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds()*float64(b.N), "events/s")
	b.ReportMetric(maxRSS(), "MB-maxrss")
	if len(files) != 90 { // 10 identities only ever make denied calls or mint tokens
		b.Fatalf("%d policies, want 90", len(files))
	}
}

// BenchmarkReplay is `writ policy replay` of the learned policies over
// the whole log (nothing may be newly denied).
func BenchmarkReplay(b *testing.B) {
	path, n := bigLog(b)
	db, err := sqlite.OpenReadOnly(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	l, err := learn.Learn(ctx, db.Audit(), learn.Filter{}, learn.Options{Generalizer: learn.DefaultGeneralizer(), NoRate: true})
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	for _, f := range l.Files() {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Content, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	snap, err := learn.CompileFiles(dir)
	if err != nil {
		b.Fatal(err)
	}
	c0 := cpu()
	b.ResetTimer()
	for range b.N {
		rep, err := learn.Replay(ctx, db.Audit(), learn.Filter{}, snap, 3)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Count(learn.NewlyDenied) != 0 || rep.Accesses < int64(n)*9/10 {
			b.Fatalf("replay: %d accesses, %d newly denied", rep.Accesses, rep.Count(learn.NewlyDenied))
		}
	}
	b.ReportMetric((cpu()-c0).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds()*float64(b.N), "events/s")
	b.ReportMetric(maxRSS(), "MB-maxrss")
}
