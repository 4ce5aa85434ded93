// Package console_test benchmarks the console's pages (internal/web)
// served by a real writ whose audit log holds a million events and whose
// inventory holds 10,000 items: the server time of one GET of each page,
// logged in, over loopback. See bench/README.md, section "Console".
package console_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/account"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/server"
	"github.com/writ-dev/writ/internal/servertest"
)

// event is the i'th access of a plausible mix: 40 agents in 5 teams, 200
// instances, 100 tasks on behalf of 20 users, 30 services each with its
// brokered credential, 5% denied.
func event(i int) audit.Event {
	svc := "svc-" + strconv.Itoa(i%30)
	e := audit.Event{Type: audit.AccessAllowed, Decision: "allow",
		SpiffeID:   fmt.Sprintf("spiffe://writ.local/team%d/agent-%d", i%5, i%40),
		Instance:   "inst_" + strconv.Itoa(i%200),
		Task:       "task_" + strconv.Itoa(i%100),
		OnBehalfOf: "user" + strconv.Itoa(i%20),
		Target:     "Service/" + svc, Action: "GET /v1/items/" + strconv.Itoa(i%1000),
		Policy: "agents@3", Rule: "read", Credential: svc + "-key", Source: "127.0.0.1:" + strconv.Itoa(40000+i%20000),
		RequestID: "req_" + strconv.Itoa(i), LatencyUS: int64(300 + i%500),
	}
	if i%20 == 0 {
		e.Type, e.Decision, e.Reason = audit.AccessDenied, "deny", "no rule allows GET to this target"
	}
	return e
}

func events() int {
	if s := os.Getenv("WRIT_CONSOLE_BENCH_EVENTS"); s != "" {
		n, _ := strconv.Atoi(s)
		return n
	}
	return 1_000_000
}

// BenchmarkConsolePages serves every console page from a writ with
// WRIT_CONSOLE_BENCH_EVENTS (default 1,000,000) audit events and 10,000
// registration entries (inventory items); each page is fetched once
// before timing (the lineage graph and the alert rules fold the log in
// on first use, then incrementally).
func BenchmarkConsolePages(b *testing.B) {
	ctx := context.Background()
	cfg := servertest.Config(b.TempDir())
	cfg.Discovery.Disabled = true
	in := servertest.StartWith(b, cfg, server.Options{Argon2: account.Params{Memory: 64, Time: 1, Threads: 1}})
	start := time.Now()
	n := events()
	var wg sync.WaitGroup
	const batch = 1000
	next := make(chan int)
	for range 4 {
		wg.Go(func() {
			es := make([]audit.Event, 0, batch)
			for from := range next {
				es = es[:0]
				for i := from; i < min(from+batch, n); i++ {
					es = append(es, event(i))
				}
				if err := in.Server.AuditLog().EmitBatch(ctx, es); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for from := 0; from < n; from += batch {
		next <- from
	}
	close(next)
	wg.Wait()
	fmt.Fprintf(os.Stderr, "appended %d events in %v\n", n, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	entries := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range entries {
				if _, err := in.Client.CreateEntry(ctx, apitypes.Entry{Name: "agent-" + strconv.Itoa(i),
					SpiffeID:  fmt.Sprintf("spiffe://writ.local/fleet%d/agent-%d", i%50, i),
					Selectors: []string{"unix:uid:" + strconv.Itoa(10000+i), "unix:sha256:" + fmt.Sprintf("%064x", i)},
					Labels:    map[string]string{"owner": "team" + strconv.Itoa(i%5)}}); err != nil {
					b.Error(err)
				}
			}
		})
	}
	items := 10_000
	if s := os.Getenv("WRIT_CONSOLE_BENCH_ITEMS"); s != "" {
		items, _ = strconv.Atoi(s)
	}
	for i := range items {
		entries <- i
	}
	close(entries)
	wg.Wait()
	fmt.Fprintf(os.Stderr, "created %d entries in %v\n", items, time.Since(start).Round(time.Millisecond))
	waitIndexed(b, in.Addr)

	if _, err := in.Client.AddUser(ctx, "bench", "admin", "bench-long-password"); err != nil {
		b.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Minute}
	req, _ := http.NewRequest("POST", in.Addr+"/ui/login", strings.NewReader(url.Values{"name": {"bench"}, "password": {"bench-long-password"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", in.Addr)
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()

	get := func(b *testing.B, path string) int {
		resp, err := hc.Get(in.Addr + path)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Request.URL.Path == "/ui/login" {
			b.Fatalf("GET %s: %d (%s)", path, resp.StatusCode, resp.Request.URL)
		}
		return int(n)
	}
	for _, p := range []struct{ name, path string }{
		{"overview", "/ui/"}, {"inventory", "/ui/inventory"}, {"lineage", "/ui/lineage"},
		{"lineage-agent", "/ui/lineage?identity=spiffe://writ.local/team3/agent-3"},
		{"lineage-node", "/ui/lineage/node?id=service:svc-7"}, {"approvals", "/ui/approvals"},
		{"alerts", "/ui/alerts?state=all"}, {"posture", "/ui/posture"}, {"audit", "/ui/audit"},
		{"audit-denied", "/ui/audit?type=access.denied"}, {"audit-task", "/ui/audit?task=task_42"},
		{"policies", "/ui/policies"}, {"mcp", "/ui/mcp"},
	} {
		warm := time.Now()
		size := get(b, p.path)
		fmt.Fprintf(os.Stderr, "%s: first GET %v\n", p.name, time.Since(warm).Round(time.Millisecond))
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				get(b, p.path)
			}
			b.ReportMetric(float64(size), "bytes")
		})
	}
}

// waitIndexed waits until the audit search index holds every event
// (writ_audit_index_lag_events is 0).
func waitIndexed(b *testing.B, addr string) {
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get(addr + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		lag := ""
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "writ_audit_index_lag_events "); ok {
				lag = v
			}
		}
		resp.Body.Close()
		if lag == "0" {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the search index still lags %s events", lag)
		}
	}
}
