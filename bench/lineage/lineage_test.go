// Package lineage_test benchmarks the lineage graph (internal/graph) and
// the alert engine (internal/alert) over a large audit log: how fast the
// graph's aggregates are built from the log (events/s), how long a
// lineage query takes once they are (p50 and p99 per query kind, the
// target is 200 ms over a 1M-event log), and what evaluating the alert
// rules costs per event. CPU seconds come from getrusage: the machine is
// shared, so wall time says little. See bench/README.md, "Lineage and
// alerts".
package lineage_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/bench/benchlog"
	"github.com/writ-dev/writ/internal/alert"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/graph"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

var t0 = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

// Workload: 100 identities, each restarted once a day (a new instance),
// over 20 services (each with its brokered credential) and 5 MCP servers
// of 4 tools; one event every 600 ms, so 1M events span 6.9 days. Per ten
// accesses of an identity: six to its main service through an attested
// process, one to a second service with a bearer token (no instance), one
// MCP tool call, one denied, one held and approved on behalf of a user.
// A third of the identities work in hourly tasks. Among them, every 50th
// event is a token mint, every 500th a discovery finding, every 1,000th
// an approval request (events the graph skips and the alerts read).
const (
	identities = 100
	services   = 20
	step       = 600 * time.Millisecond
)

func event(i int) audit.Event {
	t := t0.Add(time.Duration(i) * step)
	id := i % identities
	day := int(t.Sub(t0) / (24 * time.Hour))
	hour := int(t.Sub(t0) / time.Hour)
	spiffe := "spiffe://writ.local/agent/kind" + strconv.Itoa(id)
	switch {
	case i%1000 == 999:
		return audit.Event{Time: t, Type: audit.ApprovalRequested, SpiffeID: spiffe, Action: "POST /send", Target: "Service/svc1",
			Details: map[string]string{"approval": "apr_" + strconv.Itoa(i)}}
	case i%500 == 499:
		return audit.Event{Time: t, Type: audit.DiscoveryAgentFound, Node: "h" + strconv.Itoa(id%10), Target: "agent/claude",
			Details: map[string]string{"key": "process/h/" + strconv.Itoa(i), "identified": "false", "pid": strconv.Itoa(i)}}
	case i%50 == 49:
		return audit.Event{Time: t, Type: audit.TokenMinted, SpiffeID: spiffe, Policy: "p" + strconv.Itoa(id) + "@1", Rule: "token"}
	}
	svcA, svcB := "svc"+strconv.Itoa(id%services), "svc"+strconv.Itoa((id+7)%services)
	e := audit.Event{Time: t, Type: audit.AccessAllowed, Decision: "allow", SpiffeID: spiffe,
		Instance: fmt.Sprintf("inst_%d_%d", id, day), Policy: "p" + strconv.Itoa(id) + "@1", Rule: "main",
		Action: "GET /v1/items/" + strconv.Itoa(i%1000), Target: "Service/" + svcA, Credential: "cred-" + svcA, Source: "127.0.0.1:4000",
		Details: map[string]string{"service": svcA, "via": "process", "method": "GET", "status": "200"}}
	if id%3 == 0 {
		e.Task = fmt.Sprintf("task_%d_%d", id, hour)
	}
	switch (i / identities) % 10 {
	case 6:
		e.Instance, e.Target, e.Credential, e.Rule = "", "Service/"+svcB, "", "second"
		e.Details["service"], e.Details["via"] = svcB, "token"
	case 7:
		mcp := "mcp" + strconv.Itoa(id%5)
		e.Target, e.Credential, e.Rule, e.Action = "MCPServer/"+mcp, "", "tools", "tools/call"
		e.Details = map[string]string{"tool": "tool" + strconv.Itoa(i%4), "via": "process"}
	case 8:
		e.Type, e.Decision, e.Rule, e.Target, e.Credential = audit.AccessDenied, "deny", "", "Service/"+svcB, ""
		e.Details["service"], e.Reason = svcB, "no rule allows it"
	case 9:
		e.OnBehalfOf, e.Rule = "user:u"+strconv.Itoa(id%10), "sensitive"
		e.Details["approval"] = "apr_" + strconv.Itoa(i)
	}
	return e
}

