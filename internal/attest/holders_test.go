package attest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"unsafe"

	"golang.org/x/sys/unix"
)

// eventAttestor returns an attestor that follows process events, with a
// first event read from every CPU the test may run on (the first event
// seen from a CPU voids every verdict, which would make scan counts vary).
// It skips where the kernel gives no events (not root, another pid
// namespace), except under CI, which runs as root.
func eventAttestor(t *testing.T) *Attestor {
	t.Helper()
	a, _ := newTestAttestor(t, Config{})
	t.Cleanup(func() { a.Close() })
	e := a.procEvents()
	if e == nil || e.err != nil {
		var err error
		if e != nil {
			err = e.err
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("process events unavailable under CI: %v", err)
		}
		t.Skipf("process events unavailable: %v", err)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for cpu := range 1024 {
		if !set.IsSet(cpu) {
			continue
		}
		wg.Go(func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			var one unix.CPUSet
			one.Set(cpu)
			if unix.SchedSetaffinity(0, &one) == nil {
				name := []byte("attest.test\x00")
				unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0) // a comm event on cpu
			}
		})
	}
	wg.Wait()
	e.mark()
	return a
}

// scansDuring returns how many full holder scans fn made.
func scansDuring(a *Attestor, fn func()) int64 {
	before := a.scans.Load()
	fn()
	return a.scans.Load() - before
}

// A verdict is kept across calls, and across a child that exec'd without
// the socket; a child that inherits it makes the next call refuse.
func TestHolderVerdictKept(t *testing.T) {
	a := eventAttestor(t)
	ctx := context.Background()
	s, c := unixPair(t)
	p, err := PeerFromUnixConn(s)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if n := scansDuring(a, func() { mustAttest(t, a, p) }); n != 1 {
		t.Fatalf("first call made %d scans, want 1", n)
	}
	if n := scansDuring(a, func() {
		for range 5 {
			mustAttest(t, a, p)
		}
	}); n != 0 {
		t.Fatalf("5 later calls made %d scans, want 0", n)
	}
	startSleep(t) // forked, exec'd: the close-on-exec socket is gone
	if n := scansDuring(a, func() { mustAttest(t, a, p) }); n != 0 {
		t.Fatalf("after a child without the socket: %d scans, want 0 (the child is looked at alone)", n)
	}

	f, err := c.File() // a second fd of the client end, which the child keeps
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := startHelper(t, selfExe(t), "hold", f)
	if _, err := a.Attest(ctx, p); !errors.Is(err, ErrSocketHandedOver) {
		t.Fatalf("after a fork that kept the socket (pid %d): err = %v, want ErrSocketHandedOver", h.pid(), err)
	}
	h.stop()
	if n := scansDuring(a, func() { mustAttest(t, a, p) }); n != 1 {
		t.Fatalf("after the child ended: %d scans, want 1", n)
	}
}

func mustAttest(t *testing.T, a *Attestor, p Peer) Result {
	t.Helper()
	r, err := a.Attest(context.Background(), p)
	if err != nil {
		if errors.Is(err, ErrUnixDiagUnavailable) {
			t.Skipf("no unix sock_diag in this kernel: %v", err)
		}
		t.Fatal(err)
	}
	return r
}

