package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/writ-dev/writ/internal/apitypes"
)

// Helper modes of this test binary for TestProxyExecAfterConnect.
const (
	execProxyEnv = "WRIT_EXEC_TEST_PROXY" // proxy address: make a request, then exec
	execIntoEnv  = "WRIT_EXEC_TEST_INTO"  // the program to exec into
	execFDEnv    = "WRIT_EXEC_TEST_FD"    // after the exec: the connection's fd
)

// TestProxyExecAfterConnect (#12 item 4): a registered process makes a
// request through the proxy on a keep-alive connection, then execs a
// program no identity names and sends its next request on the same
// connection. That request is not served as the registered identity: the
// cached attribution is bound to the executable attested, and an exec
// makes the proxy attribute the connection again. A process that execs a
// registered program keeps being served.
func TestProxyExecAfterConnect(t *testing.T) {
	if os.Getenv(execFDEnv) != "" || os.Getenv(execProxyEnv) != "" {
		execHelper(t)
		return
	}
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	in := start(t, testConfig(t.TempDir()))
	// Two copies of this test binary: the same content, two paths; only
	// the first is registered (by path).
	dir := t.TempDir()
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	registered, other := filepath.Join(dir, "registered"), filepath.Join(dir, "unregistered")
	for _, p := range []string{registered, other} {
		if err := os.WriteFile(p, self, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	if _, err := in.client.CreateEntry(ctx, apitypes.Entry{Name: "exec", SpiffeID: "spiffe://writ.local/agent/exec",
		Selectors: []string{"unix:path:" + registered}}); err != nil {
		t.Fatal(err)
	}
	apply(t, in.client, "exec.yaml", fmt.Sprintf(`apiVersion: writ.dev/v1
kind: Service
metadata: {name: exec}
spec:
  upstream: %s
---
apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: exec}
spec:
  subjects: [spiffe://writ.local/agent/exec]
  rules:
    - {name: get, effect: allow, targets: [{http: {service: exec, methods: [GET]}}]}
`, up.URL))
	for _, tc := range []struct {
		into       string
		wantSecond string
	}{
		{other, "401"},
		{registered, "200"},
	} {
		t.Run(filepath.Base(tc.into), func(t *testing.T) {
			before := hits.Load()
			cmd := exec.Command(registered, "-test.run=^TestProxyExecAfterConnect$", "-test.count=1")
			cmd.Env = append(os.Environ(), execProxyEnv+"="+in.srv.ProxyAddr(), execIntoEnv+"="+tc.into)
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("helper: %v\n%s", err, out)
			}
			var first, second string
			for line := range strings.SplitSeq(string(out), "\n") {
				if v, ok := strings.CutPrefix(line, "first "); ok {
					first = v
				}
				if v, ok := strings.CutPrefix(line, "second "); ok {
					second = v
				}
			}
			if first != "200" {
				t.Fatalf("the registered process's request: %q, want 200\n%s", first, out)
			}
			if second != tc.wantSecond {
				t.Fatalf("after exec into %s, the request on the same connection: %q, want %s\n%s", tc.into, second, tc.wantSecond, out)
			}
			want := int64(1)
			if tc.wantSecond == "200" {
				want = 2
			}
			if n := hits.Load() - before; n != want {
				t.Errorf("the upstream got %d requests, want %d", n, want)
			}
		})
	}
}

// execHelper is the helper: before the exec it sends one request on a
// keep-alive connection, makes the connection survive the exec and execs;
// after it, it sends the next request on the inherited connection.
func execHelper(t *testing.T) {
	send := func(c net.Conn, br *bufio.Reader, n int) string {
		c.SetDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintf(c, "GET /svc/exec/item/%d HTTP/1.1\r\nHost: x\r\n\r\n", n)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return "error " + err.Error()
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return strconv.Itoa(resp.StatusCode)
	}
	if fd := os.Getenv(execFDEnv); fd != "" {
		n, _ := strconv.Atoi(fd)
		c, err := net.FileConn(os.NewFile(uintptr(n), "proxy connection"))
		if err != nil {
			fmt.Printf("second error %v\n", err)
			return
		}
		fmt.Printf("second %s\n", send(c, bufio.NewReader(c), 2))
		return
	}
	c, err := net.Dial("tcp", os.Getenv(execProxyEnv))
	if err != nil {
		fmt.Printf("first error %v\n", err)
		return
	}
	fmt.Printf("first %s\n", send(c, bufio.NewReader(c), 1))
	os.Stdout.Sync()
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFD, 0); err != nil { // keep it open across exec
		t.Fatal(err)
	}
	c.Close() // the duplicate in f stays: the same socket, the same connection
	into := os.Getenv(execIntoEnv)
	env := append(os.Environ(), execFDEnv+"="+strconv.Itoa(int(f.Fd())))
	env = slicesDelete(env, execProxyEnv)
	err = syscall.Exec(into, []string{into, "-test.run=^TestProxyExecAfterConnect$", "-test.count=1"}, env)
	t.Fatalf("exec %s: %v", into, err)
}

// slicesDelete drops the variable name from an environment list.
func slicesDelete(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}
