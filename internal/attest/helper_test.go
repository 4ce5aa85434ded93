package attest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/sqlite"
)

// helperEnv makes the test binary act as a small workload instead of
// running tests: see runHelper.
const helperEnv = "WRIT_ATTEST_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}

// runHelper connects as mode says ("unix:PATH", "tcp:ADDR", "hold" for
// nothing, or "threadhold" to keep the inherited fd 3 open in one thread's
// own file table only), writes "ready" and the connection's local address to stdout,
// and then lives until stdin closes.
func runHelper(mode string) int {
	var c net.Conn
	var err error
	switch kind, addr, _ := strings.Cut(mode, ":"); kind {
	case "unix", "tcp":
		c, err = net.Dial(kind, addr)
	case "hold":
	case "handoff":
		return runHandoff(addr)
	case "tcpexec":
		return runTCPExec(addr)
	case "threadhold":
		// Keep the inherited fd 3 only in the file table of one thread:
		// that thread unshares the table (a copy, fd 3 included), then fd 3
		// is closed in the table every other thread shares.
		// The thread must not be the thread group leader, whose table
		// /proc/PID/fd shows: a goroutine that lands on it keeps it busy.
		unshared := make(chan error)
		for err = errLeader; err == errLeader; err = <-unshared {
			go func() {
				runtime.LockOSThread() // never unlocked: the thread keeps its table
				if unix.Gettid() == unix.Getpid() {
					unshared <- errLeader
				} else {
					unshared <- unix.Unshare(unix.CLONE_FILES)
				}
				select {}
			}()
		}
		if err == nil {
			err = unix.Close(3)
		}
	default:
		err = fmt.Errorf("unknown helper mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	local := ""
	if c != nil {
		local = c.LocalAddr().String()
	}
	fmt.Printf("ready %s\n", local)
	io.Copy(io.Discard, os.Stdin)
	return 0
}

var errLeader = errors.New("on the thread group leader")

// runHandoff connects to the unix socket at path with a socket that
// survives exec, says "ready", and then obeys lines on stdin: "send" passes
// the socket over the unix socket at fd 3 (SCM_RIGHTS) and says "sent";
// "exec" re-executes the binary in "hold" mode, which says "ready".
func runHandoff(path string) int {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0) // no close-on-exec
	if err == nil {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "send":
			err = unix.Sendmsg(3, []byte{'x'}, unix.UnixRights(fd), nil, 0)
			fmt.Println("sent", err)
		case "exec":
			return execHold()
		}
	}
	return 0
}

// runTCPExec connects to the TCP address with a socket that survives
// exec, says "ready" and its local address, and on the line "exec"
// re-executes the binary in "hold" mode, which says "ready".
func runTCPExec(addr string) int {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		fmt.Fprintln(os.Stderr, "tcpexec wants an IPv4 address:port:", addr)
		return 2
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0) // no close-on-exec
	if err == nil {
		err = unix.Connect(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()})
	}
	var sa unix.Sockaddr
	if err == nil {
		sa, err = unix.Getsockname(fd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	in4 := sa.(*unix.SockaddrInet4)
	fmt.Printf("ready %s\n", netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port)))
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "exec" {
			return execHold()
		}
	}
	return 0
}

// execHold re-executes the test binary in "hold" mode, keeping every fd
// without close-on-exec; it returns only if the exec fails.
func execHold() int {
	exe, _ := os.Executable()
	env := []string{helperEnv + "=hold"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, helperEnv+"=") {
			env = append(env, kv)
		}
	}
	err := unix.Exec(exe, []string{exe}, env)
	fmt.Fprintln(os.Stderr, "exec:", err)
	return 2
}

// helper is a running child process.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	local string // the local address of its connection, if any
}

// say writes a command line to the helper and waits for its answer line.
func (h *helper) say(t *testing.T, cmd string) string {
	t.Helper()
	if _, err := fmt.Fprintln(h.stdin, cmd); err != nil {
		t.Fatal(err)
	}
	line, err := h.out.ReadString('\n')
	if err != nil {
		t.Fatalf("helper after %q: %v", cmd, err)
	}
	return strings.TrimSpace(line)
}