// handoffHelper starts a helper that connects to a fresh listener with a
// socket that survives exec, with sock given as its fd 3, and returns it
// with the peer of its connection.
func handoffHelper(t *testing.T, sock *os.File) (*helper, Peer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var extra []*os.File
	if sock != nil {
		extra = append(extra, sock)
	}
	h := startHelper(t, selfExe(t), "handoff:"+path, extra...)
	s, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	p, err := PeerFromUnixConn(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if p.PID != h.pid() {
		t.Fatalf("peer pid %d, helper pid %d", p.PID, h.pid())
	}
	return h, p
}

// An exec of the holder voids its verdict: the next call scans again.
func TestHolderVerdictExec(t *testing.T) {
	a := eventAttestor(t)
	h, p := handoffHelper(t, nil)
	mustAttest(t, a, p)
	if n := scansDuring(a, func() { mustAttest(t, a, p) }); n != 0 {
		t.Fatalf("second call: %d scans, want 0", n)
	}
	if got := h.say(t, "exec"); got != "ready" {
		t.Fatalf("helper exec: %q", got)
	}
	// The same executable again: only the exec event tells.
	if n := scansDuring(a, func() { mustAttest(t, a, p) }); n != 1 {
		t.Fatalf("after exec: %d scans, want 1", n)
	}
}

// The connecting process passes its socket to another process over
// SCM_RIGHTS and execs: refused, although no fork took place.
func TestHolderVerdictFDPassingThenExec(t *testing.T) {
	a := eventAttestor(t)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pair[0])
	theirs := os.NewFile(uintptr(pair[1]), "pair")
	h, p := handoffHelper(t, theirs)
	theirs.Close()
	mustAttest(t, a, p) // the verdict: the helper alone holds it

	if got := h.say(t, "send"); got != "sent <nil>" {
		t.Fatalf("helper send: %q", got)
	}
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(pair[0], buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages %v: %v", msgs, err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("passed fds %v: %v", fds, err)
	}
	defer unix.Close(fds[0]) // this test process now holds the client end too

	if got := h.say(t, "exec"); got != "ready" {
		t.Fatalf("helper exec: %q", got)
	}
	_, err = a.Attest(context.Background(), p)
	if !errors.Is(err, ErrSocketHandedOver) {
		t.Fatalf("after fd passing and exec: err = %v, want ErrSocketHandedOver", err)
	}
}

// Lost events (the receive buffer overflowed) void every verdict: the next
// call scans, and keeps a new verdict.
func TestHolderVerdictEventLoss(t *testing.T) {
	a := eventAttestor(t)
	p := selfPeer(t)
	mustAttest(t, a, p)
	e := a.events
	e.mu.Lock()
	err := unix.SetsockoptInt(e.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1) // the kernel's minimum: a few events
	gen := e.gen
	e.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		if err := exec.Command("true").Run(); err != nil {
			t.Fatal(err)
		}
	}
	if n := scansDuring(a, func() { mustAttest(t, a, p) }); n != 1 {
		t.Fatalf("after lost events: %d scans, want 1", n)
	}
	e.mu.Lock()
	lost := e.gen > gen
	unix.SetsockoptInt(e.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, procEventsRcvBuf)
	e.mu.Unlock()
	if !lost {
		t.Fatal("the overflow was not noticed")
	}
	// Events may have been lost again while the buffer was small; within
	// a few calls a verdict is kept again and a call costs no scan.
	for i := 0; ; i++ {
		if n := scansDuring(a, func() { mustAttest(t, a, p) }); n == 0 {
			break
		}
		if i == 5 {
			t.Fatal("no verdict kept after the buffer was restored")
		}
	}
}

// Without process events every call scans, as before the index.
func TestHolderNoProcEvents(t *testing.T) {
	a, _ := newTestAttestor(t, Config{NoProcEvents: true})
	p := selfPeer(t)
	if n := scansDuring(a, func() {
		for range 3 {
			mustAttest(t, a, p)
		}
	}); n != 3 {
		t.Fatalf("3 calls made %d scans, want 3", n)
	}
}

// A proxy connection's process forks a child that keeps the socket after
// the connection was attributed: the next check refuses it as shared.
func TestWatchImageForkAfterIdentify(t *testing.T) {
	a := eventAttestor(t)
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	local, remote, client := acceptAddrs(t, ln, func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) })
	p, err := a.PeerFromTCP(ctx, local, remote)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	res, err := a.Attest(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	w, err := a.WatchImage(p, res)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if n := scansDuring(a, func() {
		for range 5 {
			if err := w.Check(); err != nil {
				t.Fatal(err)
			}
		}
	}); n != 0 {
		t.Fatalf("5 checks made %d scans, want 0", n)
	}
	f, err := client.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	h := startHelper(t, selfExe(t), "hold", f)
	f.Close()
	if err := w.Check(); !errors.Is(err, ErrSharedSocket) {
		t.Fatalf("after a child kept the connection (pid %d): err = %v, want ErrSharedSocket", h.pid(), err)
	}
	h.stop()
	if err := w.Check(); err != nil {
		t.Fatalf("after the child ended: %v", err)
	}
}

