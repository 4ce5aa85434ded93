package mcp

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/writ-dev/writ/bench/benchproc"
	"github.com/writ-dev/writ/internal/apitypes"
)

// The comparison (TestMCPGatewayComparison) runs each path's middle, the
// gateway (`writ serve`), the relay floor, go-bare and nginx, as a process
// of its own, as they are deployed: the agent and the upstream share this
// test process for every path, direct included, and a path's own CPU is
// its process's. WRIT_MCP_BENCH_PIN=1 runs the middles on CPU 1 (the test
// must then run on CPU 0: taskset -c 0 go test ...). The benchmarks
// (BenchmarkToolsCall) run everything in this process instead, for
// profiling.

// roleEnv selects a helper mode of this test binary: serve the relay
// floor ("relay") or go-bare ("go-bare") in front of the upstream named by
// upstreamEnv, and print "listen URL".
const (
	roleEnv     = "WRIT_MCP_BENCH_ROLE"
	upstreamEnv = "WRIT_MCP_BENCH_UPSTREAM"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		serveRole(role, os.Getenv(upstreamEnv))
		return
	}
	os.Exit(m.Run())
}

// serveRole serves the helper role in front of up until killed.
func serveRole(role, up string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	var h http.Handler
	switch role {
	case "go-bare":
		u, err := url.Parse(up)
		if err != nil {
			panic(err)
		}
		rp := httputil.NewSingleHostReverseProxy(u)
		rp.FlushInterval = -1
		rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
		h = rp
	case "relay":
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		c := sdk.NewClient(&sdk.Implementation{Name: "relay", Version: "1"}, nil)
		cs, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: up, HTTPClient: httpClient},
			&sdk.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
		cancel()
		if err != nil {
			panic(err)
		}
		h = relayHandler(cs)
	default:
		panic("unknown role " + role)
	}
	fmt.Printf("listen http://%s\n", ln.Addr())
	panic((&http.Server{Handler: h}).Serve(ln))
}

// startRole runs this test binary as role in front of up and returns its
// URL and pid.
func startRole(t testing.TB, role, up string) (string, int) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), roleEnv+"="+role, upstreamEnv+"="+up)
	if p := pin(t); p != nil {
		p(cmd)
	}
	var addr string
	benchproc.Start(t, cmd, func(line string) bool {
		addr, _ = strings.CutPrefix(line, "listen ")
		return addr != line
	})
	return addr, cmd.Process.Pid
}

// startGatewayProcess builds writ from this source tree, runs `writ
// serve` on a fresh data directory, configures it as startWrit does (this
// process's uid allowed to call echo on MCPServer bench at up) and returns
// the gateway's endpoint and writ's pid.
func startGatewayProcess(t testing.TB, up string) (string, int) {
	_, here, _, _ := runtime.Caller(0)
	return startGatewayProcessFrom(t, filepath.Join(filepath.Dir(here), "..", ".."), up)
}

// startGatewayProcessFrom is startGatewayProcess with writ built from the
// source tree src.
func startGatewayProcessFrom(t testing.TB, src, up string) (string, int) {
	url, w := startGatewayWrit(t, src, up)
	return url, w.PID
}

// startGatewayWrit is startGatewayProcessFrom returning the writ process.
func startGatewayWrit(t testing.TB, src, up string) (string, benchproc.Writ) {
	w := benchproc.StartWrit(t, src, nil, nil, pin(t))
	ctx := context.Background()
	if _, err := w.Client.CreateEntry(ctx, apitypes.Entry{Name: "bench", SpiffeID: "spiffe://writ.local/agent/bench",
		Selectors: []string{"unix:uid:" + strconv.Itoa(os.Getuid())}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Client.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "bench.yaml", Content: benchDocs(up)}}}); err != nil {
		t.Fatal(err)
	}
	url := "http://" + w.Proxy + "/mcp/bench"
	waitListed(t, url)
	return url, w
}

