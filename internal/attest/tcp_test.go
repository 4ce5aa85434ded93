package attest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// acceptAddrs accepts one connection on ln, made by dial, and returns the
// accepted end's view (the server's address and the client's) and the
// dialled connection.
func acceptAddrs(t testing.TB, ln net.Listener, dial func() (net.Conn, error)) (local, remote netip.AddrPort, client net.Conn) {
	t.Helper()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	var err error
	if dial != nil {
		client, err = dial()
		if err != nil {
			t.Fatal(err)
		}
		if client != nil {
			t.Cleanup(func() { client.Close() })
		}
	}
	s, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { s.Close() })
	return s.LocalAddr().(*net.TCPAddr).AddrPort(), s.RemoteAddr().(*net.TCPAddr).AddrPort(), client
}

func TestFindTCPPeerSelf(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	ctx := context.Background()
	tests := []struct {
		name, listen, dial string
	}{
		{"ipv4", "127.0.0.1:0", "127.0.0.1"},
		{"ipv6", "[::1]:0", "::1"},
		{"ipv4 to dual-stack listener", "[::]:0", "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", tt.listen)
			if err != nil {
				t.Skipf("cannot listen on %s here: %v", tt.listen, err)
			}
			defer ln.Close()
			port := ln.Addr().(*net.TCPAddr).Port
			local, remote, _ := acceptAddrs(t, ln, func() (net.Conn, error) {
				return net.Dial("tcp", net.JoinHostPort(tt.dial, fmt.Sprint(port)))
			})
			pid, err := a.FindTCPPeer(ctx, local, remote)
			if err != nil {
				t.Fatal(err)
			}
			if pid != os.Getpid() {
				t.Errorf("FindTCPPeer = %d, want %d", pid, os.Getpid())
			}
			p, err := a.PeerFromTCP(ctx, local, remote)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if !p.Pinned() || p.PID != os.Getpid() || p.UID != os.Geteuid() {
				t.Errorf("PeerFromTCP = %+v", p)
			}
			if _, err := a.Attest(ctx, p); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFindTCPPeerChild(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var h *helper
	local, remote, _ := acceptAddrs(t, ln, func() (net.Conn, error) {
		h = startHelper(t, selfExe(t), "tcp:"+ln.Addr().String())
		return nil, nil
	})
	if h.local != remote.String() {
		t.Fatalf("child connected from %s, server saw %s", h.local, remote)
	}
	pid, err := a.FindTCPPeer(ctx, local, remote)
	if err != nil {
		t.Fatal(err)
	}
	if pid != h.pid() {
		t.Fatalf("FindTCPPeer = %d, want child %d", pid, h.pid())
	}
	// With the ends swapped it finds the server's socket: this process.
	if pid, err := a.FindTCPPeer(ctx, remote, local); err != nil || pid != os.Getpid() {
		t.Fatalf("FindTCPPeer with the ends swapped = %d, %v; want %d", pid, err, os.Getpid())
	}
	p, err := a.PeerFromTCP(ctx, local, remote)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r, err := a.Attest(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if r.PID != h.pid() {
		t.Errorf("attested pid %d, want %d", r.PID, h.pid())
	}
	h.stop()
	if _, err := a.FindTCPPeer(ctx, local, remote); !errors.Is(err, ErrNoTCPPeer) {
		t.Errorf("FindTCPPeer after the child exited = %v, want ErrNoTCPPeer", err)
	}
	if _, err := a.Attest(ctx, p); !errors.Is(err, ErrProcessGone) {
		t.Errorf("Attest after the child exited = %v, want ErrProcessGone", err)
	}
}

func TestFindTCPPeerSharedSocket(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	local, remote, client := acceptAddrs(t, ln, func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) })
	f, err := client.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	// A child inherits the client socket, as after fork: the connection
	// can no longer be pinned on one process.
	h := startHelper(t, selfExe(t), "hold", f)
	f.Close()
	_, err = a.FindTCPPeer(context.Background(), local, remote)
	if !errors.Is(err, ErrSharedSocket) {
		t.Fatalf("FindTCPPeer of a shared socket = %v, want ErrSharedSocket", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprint(h.pid())) || !strings.Contains(err.Error(), fmt.Sprint(os.Getpid())) {
		t.Errorf("error %q does not name both pids", err)
	}
}

// TestFindTCPPeerThreadFileTable: a socket that another process keeps
// open only in the file table of one of its threads (unshare(CLONE_FILES),
// then closed in the table the process's other threads share) still
// counts as held by that process, so the connection is refused as shared.
func TestFindTCPPeerThreadFileTable(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	local, remote, client := acceptAddrs(t, ln, func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) })
	f, err := client.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	h := startHelper(t, selfExe(t), "threadhold", f)
	f.Close()
	if holds, err := holdsSocket(unix.AT_FDCWD, "/proc/"+strconv.Itoa(h.pid()), socketLink(sockInodeOf(t, client))); err != nil || holds {
		t.Fatalf("the helper's main file table holds the socket (%v, %v); the test would not test threads", holds, err)
	}
	_, err = a.FindTCPPeer(context.Background(), local, remote)
	if !errors.Is(err, ErrSharedSocket) || !strings.Contains(err.Error(), fmt.Sprint(h.pid())) {
		t.Fatalf("FindTCPPeer of a socket also held in a thread's own file table = %v, want ErrSharedSocket naming pid %d", err, h.pid())
	}
}

