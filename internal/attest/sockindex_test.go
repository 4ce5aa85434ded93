package attest

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// requireSocketIndex skips the test when the socket index cannot be
// loaded here (no CAP_BPF/CAP_SYS_ADMIN, no cgroup v2), except under
// CI=true, where the machine has both and a skip would hide a regression.
func requireSocketIndex(t *testing.T, a *Attestor) {
	t.Helper()
	if err := a.SocketIndex(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the socket index must load in CI: %v", err)
		}
		t.Skipf("socket index unavailable: %v", err)
	}
	if err := a.FollowProcessEvents(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("process events must be followed in CI: %v", err)
		}
		t.Skipf("process events unavailable: %v", err)
	}
	followEventsOnEveryCPU(t, a)
}

// followEventsOnEveryCPU subscribes a to process events and has each CPU
// report one (a process started from a thread bound to it): the first
// event seen from a CPU starts a new generation of events (what came
// before it on that CPU may be lost), and a socket created before that
// is never attributed by the index.
func followEventsOnEveryCPU(t testing.TB, a *Attestor) {
	t.Helper()
	if err := a.FollowProcessEvents(); err != nil {
		return
	}
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Fatalf("true(1) is needed: %v", err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &all)
	for cpu := range 1024 {
		if !all.IsSet(cpu) {
			continue
		}
		var one unix.CPUSet
		one.Set(cpu)
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			t.Fatal(err)
		}
		if err := exec.Command(truePath).Run(); err != nil {
			t.Fatal(err)
		}
	}
	a.events.mark() // read them
}

// A child's connection is attributed to it through the index, without a
// scan of every process's open files.
func TestSocketIndexFindsCreator(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	requireSocketIndex(t, a)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h, local, remote := helperConnects(t, ln, "tcp")
	scans, indexed := a.scans.Load(), a.indexed.Load()
	pid, err := a.FindTCPPeer(context.Background(), local, remote)
	if err != nil {
		t.Fatal(err)
	}
	if pid != h.pid() {
		t.Fatalf("FindTCPPeer = %d, want the child %d", pid, h.pid())
	}
	if got := a.scans.Load() - scans; got != 0 {
		t.Errorf("%d full scans, want none", got)
	}
	if got := a.indexed.Load() - indexed; got != 1 {
		t.Errorf("%d connections attributed by the index, want 1", got)
	}
	p, err := a.PeerFromTCP(context.Background(), local, remote)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if r, err := a.Attest(context.Background(), p); err != nil || r.PID != h.pid() {
		t.Fatalf("Attest = %+v, %v; want pid %d", r, err, h.pid())
	}
}

// A socket created by this process and inherited by a child (fork after
// creation) is not attributed by the index: the scan finds both holders.
func TestSocketIndexForkAfterCreate(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	requireSocketIndex(t, a)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	local, remote, client := acceptAddrs(t, ln, func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) })
	// Before the fork the index names this process alone.
	if pid, err := a.FindTCPPeer(context.Background(), local, remote); err != nil || pid != os.Getpid() {
		t.Fatalf("FindTCPPeer before the fork = %d, %v; want this process %d", pid, err, os.Getpid())
	}
	f, err := client.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	startHelper(t, selfExe(t), "hold", f)
	f.Close()
	indexed := a.indexed.Load()
	if _, err := a.FindTCPPeer(context.Background(), local, remote); !errors.Is(err, ErrSharedSocket) {
		t.Fatalf("FindTCPPeer after a child inherited the socket = %v, want ErrSharedSocket", err)
	}
	if a.indexed.Load() != indexed {
		t.Error("the index attributed a socket a forked child holds")
	}
}

// A process that execs after creating its socket is not attributed by the
// index (the socket's holder is now another image); the scan decides.
func TestSocketIndexExecAfterCreate(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	requireSocketIndex(t, a)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The helper connects, then execs keeping the socket.
	h, local, remote := helperConnects(t, ln, "tcpexec")
	if got := h.say(t, "exec"); got != "ready" {
		t.Fatalf("helper after exec said %q", got)
	}
	scans, indexed := a.scans.Load(), a.indexed.Load()
	pid, err := a.FindTCPPeer(context.Background(), local, remote)
	if err != nil || pid != h.pid() {
		t.Fatalf("FindTCPPeer after exec = %d, %v; want %d", pid, err, h.pid())
	}
	if a.indexed.Load() != indexed || a.scans.Load() == scans {
		t.Error("the index attributed a socket across its creator's exec; the scan must decide")
	}
}

