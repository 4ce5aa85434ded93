package mcp

import (
	"bufio"
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
	"syscall"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/client"
)

// The comparison (TestMCPGatewayComparison) runs each path's middle, the
// gateway (`writ serve`), the relay floor and go-bare, as a process of
// its own, as they are deployed: the agent and the upstream share this
// test process for every path, direct included, and a path's own CPU is
// its process's. The benchmarks (BenchmarkToolsCall) run everything in
// this process instead, for profiling.

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
	var addr string
	startProcess(t, cmd, func(line string) bool {
		addr, _ = strings.CutPrefix(line, "listen ")
		return addr != line
	})
	return addr, cmd.Process.Pid
}

// startProcess starts cmd, reads its standard output until match returns
// true for a line, and stops the process when the test ends.
func startProcess(t testing.TB, cmd *exec.Cmd, match func(line string) bool) {
	t.Helper()
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	sc := bufio.NewScanner(out)
	done := false
	for !done && sc.Scan() {
		done = match(sc.Text())
	}
	if !done {
		t.Fatalf("%s exited before it was ready", cmd.Path)
	}
	go func() {
		for sc.Scan() {
		}
	}()
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
	dir := t.TempDir()
	bin := filepath.Join(dir, "writ")
	build := exec.Command("go", "build", "-o", bin, "./cmd/writ")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build writ: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(bin, "serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0", "--tls-listen", "off")
	var admin, proxy string
	startProcess(t, cmd, func(line string) bool {
		if _, a, ok := strings.Cut(line, "Admin API and bundle endpoint:"); ok {
			admin = strings.TrimSpace(a)
		}
		if _, a, ok := strings.Cut(line, "Access proxy:"); ok {
			proxy = strings.TrimPrefix(strings.Fields(a)[0], "http://")
		}
		return admin != "" && proxy != ""
	})
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(admin, strings.TrimSpace(string(tok)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.CreateEntry(ctx, apitypes.Entry{Name: "bench", SpiffeID: "spiffe://writ.local/agent/bench",
		Selectors: []string{"unix:uid:" + strconv.Itoa(os.Getuid())}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "bench.yaml", Content: benchDocs(up)}}}); err != nil {
		t.Fatal(err)
	}
	url := "http://" + proxy + "/mcp/bench"
	waitListed(t, url)
	return url, cmd.Process.Pid
}

// processPaths is paths with each middle in a process of its own. With
// WRIT_MCP_BENCH_BASE=DIR, "gw-base" is the gateway of writ built from the
// source tree DIR (e.g. a worktree of the previous main), measured in the
// same rounds.
func processPaths(t testing.TB) []path {
	up := upstream(t)
	bare, barePID := startRole(t, "go-bare", up)
	rel, relPID := startRole(t, "relay", up)
	gw, gwPID := startGatewayProcess(t, up)
	ps := []path{{"direct", up, 0}, {"go-bare", bare, barePID}, {"relay", rel, relPID}, {"gateway", gw, gwPID}}
	if base := os.Getenv("WRIT_MCP_BENCH_BASE"); base != "" {
		bgw, bgwPID := startGatewayProcessFrom(t, base, up)
		ps = append(ps, path{"gw-base", bgw, bgwPID})
	}
	return ps
}

// procCPU is process pid's user+system CPU time so far (/proc/PID/stat).
func procCPU(t testing.TB, pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command (which may hold spaces) start after
	// its closing parenthesis; utime and stime are fields 14 and 15.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz
}