// sockInodeOf returns the inode of a TCP connection's socket.
func sockInodeOf(t *testing.T, c net.Conn) uint64 {
	t.Helper()
	var st unix.Stat_t
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) })
	if serr != nil {
		t.Fatal(serr)
	}
	return st.Ino
}

func TestFindTCPPeerRefusals(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	ctx := context.Background()
	ap := netip.MustParseAddrPort
	tests := []struct {
		name          string
		local, remote netip.AddrPort
		want          error
		wantText      string
	}{
		{"remote host", ap("10.1.2.3:8080"), ap("10.9.9.9:40000"), nil, "only loopback"},
		{"remote client to loopback", ap("127.0.0.1:8080"), ap("192.0.2.1:40000"), nil, "only loopback"},
		{"no such connection", ap("127.0.0.1:1"), ap("127.0.0.1:2"), ErrNoTCPPeer, "127.0.0.1:2 -> 127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.FindTCPPeer(ctx, tt.local, tt.remote)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("FindTCPPeer = %v, want %v containing %q", err, tt.want, tt.wantText)
			}
			if _, err := a.PeerFromTCP(ctx, tt.local, tt.remote); err == nil {
				t.Fatal("PeerFromTCP succeeded")
			}
		})
	}
}

// The socket tables of a fake procfs, with addresses in x86 (little-endian)
// order as the kernel prints them there.
func TestFindTCPPeerFakeProc(t *testing.T) {
	if !littleEndian() {
		t.Skip("fixture is in little-endian word order")
	}
	fp := newFakeProc(t)
	fp.write("net/tcp", `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 100 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 101 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 102 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:C351 0100007F:1F90 06 00000000:00000000 03:00000D2C 00000000     0        0 0 3 0000000000000000
   4: 0100007F:C352 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 103 1 0000000000000000 20 4 30 10 -1
`)
	fp.write("net/tcp6", `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:D431 00000000000000000000000001000000:1F91 01 00000000:00000000 00:00000000 00000000  1000        0 200 1 0000000000000000 20 4 30 10 -1
   1: 0000000000000000FFFF00000100007F:D432 0000000000000000FFFF00000100007F:1F91 01 00000000:00000000 00:00000000 00000000  1000        0 201 1 0000000000000000 20 4 30 10 -1
`)
	for pid, fds := range map[int][]string{
		10: {"socket:[100]", "socket:[101]", "/dev/null"},  // the server
		20: {"pipe:[5]", "socket:[102]"},                   // the client of 50000
		30: {"socket:[103]"},                               // a client of 50002 ...
		31: {"socket:[103]", "anon_inode:[eventfd]"},       // ... that forked
		40: {"socket:[200]"},                               // an IPv6 client
		41: {"/usr/lib/libc.so.6", "socket:[201]"},         // a v4-mapped client
		50: {"socket:[1020]", "socket:[10]", "socket:[2]"}, // near misses
	} {
		for i, target := range fds {
			fp.link(fmt.Sprintf("%d/fd/%d", pid, i), target)
		}
	}
	a, _ := newTestAttestor(t, Config{ProcRoot: fp.root})
	ap := netip.MustParseAddrPort
	tests := []struct {
		name          string
		local, remote netip.AddrPort
		pid           int
		err           error
	}{
		{"ipv4", ap("127.0.0.1:8080"), ap("127.0.0.1:50000"), 20, nil},
		{"ipv4 seen as v4-mapped", ap("[::ffff:127.0.0.1]:8080"), ap("[::ffff:127.0.0.1]:50000"), 20, nil},
		{"time-wait has no inode", ap("127.0.0.1:8080"), ap("127.0.0.1:50001"), 0, ErrNoTCPPeer},
		{"forked holder", ap("127.0.0.1:8080"), ap("127.0.0.1:50002"), 0, ErrSharedSocket},
		{"ipv6", ap("[::1]:8081"), ap("[::1]:54321"), 40, nil},
		{"v4-mapped client socket", ap("127.0.0.1:8081"), ap("127.0.0.1:54322"), 41, nil},
		{"unknown", ap("127.0.0.1:8080"), ap("127.0.0.1:50003"), 0, ErrNoTCPPeer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid, err := a.FindTCPPeer(context.Background(), tt.local, tt.remote)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("FindTCPPeer = %d, %v; want %v", pid, err, tt.err)
				}
				return
			}
			if err != nil || pid != tt.pid {
				t.Fatalf("FindTCPPeer = %d, %v; want %d", pid, err, tt.pid)
			}
		})
	}
}