func TestWindowForks(t *testing.T) {
	const pid, ns = 100, 1_000_000_000
	base := func() *procEvents {
		e := newTestEvents()
		e.genNS = ns - 10*windowSlackNS
		e.record(procEvent{what: procEventFork, ns: ns - 5*windowSlackNS, tgid: 1, child: 2}) // before the window
		return e
	}
	fork := func(parent, child int32, at uint64) procEvent {
		return procEvent{what: procEventFork, ns: at, tgid: parent, child: child}
	}
	tests := []struct {
		name   string
		setup  func(e *procEvents)
		want   []int32
		wantOK bool
	}{
		{"nothing since", nil, nil, true},
		{"forks since, anyone's", func(e *procEvents) {
			e.record(fork(pid, 101, ns+1))
			e.record(fork(7, 102, ns+2))
		}, []int32{102, 101}, true},
		{"a fork just before creation counts (clock slack)", func(e *procEvents) {
			e.record(fork(7, 103, ns-windowSlackNS/2))
		}, []int32{103}, true},
		{"out of order across CPUs", func(e *procEvents) {
			e.record(fork(7, 104, ns+5))
			e.record(fork(7, 105, ns-windowSlackNS-1)) // older, arrived later
			e.record(fork(7, 106, ns+3))
		}, []int32{106, 104}, true},
		{"the creator execs", func(e *procEvents) {
			e.record(procEvent{what: procEventExec, ns: ns + 1, pid: pid, tgid: pid})
		}, nil, false},
		{"another process execs", func(e *procEvents) {
			e.record(procEvent{what: procEventExec, ns: ns + 1, pid: 7, tgid: 7})
		}, nil, true},
		{"events lost since", func(e *procEvents) { e.genNS = ns + 1 }, nil, false},
		{"a generation begun just before", func(e *procEvents) { e.genNS = ns - windowSlackNS }, nil, false},
		{"too many forks", func(e *procEvents) {
			for i := range maxWindowForks + 1 {
				e.record(fork(7, int32(200+i), ns+uint64(i)))
			}
		}, nil, false},
		{"the window left the ring", func(e *procEvents) {
			for i := range touchRingSize {
				e.record(procEvent{what: procEventExit, ns: ns + uint64(i), pid: 9, tgid: 9})
			}
		}, nil, false},
		{"events stopped", func(e *procEvents) { e.err = errors.New("closed") }, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := base()
			if tt.setup != nil {
				tt.setup(e)
			}
			got, ok := e.windowForks(pid, ns)
			if ok != tt.wantOK || (ok && !equalPIDs(got, tt.want)) {
				t.Fatalf("windowForks = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func equalPIDs(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseCgroup2Root(t *testing.T) {
	tests := []struct {
		name, mountinfo, want, wantErr string
	}{
		{"hybrid", "35 25 0:29 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n" +
			"36 35 0:30 / /sys/fs/cgroup/unified rw,nosuid,relatime shared:9 - cgroup2 cgroup2 rw\n" +
			"37 35 0:31 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n", "/sys/fs/cgroup/unified", ""},
		{"unified", "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n", "/sys/fs/cgroup", ""},
		{"a sub-tree mount is not the root", "30 23 0:26 /user.slice /mnt/cg rw - cgroup2 cgroup2 rw\n" +
			"31 23 0:26 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n", "/mnt/my cg", ""},
		{"none", "30 23 0:26 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw\n", "", "no cgroup2"},
		{"garbage", "x - cgroup2\n - \n\n", "", "no cgroup2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCgroup2Root(bufio.NewScanner(strings.NewReader(tt.mountinfo)))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseCgroup2Root = %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseCgroup2Root = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func FuzzParseCgroup2Root(f *testing.F) {
	f.Add("36 35 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n")
	f.Add("31 23 0:26 / /mnt/my\\040cg\\ rw - cgroup2 cgroup2 rw\n")
	f.Add("1 2 3 / \\777 - cgroup2\n")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseCgroup2Root(bufio.NewScanner(strings.NewReader(s)))
		if err == nil && !strings.Contains(s, "cgroup2") {
			t.Fatalf("found %q in mountinfo without a cgroup2 mount", got)
		}
	})
}

// helperConnects starts a helper in mode ("tcp", "tcpexec") connecting to
// ln and returns it and the connection's ends as the server sees them.
func helperConnects(t *testing.T, ln net.Listener, mode string) (h *helper, local, remote netip.AddrPort) {
	t.Helper()
	local, remote, _ = acceptAddrs(t, ln, func() (net.Conn, error) {
		h = startHelper(t, selfExe(t), mode+":"+ln.Addr().String())
		return nil, nil
	})
	return h, local, remote
}
