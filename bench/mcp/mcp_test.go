// Package mcp measures a tools/call through writ's MCP gateway against the
// same call made directly to the Go SDK server, and against two floors: the
// Go SDK's client and server joined by nothing but a relay (the MCP
// analogue of the proxy benchmark's go-bare), and the standard library's
// reverse proxy passing the HTTP requests through undecoded (go-bare
// itself). All run in one process and one run, alternated round by round.
//
//	go test -run '^$' -bench ToolsCall ./bench/mcp/
//	WRIT_MCP_BENCH=1 go test -run TestMCPGatewayComparison -v -timeout 20m ./bench/mcp/
package mcp

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/writ-dev/writ/bench/benchproc"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/servertest"
)

type echoArgs struct {
	Text string `json:"text"`
}

// upstream is the Go SDK server every path ends at: one tool, echo.
func upstream(tb testing.TB) string {
	s := sdk.NewServer(&sdk.Implementation{Name: "bench", Version: "1"}, nil)
	sdk.AddTool(s, &sdk.Tool{Name: "echo", Description: "Echo the text."},
		func(_ context.Context, _ *sdk.CallToolRequest, in echoArgs) (*sdk.CallToolResult, any, error) {
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: in.Text}}}, nil, nil
		})
	hs := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s }, nil))
	tb.Cleanup(hs.Close)
	return hs.URL
}

// relay is the floor: a Go SDK server whose echo tool calls the upstream
// over one Go SDK client session. No identity, policy, pinning,
// redaction or audit.
func relay(tb testing.TB, up string) string {
	hs := httptest.NewServer(relayHandler(dial(tb, up)))
	tb.Cleanup(hs.Close)
	return hs.URL
}

// relayHandler serves the relay floor over the client session cs.
func relayHandler(cs *sdk.ClientSession) http.Handler {
	s := sdk.NewServer(&sdk.Implementation{Name: "relay", Version: "1"}, nil)
	s.AddTool(&sdk.Tool{Name: "echo", InputSchema: map[string]any{"type": "object"}},
		func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			return cs.CallTool(ctx, &sdk.CallToolParams{Name: "echo", Arguments: req.Params.Arguments})
		})
	return sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s }, nil)
}

// bareProxy is a second floor: the standard library's reverse proxy
// between the agent and the upstream, forwarding the SDK's HTTP requests
// and streams as they are (the proxy benchmark's go-bare). No JSON-RPC
// is decoded at all: the least any HTTP hop adds on this machine.
func bareProxy(tb testing.TB, up string) string {
	u, err := url.Parse(up)
	if err != nil {
		tb.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	hs := httptest.NewServer(rp)
	tb.Cleanup(hs.Close)
	return hs.URL
}

// gateway starts a real writ (servertest: SQLite store, audit log,
// policy engine, the proxy listener) serving up as MCPServer bench, with
// this process's uid allowed to call echo, and returns the endpoint.
func gateway(tb testing.TB, up string) string {
	in := startWrit(tb, up)
	url := "http://" + in.Server.ProxyAddr() + "/mcp/bench"
	waitListed(tb, url)
	return url
}

// startWrit starts a real writ (servertest: SQLite store, audit log,
// policy engine, the proxy listener) serving up as MCPServer bench, with
// this process's uid allowed to call echo.
func startWrit(tb testing.TB, up string) *servertest.Instance {
	ctx := context.Background()
	in := servertest.Start(tb, servertest.Config(tb.TempDir()), nil)
	if _, err := in.Client.CreateEntry(ctx, apitypes.Entry{Name: "bench", SpiffeID: "spiffe://writ.local/agent/bench",
		Selectors: []string{"unix:uid:" + strconv.Itoa(os.Getuid())}}); err != nil {
		tb.Fatal(err)
	}
	if _, err := in.Client.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "bench.yaml", Content: benchDocs(up)}}}); err != nil {
		tb.Fatal(err)
	}
	return in
}

// benchDocs is MCPServer bench at up and the policy that lets this
// process's identity call its echo tool.
func benchDocs(up string) string {
	return fmt.Sprintf(`apiVersion: writ.dev/v1
kind: MCPServer
metadata: {name: bench}
spec:
  url: %s
---
apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: bench}
spec:
  subjects: [spiffe://writ.local/agent/bench]
  rules:
    - name: echo
      effect: allow
      targets: [{mcp: {server: bench, tools: [echo]}}]
      when: mcp.args.text.size() < 100
`, up)
}

// waitListed waits until the gateway at url lists echo.
func waitListed(tb testing.TB, url string) {
	ctx := context.Background()
	cs := dial(tb, url)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		res, err := cs.ListTools(ctx, nil)
		if err == nil && len(res.Tools) == 1 {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the gateway at %s never listed echo: %v", url, err)
		}
	}
}

var httpClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}}