func littleEndian() bool {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], 1)
	return b[0] == 1
}

func TestParseHexAddrPort(t *testing.T) {
	if !littleEndian() {
		t.Skip("fixtures are in little-endian word order")
	}
	tests := []struct {
		in   string
		want string // "" for an error
	}{
		{"0100007F:1F90", "127.0.0.1:8080"},
		{"00000000:0000", "0.0.0.0:0"},
		{"0101A8C0:FFFF", "192.168.1.1:65535"},
		{"00000000000000000000000001000000:0016", "[::1]:22"},
		{"0000000000000000FFFF00000100007F:0050", "127.0.0.1:80"},
		{"B80D0120000000000000000001000000:01BB", "[2001:db8::1]:443"},
		{"0100007F", ""},
		{"0100007F:1F9", ""},
		{"0100007G:1F90", ""},
		{"0100007F:XXXX", ""},
		{"00000000000000000000000001000000FF:0016", ""},
		{":", ""},
	}
	for _, tt := range tests {
		got, err := parseHexAddrPort([]byte(tt.in))
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("parseHexAddrPort(%q) = %v, want error", tt.in, got)
		case tt.want != "" && (err != nil || got.String() != tt.want):
			t.Errorf("parseHexAddrPort(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParseTCPLine(f *testing.F) {
	f.Add([]byte("   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 101 1 0000000000000000 20 4 30 10 -1"))
	f.Add([]byte("0: 00000000000000000000000001000000:D431 00000000000000000000000001000000:1F91 01 0 0 0 1000 0 200"))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := parseTCPLine(line)
		if err != nil {
			return
		}
		if e.local.Addr().Is4In6() || e.remote.Addr().Is4In6() {
			t.Errorf("parseTCPLine(%q) kept a v4-mapped address: %+v", line, e)
		}
		if !bytes.Contains(line, []byte(fmt.Sprint(e.inode))) {
			t.Errorf("parseTCPLine(%q) invented inode %d", line, e.inode)
		}
	})
}

// benchConn returns an attestor and a loopback connection held by this
// process, as the server sees it.
func benchConn(b *testing.B, c Config) (a *Attestor, local, remote netip.AddrPort) {
	a, _ = newTestAttestor(b, c)
	if !c.NoProcEvents {
		followEventsOnEveryCPU(b, a)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	local, remote, _ = acceptAddrs(b, ln, func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) })
	return a, local, remote
}

func BenchmarkPeerFromTCP(b *testing.B) {
	a, local, remote := benchConn(b, Config{})
	ctx := context.Background()
	for b.Loop() {
		p, err := a.PeerFromTCP(ctx, local, remote)
		if err != nil {
			b.Fatal(err)
		}
		p.Close()
	}
}

// BenchmarkFindTCPPeer is the work the access proxy does once per new
// client connection: find the socket of the client end, then ask the
// socket index for its creator ("index") or scan every process for it
// ("scan").
func BenchmarkFindTCPPeer(b *testing.B) {
	for _, mode := range []string{"index", "scan"} {
		b.Run(mode, func(b *testing.B) {
			a, local, remote := benchConn(b, Config{NoSocketIndex: mode == "scan"})
			if mode == "index" && a.SocketIndex() != nil {
				b.Skipf("%v", a.SocketIndex())
			}
			ctx := context.Background()
			scans := a.scans.Load()
			for b.Loop() {
				if _, err := a.FindTCPPeer(ctx, local, remote); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(a.scans.Load()-scans)/float64(b.N), "scans/op")
		})
	}
}