// procEventMsg builds one connector datagram as the kernel sends it.
func procEventMsg(what, cpu, seq uint32, data ...uint32) []byte {
	ne := binary.NativeEndian
	ev := make([]byte, sizeofProcEvent+24)
	ne.PutUint32(ev[0:], what)
	ne.PutUint32(ev[4:], cpu)
	for i, d := range data {
		ne.PutUint32(ev[sizeofProcEvent+4*i:], d)
	}
	b := make([]byte, unix.NLMSG_HDRLEN+sizeofCnMsg, unix.NLMSG_HDRLEN+sizeofCnMsg+len(ev))
	ne.PutUint32(b[0:], uint32(cap(b)))
	ne.PutUint16(b[4:], unix.NLMSG_DONE)
	cn := b[unix.NLMSG_HDRLEN:]
	ne.PutUint32(cn[0:], cnIdxProc)
	ne.PutUint32(cn[4:], cnValProc)
	ne.PutUint32(cn[8:], seq)
	ne.PutUint16(cn[16:], uint16(len(ev)))
	return append(b, ev...)
}

func newTestEvents() *procEvents {
	return &procEvents{fd: -1, cpuSeq: map[uint32]uint32{}, watch: map[int32]map[*holderVerdict]struct{}{}, log: slog.New(slog.DiscardHandler)}
}

// The rules that void or keep a verdict, and sequence gaps, on events made
// up here.
func TestProcEventRules(t *testing.T) {
	const holder, parent, other = 100, 50, 200
	setup := func(t *testing.T) (*procEvents, *holderVerdict) {
		e := newTestEvents()
		mustHandle(t, e, procEventMsg(procEventFork, 0, 7, 1, 1, 2, 2)) // first from CPU 0
		mustHandle(t, e, procEventMsg(procEventFork, 1, 3, 1, 1, 3, 3)) // first from CPU 1
		m := eventMark{gen: e.gen, n: e.n}
		v := &holderVerdict{pid: holder, ppid: parent, inode: 9}
		if !e.commit(m, v) {
			t.Fatal("commit refused")
		}
		return e, v
	}
	notHeld := func(int32) (bool, error) { return false, nil }
	tests := []struct {
		name    string
		msgs    [][]byte
		holds   func(int32) (bool, error)
		current bool
	}{
		{"nothing", nil, nil, true},
		{"another process forks", [][]byte{procEventMsg(procEventFork, 0, 8, other, other, 300, 300)}, nil, true},
		{"the holder starts a thread", [][]byte{procEventMsg(procEventFork, 0, 8, parent, parent, 101, holder)}, nil, true},
		{"the holder forks a child that dropped it", [][]byte{procEventMsg(procEventFork, 0, 8, holder, holder, 301, 301)}, notHeld, true},
		{"the holder forks a child that holds it", [][]byte{procEventMsg(procEventFork, 0, 8, holder, holder, 301, 301)}, func(pid int32) (bool, error) { return pid == 301, nil }, false},
		{"a sibling (clone CLONE_PARENT) holds it", [][]byte{procEventMsg(procEventFork, 0, 8, parent, parent, 302, 302)}, func(pid int32) (bool, error) { return pid == 302, nil }, false},
		{"a grandchild holds it", [][]byte{
			procEventMsg(procEventFork, 0, 8, holder, holder, 301, 301),
			procEventMsg(procEventFork, 1, 4, 301, 301, 303, 303),
		}, func(pid int32) (bool, error) { return pid == 303, nil }, false},
		{"a suspect cannot be inspected", [][]byte{procEventMsg(procEventFork, 0, 8, holder, holder, 301, 301)}, func(int32) (bool, error) { return false, unix.EACCES }, false},
		{"the holder execs", [][]byte{procEventMsg(procEventExec, 0, 8, holder, holder)}, nil, false},
		{"a thread of the holder execs", [][]byte{procEventMsg(procEventExec, 0, 8, 104, holder)}, nil, false},
		{"the parent exits", [][]byte{procEventMsg(procEventExit, 0, 8, parent, parent)}, nil, false},
		{"another process execs and exits", [][]byte{procEventMsg(procEventExec, 0, 8, other, other), procEventMsg(procEventExit, 0, 9, other, other)}, nil, true},
		{"a gap in CPU 0's sequence", [][]byte{procEventMsg(procEventExec, 0, 9, other, other)}, nil, false},
		{"an event from a new CPU", [][]byte{procEventMsg(procEventExec, 5, 1, other, other)}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, v := setup(t)
			for _, m := range tt.msgs {
				mustHandle(t, e, m)
			}
			holds := tt.holds
			if holds == nil {
				holds = func(pid int32) (bool, error) {
					t.Fatalf("looked at pid %d, which is no suspect", pid)
					return false, nil
				}
			}
			if got := v.current(holds); got != tt.current {
				t.Fatalf("current = %v, want %v", got, tt.current)
			}
		})
	}
}

