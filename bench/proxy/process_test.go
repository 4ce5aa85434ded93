package proxy

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

	"github.com/writ-dev/writ/bench/benchproc"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/client"
)

// The comparison runs writ, nginx and the bare Go proxy each as a process
// of its own, as they are deployed, so that the kernel schedules them
// against the load generator and the upstream (which share this test
// process, for direct as for the proxies). The benchmarks run writ in
// this process instead, for profiling.

// bareProxyEnv selects the helper mode of this test binary: serve the bare
// Go reverse proxy in front of the upstream it names and print "listen
// <addr>".
const bareProxyEnv = "WRIT_BENCH_BARE_PROXY_UPSTREAM"

func TestMain(m *testing.M) {
	if up := os.Getenv(bareProxyEnv); up != "" {
		addr, serve := bareProxy(up)
		fmt.Printf("listen %s\n", addr)
		serve()
		return
	}
	os.Exit(m.Run())
}

// bareProxy is the Go standard library's reverse proxy in front of up,
// with nothing else: no identification, policy, injection or audit. It
// is the floor of what a Go proxy costs on this machine.
func bareProxy(up string) (string, func() error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	target, _ := url.Parse("http://" + up)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	srv := &http.Server{Handler: rp}
	return ln.Addr().String(), func() error { return srv.Serve(ln) }
}

// startBareProxy runs bareProxy in this process (for the benchmarks).
func startBareProxy(t testing.TB, up string) string {
	addr, serve := bareProxy(up)
	go serve()
	return addr
}

// pin makes a command run on the proxies' CPU when WRIT_PROXY_BENCH_PIN
// is set (see TestProxyComparison); nil otherwise.
func pin(t testing.TB) func(*exec.Cmd) {
	return benchproc.Pin(t, "WRIT_PROXY_BENCH_PIN", os.Getenv("WRIT_PROXY_BENCH_PIN"))
}

// startBareProxyProcess runs bareProxy in a process of its own.
func startBareProxyProcess(t testing.TB, up string) (string, int) {
	var addr string
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), bareProxyEnv+"="+up)
	if p := pin(t); p != nil {
		p(cmd)
	}
	benchproc.Start(t, cmd, func(line string) bool {
		addr, _ = strings.CutPrefix(line, "listen ")
		return addr != line
	})
	return addr, cmd.Process.Pid
}

// startWritProcess builds writ and runs `writ serve` on a fresh data
// directory with its proxy in front of up, configured as startWrit does.
// It returns the proxy address and writ's pid.
func startWritProcess(t testing.TB, up string, env ...string) (string, int) {
	_, here, _, _ := runtime.Caller(0)
	return startWritProcessFrom(t, filepath.Join(filepath.Dir(here), "..", ".."), up, env...) // the module root
}

// startWritProcessFrom is startWritProcess with writ built from the
// source tree at root (another checkout, for an A/B in one run).
func startWritProcessFrom(t testing.TB, root, up string, env ...string) (string, int) {
	w := startWritAdmin(t, root, up, nil, env...)
	return w.Proxy, w.PID
}

// startWritAdmin is startWritProcessFrom, also returning the admin API's
// address and token; args are added to `writ serve`'s.
func startWritAdmin(t testing.TB, root, up string, args []string, env ...string) benchproc.Writ {
	w := benchproc.StartWrit(t, root, args, env, pin(t))
	configureWrit(t, w.Client, up)
	return w
}

// configureWrit registers the bench identity (every process of this user),
// the upstream credential and the Service and policy for up.
func configureWrit(t testing.TB, c *client.Client, up string) {
	ctx := context.Background()
	if _, err := c.CreateEntry(ctx, apitypes.Entry{Name: "bench", SpiffeID: "spiffe://writ.local/bench",
		Selectors: []string{"unix:uid:" + strconv.Itoa(os.Getuid())}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutCredential(ctx, "bench-key", "bearer", "bench-secret"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "bench.yaml", Content: fmt.Sprintf(docs, up)}}}); err != nil {
		t.Fatal(err)
	}
}
