// Package workload benchmarks writ's SPIFFE Workload API end to end: real
// go-spiffe clients over the unix socket against a real `writ serve`
// composition (SQLite store, sealed keys, attestation on every call).
//
//	go test -run '^$' -bench . -benchtime 5s ./bench/workload/
//
// Results and how to read them: bench/README.md.
package workload

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/servertest"
)

func startServer(b *testing.B) string {
	b.Helper()
	cfg := servertest.Config(b.TempDir())
	cfg.Proxy.Listen = "off"
	in := servertest.Start(b, cfg, nil)
	if _, err := in.Client.CreateEntry(context.Background(), apitypes.Entry{Name: "bench", SpiffeID: "spiffe://writ.local/bench",
		Selectors: []string{"unix:uid:" + strconv.Itoa(os.Getuid())}}); err != nil {
		b.Fatal(err)
	}
	return in.WorkloadAddr
}

// clients opens one go-spiffe client per parallel worker (each its own
// connection), as separate workloads would.
func parallelClients(b *testing.B, addr string, fn func(ctx context.Context, c *workloadapi.Client, i int64) error) {
	var n atomic.Int64
	b.SetParallelism(4) // 4 x GOMAXPROCS concurrent clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		c, err := workloadapi.New(ctx, workloadapi.WithAddr(addr))
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		for pb.Next() {
			if err := fn(ctx, c, n.Add(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "svids/s")
}

// BenchmarkX509SVIDFetch: FetchX509SVID calls (one attestation each; the
// SVID for a running instance is served from the cache until half-life, as
// a SPIRE agent serves its cache).
func BenchmarkX509SVIDFetch(b *testing.B) {
	addr := startServer(b)
	parallelClients(b, addr, func(ctx context.Context, c *workloadapi.Client, _ int64) error {
		_, err := c.FetchX509SVID(ctx)
		return err
	})
}

// BenchmarkJWTSVIDFresh: every call asks for a new audience, so every call
// is attested, signed (ES256) and audited.
func BenchmarkJWTSVIDFresh(b *testing.B) {
	addr := startServer(b)
	parallelClients(b, addr, func(ctx context.Context, c *workloadapi.Client, i int64) error {
		_, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: fmt.Sprintf("aud-%d", i)})
		return err
	})
}

// BenchmarkJWTSVIDCached: the same audience again; the token is reused
// until half its life.
func BenchmarkJWTSVIDCached(b *testing.B) {
	addr := startServer(b)
	parallelClients(b, addr, func(ctx context.Context, c *workloadapi.Client, _ int64) error {
		_, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "billing"})
		return err
	})
}

// TestIdleRSS builds and starts the real binary, waits for it to settle and
// reports its resident set size. It runs only with WRIT_BENCH_RSS=1.
func TestIdleRSS(t *testing.T) {
	if os.Getenv("WRIT_BENCH_RSS") != "1" {
		t.Skip("set WRIT_BENCH_RSS=1 to measure idle RSS of writ serve")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "writ")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/writ").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "serve", "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	time.Sleep(5 * time.Second)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			t.Logf("idle RSS of writ serve: %s", strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")))
		}
	}
}