func dial(tb testing.TB, url string) *sdk.ClientSession {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := sdk.NewClient(&sdk.Implementation{Name: "bench-agent", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: url, HTTPClient: httpClient},
		&sdk.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		tb.Fatalf("connect %s: %v", url, err)
	}
	tb.Cleanup(func() { cs.Close() })
	return cs
}

func call(ctx context.Context, cs *sdk.ClientSession) error {
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hello"}})
	if err != nil {
		return err
	}
	if res.IsError || len(res.Content) != 1 {
		return fmt.Errorf("echo answered %+v", res)
	}
	return nil
}

type path struct {
	name string
	url  string
	// pids are the processes of the path's middle
	// (TestMCPGatewayComparison); nil when it has none of its own.
	pids func() []int
}

func paths(tb testing.TB) []path {
	up := upstream(tb)
	return []path{{"direct", up, nil}, {"go-bare", bareProxy(tb, up), nil}, {"relay", relay(tb, up), nil}, {"gateway", gateway(tb, up), nil}}
}

// BenchmarkToolsCall: one tools/call at a time (latency), and from
// GOMAXPROCS×4 goroutines over 4 sessions (throughput).
func BenchmarkToolsCall(b *testing.B) {
	for _, p := range paths(b) {
		cs := dial(b, p.url)
		b.Run(p.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := call(ctx, cs); err != nil {
					b.Fatal(err)
				}
			}
		})
		sessions := []*sdk.ClientSession{cs, dial(b, p.url), dial(b, p.url), dial(b, p.url)}
		b.Run(p.name+"-parallel", func(b *testing.B) {
			var n atomic.Int64
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				s := sessions[n.Add(1)%int64(len(sessions))]
				for pb.Next() {
					if err := call(context.Background(), s); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// paced makes calls at rate per second for d (open loop: a call starts on
// schedule whether or not the previous ones have ended) and returns each
// call's latency, or false when the path fell more than half a second of
// calls behind (overloaded: its latency would only measure the queue).
func paced(tb testing.TB, cs *sdk.ClientSession, rate int, d time.Duration) ([]time.Duration, bool) {
	ctx := context.Background()
	n := int(d.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, 0, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failed, inflight atomic.Int64
	start := time.Now()
	ok := true
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		if inflight.Load() > int64(rate/2) {
			ok = false
			break
		}
		wg.Add(1)
		inflight.Add(1)
		go func() {
			defer wg.Done()
			defer inflight.Add(-1)
			t0 := time.Now()
			if err := call(ctx, cs); err != nil {
				failed.Add(1)
			}
			mu.Lock()
			lat = append(lat, time.Since(t0))
			mu.Unlock()
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		tb.Fatalf("%d of %d calls failed", f, n)
	}
	slices.Sort(lat)
	return lat, ok
}

// cpu is this process's user+system CPU time so far.
func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// saturate runs conc callers spread over sessions for d and returns the
// calls per second completed and the process's CPU time per call (the
// agent, the path and the upstream together: the same agent and upstream
// for every path, so differences are the path's own).
func saturate(tb testing.TB, sessions []*sdk.ClientSession, conc int, d time.Duration) (float64, time.Duration) {
	rps, c, _ := saturateProc(tb, sessions, conc, d, nil)
	return rps, c
}

// saturateProc is saturate that also returns the CPU time per call of
// the processes pids (when not nil).
func saturateProc(tb testing.TB, sessions []*sdk.ClientSession, conc int, d time.Duration, pids func() []int) (float64, time.Duration, time.Duration) {
	var done, failed atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	var p0 time.Duration
	if pids != nil {
		p0 = benchproc.CPU(pids()...)
	}
	start, c0 := time.Now(), cpu()
	for i := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs := sessions[i%len(sessions)]
			for time.Now().Before(stop) {
				if err := call(context.Background(), cs); err != nil {
					failed.Add(1)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		tb.Fatalf("%d calls failed", f)
	}
	n := max(done.Load(), 1)
	rps, self := float64(n)/time.Since(start).Seconds(), (cpu()-c0)/time.Duration(n)
	if pids == nil {
		return rps, self, 0
	}
	return rps, self, (benchproc.CPU(pids()...) - p0) / time.Duration(n)
}

func pct(lat []time.Duration, p float64) time.Duration {
	return lat[min(len(lat)-1, int(float64(len(lat))*p))]
}

func median[T int64 | float64 | time.Duration](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestMCPGatewayComparison prints, per path, p50/p99 at paced rates
// (100 and 500 calls/s, or WRIT_MCP_BENCH_RATES), calls/s at saturation
// and CPU time per call (the middle's process, and this process: agent
// and upstream), as medians over rounds that alternate the paths; then
// the gateway's added latency over direct, its share of the relay floor's
// throughput and its CPU per call, against the targets. Each
// path's middle (writ serve, the relay, go-bare, nginx) runs as a process
// of its own (process_test.go).
func TestMCPGatewayComparison(t *testing.T) {
	if os.Getenv("WRIT_MCP_BENCH") == "" {
		t.Skip("set WRIT_MCP_BENCH=1 to run the MCP gateway comparison (about a minute per round)")
	}
	rounds, _ := strconv.Atoi(os.Getenv("WRIT_MCP_BENCH_ROUNDS"))
	if rounds <= 0 {
		rounds = 3
	}
	rates := []int{100, 500}
	if v := os.Getenv("WRIT_MCP_BENCH_RATES"); v != "" {
		rates = nil
		for _, f := range strings.Split(v, ",") {
			r, err := strconv.Atoi(f)
			if err != nil || r <= 0 {
				t.Fatalf("WRIT_MCP_BENCH_RATES: %q is not a rate", f)
			}
			rates = append(rates, r)
		}
	}
	const conc = 32
	dur := 3 * time.Second
	ps := processPaths(t)
	type sample struct {
		p50, p99 map[int][]time.Duration
		over     map[int]int
		rps      []float64
		cpu      []time.Duration // this process's (agent and upstream)
		mid      []time.Duration // the middle's process's
	}
	res := map[string]*sample{}
	sess := map[string][]*sdk.ClientSession{}
	for _, p := range ps {
		res[p.name] = &sample{p50: map[int][]time.Duration{}, p99: map[int][]time.Duration{}, over: map[int]int{}}
		for range 4 {
			sess[p.name] = append(sess[p.name], dial(t, p.url))
		}
		// Warm up: connections, caches, the first decision.
		paced(t, sess[p.name][0], 100, 500*time.Millisecond)
	}
	for r := range rounds {
		for i := range ps {
			p := ps[(i+r)%len(ps)]
			s := res[p.name]
			for _, rate := range rates {
				lat, ok := paced(t, sess[p.name][0], rate, dur)
				if !ok {
					s.over[rate]++
					t.Logf("round %d %-8s %4d calls/s: overloaded (fell half a second behind)", r+1, p.name, rate)
					continue
				}
				s.p50[rate] = append(s.p50[rate], pct(lat, 0.50))
				s.p99[rate] = append(s.p99[rate], pct(lat, 0.99))
				t.Logf("round %d %-8s %4d calls/s: p50 %v p99 %v", r+1, p.name, rate, pct(lat, 0.5), pct(lat, 0.99))
			}
			rps, c, mid := saturateProc(t, sess[p.name], conc, dur, p.pids)
			s.rps, s.cpu, s.mid = append(s.rps, rps), append(s.cpu, c), append(s.mid, mid)
			t.Logf("round %d %-8s saturation %.0f calls/s, CPU per call %v (middle) + %v (agent and upstream)", r+1, p.name, rps, mid, c)
		}
	}
	t.Logf("medians over %d rounds; paced for %v; saturation: %d callers over 4 sessions for %v", rounds, dur, conc, dur)
	t.Logf("%-8s %5s %10s %10s", "path", "rate", "p50", "p99")
	for _, rate := range rates {
		for _, p := range ps {
			s := res[p.name]
			if len(s.p50[rate]) == 0 {
				t.Logf("%-8s %5d overloaded in %d of %d rounds", p.name, rate, s.over[rate], rounds)
				continue
			}
			t.Logf("%-8s %5d %10v %10v (overloaded in %d rounds)", p.name, rate, median(s.p50[rate]), median(s.p99[rate]), s.over[rate])
		}
	}
	t.Logf("%-8s %12s %14s %14s", "path", "sat calls/s", "CPU/call mid", "agent+upstr")
	for _, p := range ps {
		s := res[p.name]
		t.Logf("%-8s %12.0f %14v %14v", p.name, median(s.rps), median(s.mid), median(s.cpu))
	}
	d, g, f, bare := res["direct"], res["gateway"], res["relay"], res["go-bare"]
	for _, rate := range rates {
		for _, p := range ps[1:] {
			s := res[p.name]
			if len(s.p50[rate]) == 0 || len(d.p50[rate]) == 0 {
				continue
			}
			target := ""
			if p.name == "gateway" {
				target = " (targets ≤ 200µs and ≤ 1ms)"
			}
			t.Logf("at %d calls/s: %s added p50 %v, p99 %v%s", rate, p.name,
				median(s.p50[rate])-median(d.p50[rate]), median(s.p99[rate])-median(d.p99[rate]), target)
		}
	}
	t.Logf("saturation: gateway %.0f%% of the relay floor (target ≥ 70%%), %.0f%% of direct", 100*median(g.rps)/median(f.rps), 100*median(g.rps)/median(d.rps))
	t.Logf("CPU per call of the middle: go-bare %v, relay %v, gateway %v (gateway/relay %.2f×, gateway/go-bare %.2f×)", median(bare.mid), median(f.mid), median(g.mid),
		float64(median(g.mid))/float64(median(f.mid)), float64(median(g.mid))/float64(median(bare.mid)))
}