// Callers that need a full scan while one runs wait for the next, which
// answers all of them: one scan of /proc for many sockets.
func TestSocketHoldersShared(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Three client sockets: held by this process, by this process and a
	// child (inherited), and by a child alone.
	_, _, mine := acceptAddrs(t, ln, func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) })
	_, _, shared := acceptAddrs(t, ln, func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) })
	f, err := shared.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	h := startHelper(t, selfExe(t), "hold", f)
	f.Close()
	var child *helper
	_, remote, _ := acceptAddrs(t, ln, func() (net.Conn, error) {
		child = startHelper(t, selfExe(t), "tcp:"+ln.Addr().String())
		return nil, nil
	})
	childInode, err := sockDiagInode(netip.MustParseAddrPort(ln.Addr().String()), remote)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64][]int{
		sockInodeOf(t, mine):   {os.Getpid()},
		sockInodeOf(t, shared): {os.Getpid(), h.pid()},
		childInode:             {child.pid()},
		1:                      nil, // no such socket
	}
	// Hold the runner so that every caller queues, then let one scan run.
	a.holderScans.mu.Lock()
	a.holderScans.running = true
	a.holderScans.mu.Unlock()
	type answer struct {
		inode uint64
		pids  []int
		err   error
	}
	answers := make(chan answer, len(want))
	for inode := range want {
		go func() {
			pids, _, err := a.socketHolders(context.Background(), inode)
			answers <- answer{inode, pids, err}
		}()
	}
	for {
		a.holderScans.mu.Lock()
		n := len(a.holderScans.queue)
		a.holderScans.mu.Unlock()
		if n == len(want) {
			break
		}
		runtime.Gosched()
	}
	scans := a.scans.Load()
	a.runHolderScans()
	for range want {
		got := <-answers
		slices.Sort(got.pids)
		w := slices.Clone(want[got.inode])
		slices.Sort(w)
		if got.err != nil || !slices.Equal(got.pids, w) {
			t.Errorf("holders of inode %d = %v, %v; want %v", got.inode, got.pids, got.err, w)
		}
	}
	if n := a.scans.Load() - scans; n != 1 {
		t.Errorf("%d scans for %d queued callers, want 1", n, len(want))
	}
	// A caller whose context ends stops waiting.
	a.holderScans.mu.Lock()
	a.holderScans.running = true
	a.holderScans.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := a.socketHolders(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("socketHolders with an ended context = %v, want context.Canceled", err)
	}
	a.runHolderScans()
}

func TestSocketInode(t *testing.T) {
	for link, want := range map[string]uint64{
		"socket:[1]": 1, "socket:[18446744073709551615]": 1<<64 - 1,
		"socket:[]": 0, "socket:[18446744073709551616]": 0, "socket:[12a]": 0, "pipe:[5]": 0,
		"socket:[5": 0, "socket:5]": 0, "/dev/null": 0, "socket:[-1]": 0, "socket:[+1]": 0,
	} {
		got, ok := socketInode([]byte(link))
		if ok != (want != 0) || got != want {
			t.Errorf("socketInode(%q) = %d, %v; want %d", link, got, ok, want)
		}
	}
}

func FuzzSocketInode(f *testing.F) {
	f.Add("socket:[123]")
	f.Add("socket:[18446744073709551616]")
	f.Fuzz(func(t *testing.T, link string) {
		got, ok := socketInode([]byte(link))
		digits, isSocket := strings.CutPrefix(link, "socket:[")
		digits, closed := strings.CutSuffix(digits, "]")
		n, err := strconv.ParseUint(digits, 10, 64)
		want := isSocket && closed && err == nil && digits != "" && digits[0] != '+'
		if ok != want || (ok && got != n) {
			t.Fatalf("socketInode(%q) = %d, %v; strconv says %d, %v", link, got, ok, n, want)
		}
	})
}

// The check after pinning takes the fd a scan of a moment ago found the
// socket at, and scans again when that fd is now another file or none.
func TestFillIDsHint(t *testing.T) {
	a, _ := newTestAttestor(t, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	local, remote, _ := acceptAddrs(t, ln, func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) })
	sock, err := a.tcpInode(local, remote)
	if err != nil {
		t.Fatal(err)
	}
	fd, held, err := a.holderFD(sock.inode, int32(os.Getpid()))
	if err != nil || !held || fd == "" {
		t.Fatalf("holderFD = %q, %v, %v; want this process's fd", fd, held, err)
	}
	for _, hint := range []string{fd, "", "0", "999999", "../../1/fd/0"} {
		p, err := pinPID(Peer{PID: os.Getpid()})
		if err != nil {
			t.Fatal(err)
		}
		inode := sock.inode
		found, err := a.fillIDs(&p, &inode, hint)
		p.Close()
		if err != nil {
			t.Fatalf("hint %q: %v", hint, err)
		}
		if found.fd != fd || found.inode != sock.inode {
			t.Errorf("hint %q: found %+v, want fd %s", hint, found, fd)
		}
	}
	// A socket the process does not hold is refused whatever the hint.
	p, err := pinPID(Peer{PID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	other := sock.inode + 1<<40
	if _, err := a.fillIDs(&p, &other, fd); !errors.Is(err, ErrProcessGone) {
		t.Fatalf("fillIDs of a socket not held, with a hint: %v, want ErrProcessGone", err)
	}
}