func mustHandle(t *testing.T, e *procEvents, b []byte) {
	t.Helper()
	if _, err := e.handle(b, 0); err != nil {
		t.Fatal(err)
	}
}

// A verdict whose scan overlapped an exec of the holder is not kept; one
// whose scan overlapped a fork keeps the child as a suspect.
func TestProcEventCommitWindow(t *testing.T) {
	e := newTestEvents()
	mustHandle(t, e, procEventMsg(procEventFork, 0, 1, 1, 1, 2, 2))
	m := eventMark{gen: e.gen, n: e.n}
	mustHandle(t, e, procEventMsg(procEventExec, 0, 2, 100, 100))
	if e.commit(m, &holderVerdict{pid: 100, ppid: 50}) {
		t.Fatal("kept a verdict across the holder's exec")
	}
	m = eventMark{gen: e.gen, n: e.n}
	mustHandle(t, e, procEventMsg(procEventFork, 0, 3, 100, 100, 101, 101))
	v := &holderVerdict{pid: 100, ppid: 50}
	if !e.commit(m, v) {
		t.Fatal("refused a verdict across a fork")
	}
	if _, ok := v.suspects[101]; !ok {
		t.Fatalf("suspects = %v, want the child 101", v.suspects)
	}
}

func TestProcEventMalformed(t *testing.T) {
	good := procEventMsg(procEventFork, 0, 1, 1, 1, 2, 2)
	for name, b := range map[string][]byte{
		"short header":  good[:10],
		"short cn_msg":  withLen(good[:unix.NLMSG_HDRLEN+8]),
		"short event":   withLen(good[:unix.NLMSG_HDRLEN+sizeofCnMsg+12]),
		"length beyond": func() []byte { c := append([]byte(nil), good...); binary.NativeEndian.PutUint32(c, 4096); return c }(),
	} {
		if _, err := newTestEvents().handle(b, 0); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func withLen(b []byte) []byte {
	c := append([]byte(nil), b...)
	binary.NativeEndian.PutUint32(c, uint32(len(c)))
	return c
}

func FuzzProcEvents(f *testing.F) {
	f.Add(procEventMsg(procEventFork, 0, 1, 1, 1, 2, 2))
	f.Add(procEventMsg(procEventExec, 1, 1, 5, 5))
	f.Add(append(procEventMsg(procEventExit, 0, 1, 5, 5), procEventMsg(procEventNone, 0, 0, 1)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		e := newTestEvents()
		v := &holderVerdict{pid: 5, ppid: 1}
		e.commit(eventMark{}, v)
		if acked, _ := e.handle(b, 0); acked {
			t.Fatal("an answer taken for the subscription's without being asked for")
		}
	})
}

// BenchmarkAttestUnixPeer is one Workload API call's attestation of a
// connection's process (the test process, on a real unix connection),
// holder check included: events=on keeps the first call's verdict,
// events=off scans every process's open files on every call.
func BenchmarkAttestUnixPeer(b *testing.B) {
	for _, on := range []bool{true, false} {
		b.Run(fmt.Sprintf("events=%v", map[bool]string{true: "on", false: "off"}[on]), func(b *testing.B) {
			a, _ := newTestAttestor(b, Config{NoProcEvents: !on})
			b.Cleanup(func() { a.Close() })
			if on && a.FollowProcessEvents() != nil {
				b.Skip("no process events here")
			}
			p := selfPeer(b)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Attest(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(a.scans.Load())/float64(b.N), "scans/op")
		})
	}
}