// startHelper runs exe (the test binary or a copy) in helper mode and
// waits until it is ready. The child is killed when the test ends.
func startHelper(t *testing.T, exe, mode string, extra ...*os.File) *helper {
	t.Helper()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = extra
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(h.stop)
	line, err := h.out.ReadString('\n')
	if err != nil {
		t.Fatalf("helper %q did not start: %v", mode, err)
	}
	ready, local, _ := strings.Cut(strings.TrimSpace(line), " ")
	if ready != "ready" {
		t.Fatalf("helper %q said %q", mode, line)
	}
	h.local = local
	return h
}

func (h *helper) pid() int { return h.cmd.Process.Pid }

// stop ends the child and reaps it; it is safe to call twice.
func (h *helper) stop() {
	if h.cmd.ProcessState != nil {
		return
	}
	h.stdin.Close()
	h.cmd.Process.Kill()
	h.cmd.Wait()
}

// startSleep runs sleep(1), an executable other than the test binary.
func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	path, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("sleep(1) is needed: %v", err)
	}
	cmd := exec.Command(path, "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// selfExe returns the resolved path of the test binary.
func selfExe(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe, err = filepath.EvalSymlinks(exe)
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func fileSHA256(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// copyFile copies src to dst with mode 0755.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// openStore opens a SQLite store at path, closed when the test ends.
func openStore(t testing.TB, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// countingInstances is a real store that counts InstanceFor calls.
type countingInstances struct {
	store.Instances
	calls atomic.Int64
}

func (c *countingInstances) InstanceFor(ctx context.Context, key store.InstanceKey, fresh store.Instance) (store.Instance, error) {
	c.calls.Add(1)
	return c.Instances.InstanceFor(ctx, key, fresh)
}

// newTestAttestor returns an attestor over a fresh SQLite store, with
// c's other fields kept.
func newTestAttestor(t testing.TB, c Config) (*Attestor, *countingInstances) {
	t.Helper()
	counting := &countingInstances{Instances: openStore(t, filepath.Join(t.TempDir(), "writ.db"))}
	if c.Instances == nil {
		c.Instances = counting
	}
	a, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return a, counting
}

// unixPair returns both ends of a unix socket connection made through a
// real listener: the server end (whose peer is the dialer) and the client.
func unixPair(t testing.TB) (server, client *net.UnixConn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return s, c
}

// selfPeer returns the test process as the peer of a real unix socket.
func selfPeer(t testing.TB) Peer {
	t.Helper()
	s, _ := unixPair(t)
	p, err := PeerFromUnixConn(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// fakeProc is a procfs lookalike in a temporary directory, for states a
// real process cannot be put in on demand.
type fakeProc struct {
	t    testing.TB
	root string
}

func newFakeProc(t testing.TB) *fakeProc {
	t.Helper()
	root := t.TempDir()
	f := &fakeProc{t: t, root: root}
	f.write("sys/kernel/random/boot_id", "3f1c0e9a-8d55-4d0b-9a43-7d2f3e0c1b2a\n")
	if err := os.Symlink(strconv.Itoa(os.Getpid()), filepath.Join(root, "self")); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fakeProc) write(rel, content string) {
	f.t.Helper()
	path := filepath.Join(f.root, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeProc) link(rel, target string) {
	f.t.Helper()
	path := filepath.Join(f.root, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.t.Fatal(err)
	}
	os.Remove(path)
	if err := os.Symlink(target, path); err != nil {
		f.t.Fatal(err)
	}
}

// addProcess creates PID/stat, PID/status and PID/exe. The command name
// has spaces and parentheses, as a process may choose.
func (f *fakeProc) addProcess(pid int, startTicks uint64, exe string) {
	f.t.Helper()
	f.setStart(pid, startTicks)
	f.write(fmt.Sprintf("%d/status", pid), "Name:\tagent\nUid:\t1000\t1001\t1001\t1001\nGid:\t100\t101\t101\t101\nGroups:\t4 27 \n")
	f.link(fmt.Sprintf("%d/exe", pid), exe)
}

func (f *fakeProc) setStart(pid int, startTicks uint64) {
	f.t.Helper()
	f.write(fmt.Sprintf("%d/stat", pid), fakeStat(pid, "a) (b c", startTicks))
}

func fakeStat(pid int, comm string, startTicks uint64) string {
	return fmt.Sprintf("%d (%s) S 1 %d %d 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 %d 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
		pid, comm, pid, pid, startTicks)
}

func netListenUnix(path string) (*net.UnixListener, error) {
	return net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
}