// TestMCPProfile takes a CPU profile of `writ serve` (built from this
// tree) while one agent session calls the gateway at a paced rate
// (WRIT_MCP_PROFILE_RATE, default 500 calls/s), as in the comparison:
//
//	WRIT_MCP_PROFILE=/tmp/gw.cpu go test -run TestMCPProfile -v ./bench/mcp/
//	go tool pprof -top /tmp/gw.cpu
func TestMCPProfile(t *testing.T) {
	out := os.Getenv("WRIT_MCP_PROFILE")
	if out == "" {
		t.Skip("set WRIT_MCP_PROFILE=FILE to profile the gateway under load")
	}
	rate := 500
	if v := os.Getenv("WRIT_MCP_PROFILE_RATE"); v != "" {
		var err error
		if rate, err = strconv.Atoi(v); err != nil || rate <= 0 {
			t.Fatalf("WRIT_MCP_PROFILE_RATE: %q is not a rate", v)
		}
	}
	_, here, _, _ := runtime.Caller(0)
	url, w := startGatewayWrit(t, filepath.Join(filepath.Dir(here), "..", ".."), upstream(t))
	cs := dial(t, url)
	paced(t, cs, 100, time.Second) // warm up
	const secs = 8
	type profile struct {
		body []byte
		cpu  time.Duration
		err  error
	}
	got := make(chan profile, 1)
	go func() {
		time.Sleep(time.Second)
		c0 := benchproc.CPU(w.PID)
		body, err := w.Fetch("/v1/debug/pprof/profile?seconds=" + strconv.Itoa(secs))
		got <- profile{body, benchproc.CPU(w.PID) - c0, err}
	}()
	lat, ok := paced(t, cs, rate, (secs+2)*time.Second)
	p := <-got
	if p.err != nil {
		t.Fatal(p.err)
	}
	if err := os.WriteFile(out, p.body, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d calls/s (kept up: %v): p50 %v, p99 %v; writ CPU %v during the %d s profile (%v per call); profile in %s",
		rate, ok, pct(lat, 0.5), pct(lat, 0.99), p.cpu, secs, p.cpu/time.Duration(rate*secs), out)
}

// processPaths is paths with each middle in a process of its own, and
// nginx (2 workers) as a second bare reverse proxy beside go-bare. With
// WRIT_MCP_BENCH_BASE=DIR, "gw-base" is the gateway of writ built from the
// source tree DIR (e.g. a worktree of the previous main), measured in the
// same rounds.
func processPaths(t testing.TB) []path {
	up := upstream(t)
	bare, barePID := startRole(t, "go-bare", up)
	u, err := url.Parse(up)
	if err != nil {
		t.Fatal(err)
	}
	ngx, ngxPIDs := benchproc.Nginx(t, u.Host, pin(t))
	rel, relPID := startRole(t, "relay", up)
	gw, gwPID := startGatewayProcess(t, up)
	ps := []path{{"direct", up, nil}, {"go-bare", bare, one(barePID)}, {"nginx", "http://" + ngx + u.Path, ngxPIDs},
		{"relay", rel, one(relPID)}, {"gateway", gw, one(gwPID)}}
	if base := os.Getenv("WRIT_MCP_BENCH_BASE"); base != "" {
		bgw, bgwPID := startGatewayProcessFrom(t, base, up)
		ps = append(ps, path{"gw-base", bgw, one(bgwPID)})
	}
	return ps
}

// pin makes a middle's command run on CPU WRIT_MCP_BENCH_PIN when it is
// set (the test itself, agent and upstream, must then run on the other
// CPUs: taskset -c 0 go test ...); nil otherwise.
func pin(t testing.TB) func(*exec.Cmd) {
	return benchproc.Pin(t, "WRIT_MCP_BENCH_PIN", os.Getenv("WRIT_MCP_BENCH_PIN"))
}

// one is the pids of a path whose middle is the one process pid.
func one(pid int) func() []int {
	return func() []int { return []int{pid} }
}