// bigLog returns the path of a store holding WRIT_LINEAGE_BENCH_EVENTS
// events (default 1,000,000), built once in WRIT_LINEAGE_BENCH_DIR
// (default a temporary directory) and reused when it is there.
func bigLog(b *testing.B) (string, int) {
	n := 1_000_000
	if s := os.Getenv("WRIT_LINEAGE_BENCH_EVENTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	return benchlog.Build(b, benchDir(b), "lineage", n, event), n
}

// dir holds the log and the built aggregates for every benchmark of a
// run: WRIT_LINEAGE_BENCH_DIR (kept, so later runs reuse them), or a
// temporary directory removed at the end.
var dir = os.Getenv("WRIT_LINEAGE_BENCH_DIR")

func TestMain(m *testing.M) {
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "writ-lineage-bench-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func benchDir(*testing.B) string { return dir }

func openLog(b *testing.B) (*sqlite.DB, int) {
	path, n := bigLog(b)
	db, err := sqlite.OpenReadOnly(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db, n
}

func openStore(b *testing.B, path string) *sqlite.DB {
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

var cpu = benchlog.CPU

// accesses is how many of the first n events are accesses.
func accesses(n int) int64 {
	var a int64
	for i := range n {
		if i%1000 != 999 && i%500 != 499 && i%50 != 49 {
			a++
		}
	}
	return a
}

// BenchmarkLineageBuild folds the whole log into empty aggregates (a
// fresh store each op): the graph's update throughput. The folding is
// the same, a batch at a time, whether it catches up a log or follows
// new events.
func BenchmarkLineageBuild(b *testing.B) {
	logDB, n := openLog(b)
	ctx := context.Background()
	var facts int
	c0 := cpu()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		fdb := openStore(b, filepath.Join(b.TempDir(), fmt.Sprintf("facts-%d.db", i)))
		b.StartTimer()
		bl := &graph.Builder{Log: logDB.Audit(), Facts: fdb}
		next, err := bl.Sync(ctx)
		if err != nil || next < int64(n) {
			b.Fatalf("built to %d of %d: %v", next, n, err)
		}
		b.StopTimer()
		all, err := fdb.ListLineage(ctx, store.LineageFilter{})
		if err != nil {
			b.Fatal(err)
		}
		var sum int64
		for _, f := range all {
			sum += f.Allowed + f.Denied
		}
		if want := accesses(n); sum != want {
			b.Fatalf("aggregates count %d accesses, want %d", sum, want)
		}
		facts = len(all)
		b.StartTimer()
	}
	b.ReportMetric((cpu()-c0).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(facts), "paths")
}

// built returns a lineage over the whole log, its aggregates built once
// (and kept beside the log).
func built(b *testing.B) (*graph.Lineage, int) {
	logDB, n := openLog(b)
	fdb := openStore(b, filepath.Join(benchDir(b), fmt.Sprintf("lineage-%d-facts.db", n)))
	ctx := context.Background()
	// 1,000 discovered processes and credentials, joined into answers.
	var items []store.InventoryItem
	for i := range 500 {
		host := "h" + strconv.Itoa(i%10)
		items = append(items,
			store.InventoryItem{Kind: store.InventoryAgent, Key: "process/" + host + "/" + strconv.Itoa(i) + "/1", Host: host, Name: "claude",
				Identity: "spiffe://writ.local/agent/kind" + strconv.Itoa(i%identities),
				Data:     []byte(`{"pid":` + strconv.Itoa(i) + `,"credentials":["cred_` + strconv.Itoa(i) + `"],"connections":[{"remote":"10.0.0.1:443","route":"direct","service":"svc` + strconv.Itoa(i%services) + `"}]}`)},
			store.InventoryItem{Kind: store.InventoryCredential, Key: host + "/cred_" + strconv.Itoa(i), Host: host, Name: "OPENAI_API_KEY", Shadow: true,
				Data: []byte(`{"id":"cred_` + strconv.Itoa(i) + `","kind":"openai","source":"env","fingerprint":"00"}`)})
	}
	if err := fdb.RecordInventory(ctx, t0, items); err != nil {
		b.Fatal(err)
	}
	l := &graph.Lineage{Builder: &graph.Builder{Log: logDB.Audit(), Facts: fdb}, Inventory: fdb,
		CrownJewels: func(context.Context) ([]string, error) { return []string{"svc3", "mcp1"}, nil }}
	c0, w0 := cpu(), time.Now()
	if next, err := l.Builder.Sync(ctx); err != nil || next < int64(n) {
		b.Fatalf("built to %d of %d: %v", next, n, err)
	}
	if d := time.Since(w0); d > time.Second {
		b.Logf("built the aggregates of %d events in %v (%v CPU)", n, d.Round(time.Millisecond), (cpu() - c0).Round(time.Millisecond))
	}
	return l, n
}

// BenchmarkLineageQuery answers the queries `writ lineage` asks, each
// op one query (including the incremental fold of new events, none
// here), and reports the p50 and p99 of their wall times.
func BenchmarkLineageQuery(b *testing.B) {
	l, n := built(b)
	end := t0.Add(time.Duration(n) * step)
	for _, c := range []struct {
		name string
		q    graph.Query
	}{
		{"all-last-24h", graph.Query{Since: end.Add(-24 * time.Hour)}},
		{"all", graph.Query{}},                      // every hour: the all-time rollup
		{"all-since-start", graph.Query{Since: t0}}, // the same answer: from before the first fact, the all-time rollup
		// Four whole days from the daily rollup and twelve hours at
		// each end from the hourly facts.
		{"all-window-5d", graph.Query{Since: t0.Add(36 * time.Hour), Until: t0.Add(5*24*time.Hour + 12*time.Hour)}},
		// The same window and the whole log from its start summed over
		// every hour (graph.Lineage.HourlyOnly): the answers without the
		// daily and all-time rollups.
		{"hourly-window-5d", graph.Query{Since: t0.Add(36 * time.Hour), Until: t0.Add(5*24*time.Hour + 12*time.Hour)}},
		{"hourly-since-start", graph.Query{Since: t0}},
		{"identity", graph.Query{Identity: "spiffe://writ.local/agent/kind7"}},
		{"task", graph.Query{Task: fmt.Sprintf("task_3_%d", int(end.Sub(t0)/time.Hour)/2)}},
		{"user", graph.Query{User: "user:u3"}},
		{"credential", graph.Query{Credential: "cred-svc3"}},
		{"to-service-24h", graph.Query{Since: end.Add(-24 * time.Hour), To: "service:svc3"}},
		{"crown-jewels", graph.Query{CrownJewels: true}},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			l := l
			if strings.HasPrefix(c.name, "hourly-") {
				hourly := *l
				hourly.HourlyOnly = true
				l = &hourly
			}
			times := make([]time.Duration, 0, b.N)
			var nodes, edges int
			c0 := cpu()
			for range b.N {
				w0 := time.Now()
				g, err := l.Query(ctx, c.q)
				times = append(times, time.Since(w0))
				if err != nil {
					b.Fatal(err)
				}
				if g.Built < int64(n) || len(g.Edges) == 0 {
					b.Fatalf("built %d of %d, %d edges", g.Built, n, len(g.Edges))
				}
				nodes, edges = len(g.Nodes), len(g.Edges)
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(times[min(len(times)-1, len(times)*99/100)].Microseconds())/1000, "p99-ms")
			b.ReportMetric((cpu()-c0).Seconds()*1000/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(nodes), "nodes")
			b.ReportMetric(float64(edges), "edges")
		})
	}
}

// BenchmarkAlertSync evaluates the alert rules over the whole log into an
// empty alert store (a fresh store each op): reading, decoding, the rules,
// and storing what they raise; reported per event.
func BenchmarkAlertSync(b *testing.B) {
	logDB, n := openLog(b)
	ctx := context.Background()
	var raised int
	c0 := cpu()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		adb := openStore(b, filepath.Join(b.TempDir(), fmt.Sprintf("alerts-%d.db", i)))
		e := &alert.Engine{Log: logDB.Audit(), Store: adb, Now: func() time.Time { return t0 }}
		b.StartTimer()
		created, err := e.Sync(ctx)
		if err != nil {
			b.Fatal(err)
		}
		raised = len(created)
		b.StopTimer()
		if cur, _ := adb.GetCursor(ctx, store.CursorAlerts); cur.Next < int64(n) || len(alert.RuleUsage(cur.State)) == 0 {
			b.Fatalf("alert cursor at %d of %d, rule usage %d", cur.Next, n, len(alert.RuleUsage(cur.State)))
		}
		b.StartTimer()
	}
	cpuPerOp := (cpu() - c0).Seconds() / float64(b.N)
	b.ReportMetric(cpuPerOp*1e9/float64(n), "cpu-ns/event")
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(raised), "alerts")
}
