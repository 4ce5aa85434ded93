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
}

// StartWrit builds writ from the source tree root, runs `writ serve` on
// a fresh data directory (admin API and proxy on loopback ports, no TLS
// listener) with args added and env added to this process's, and waits
// until it serves. prep, when set, may change the command before it starts
// (e.g. to pin it to a CPU).
func StartWrit(t testing.TB, root string, args, env []string, prep func(*exec.Cmd)) Writ {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "writ")
	build := exec.Command("go", "build", "-o", bin, "./cmd/writ")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build writ in %s: %v\n%s", root, err, out)
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(bin, append([]string{"serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0", "--tls-listen", "off"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	if prep != nil {
		prep(cmd)
	}
	var w Writ
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
