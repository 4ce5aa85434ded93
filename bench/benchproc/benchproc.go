// Package benchproc runs the processes of the side-by-side benchmarks
// (bench/proxy, bench/mcp): helper processes that print their address, and
// `writ serve` built from a source tree, as deployed; and reads a
// process's own CPU time, since the benchmark machine is shared and wall
// time says little.
package benchproc

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/client"
)

// Start starts cmd, reads its standard output until match returns true for
// a line, and stops the process when the test ends.
func Start(t testing.TB, cmd *exec.Cmd, match func(line string) bool) {
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

// Writ is a `writ serve` process started by StartWrit.
type Writ struct {
	Proxy  string // the access proxy's host:port
	Admin  string // the admin API's URL
	Token  string // the admin token
	PID    int
	Client *client.Client // on the admin API
	cmd    *exec.Cmd
}

// Stop stops w before the test ends (it is stopped then anyway).
func (w Writ) Stop() {
	w.cmd.Process.Signal(syscall.SIGTERM)
	w.cmd.Wait()
}

// Build builds writ from the source tree root into the test's temporary
// directory and returns the binary's path.
func Build(t testing.TB, root string) string {
	t.Helper()
	if b := os.Getenv("WRIT_BENCH_BIN"); b != "" {
		return b
	}
	bin := filepath.Join(t.TempDir(), "writ")
	build := exec.Command("go", "build", "-o", bin, "./cmd/writ")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build writ in %s: %v\n%s", root, err, out)
	}
	return bin
}

// StartWrit builds writ from the source tree root and starts it as
// StartWritBin does.
func StartWrit(t testing.TB, root string, args, env []string, prep func(*exec.Cmd)) Writ {
	t.Helper()
	return StartWritBin(t, Build(t, root), args, env, prep)
}

// StartWritBin runs the writ binary bin as `writ serve` on a fresh data
// directory (admin API and proxy on loopback ports, no TLS listener) with
// args added and env added to this process's, and waits until it serves.
// prep, when set, may change the command before it starts (e.g. to pin it
// to a CPU).
func StartWritBin(t testing.TB, bin string, args, env []string, prep func(*exec.Cmd)) Writ {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command(bin, append([]string{"serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0", "--tls-listen", "off"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	if prep != nil {
		prep(cmd)
	}
	w := Writ{cmd: cmd}
	Start(t, cmd, func(line string) bool {
		if _, a, ok := strings.Cut(line, "Admin API and bundle endpoint:"); ok {
			w.Admin = strings.TrimSpace(a)
		}
		if _, a, ok := strings.Cut(line, "Access proxy:"); ok {
			w.Proxy = strings.TrimPrefix(strings.Fields(a)[0], "http://")
		}
		return w.Admin != "" && w.Proxy != ""
	})
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	w.Token = strings.TrimSpace(string(tok))
	if w.Client, err = client.New(w.Admin, w.Token); err != nil {
		t.Fatal(err)
	}
	w.PID = cmd.Process.Pid
	return w
}

// CPU returns the CPU time (user and system, all threads, including ended
// ones) the processes pids have used, from /proc/PID/stat, in clock ticks
// of 10 ms (USER_HZ); a process that is gone counts nothing.
func CPU(pids ...int) time.Duration {
	var ticks int64
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// The fields after the command (which may hold spaces) start
		// after its closing parenthesis; utime and stime are fields 14
		// and 15.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		k, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + k
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// Nginx runs nginx (2 workers) as a plain reverse proxy to the upstream
// host:port up: HTTP/1.1 with upstream keep-alive, the client's Host
// passed on (the MCP SDK's server refuses a Host that is not loopback on a
// loopback listener), no access log, and no buffering of answers (event
// streams pass as they come). It returns its
// host:port and the pids of its processes (master and workers). Without
// nginx the test is skipped, or fails under CI=true. prep, when set, may
// change the command before it starts.
func Nginx(t testing.TB, up string, prep func(*exec.Cmd)) (string, func() []int) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nginx is required in CI (apt-get install nginx)")
		}
		t.Skip("nginx not installed (apt-get install nginx)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	conf := fmt.Sprintf(`worker_processes 2;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream up { server %[2]s; keepalive 128; }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_buffering off;
      proxy_read_timeout 1h;
    }
  }
}
`, dir, up, addr)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	if prep != nil {
		prep(cmd)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	pids := func() []int {
		out := []int{cmd.Process.Pid}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		for _, f := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(f); err == nil {
				out = append(out, p)
			}
		}
		return out
	}
	// Ready when it listens and both workers run (the master binds first,
	// then starts them): the caller measures every process's CPU.
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			if len(pids()) == 3 {
				break
			}
		}
		if i == 500 {
			t.Fatalf("nginx does not listen on %s with 2 workers after 10 s (processes %v)", addr, pids())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addr, pids
}

// Pin returns a prep function (for StartWrit, Nginx, or a command about to
// start) that runs the command on CPU cpu with taskset, or nil when cpu is
// empty. It fails the test if this process may itself run on cpu: the
// process measuring must be kept off the measured one's CPU (run it with
// taskset -c on the other CPUs).
func Pin(t testing.TB, env, cpu string) func(*exec.Cmd) {
	t.Helper()
	if cpu == "" {
		return nil
	}
	status, _ := os.ReadFile("/proc/self/status")
	_, allowed, _ := strings.Cut(string(status), "Cpus_allowed_list:")
	allowed, _, _ = strings.Cut(strings.TrimSpace(allowed), "\n")
	on := false
	for _, r := range strings.Split(allowed, ",") {
		lo, hi, _ := strings.Cut(r, "-")
		if hi == "" {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		c, err3 := strconv.Atoi(cpu)
		if err1 != nil || err2 != nil || err3 != nil || (a <= c && c <= b) {
			on = true
		}
	}
	if allowed == "" || on {
		t.Fatalf("%s=%s: run the test on the other CPUs (taskset -c 0 go test ...); this process may run on %q", env, cpu, allowed)
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		t.Fatalf("%s: %v", env, err)
	}
	return func(cmd *exec.Cmd) {
		cmd.Args = append([]string{"taskset", "-c", cpu}, cmd.Args...)
		cmd.Path = taskset
	}
}

// Get answers GET path on w's admin API with the admin token (e.g. a
// profile from /v1/debug/pprof/profile), failing the test on an error.
func (w Writ) Get(t testing.TB, path string) []byte {
	t.Helper()
	body, err := w.Fetch(path)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// Fetch is Get returning its error, for a goroutine other than the
// test's.
func (w Writ) Fetch(path string) ([]byte, error) {
	req, err := http.NewRequest("GET", w.Admin+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+w.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %v %d %.200s", path, err, resp.StatusCode, body)
	}
	return body, nil
}
