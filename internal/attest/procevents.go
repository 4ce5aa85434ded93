package attest

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Process events: what lets writ keep the verdict of a holder scan
// instead of scanning every process's open files again on every call.
//
// A holder scan ([Attestor.checkSoleHolder], [Attestor.PeerFromTCP])
// finds that one process, and no other, holds the client end of a
// connection. Afterwards another process can come to hold it only so:
//
//   - the holder forks, or clones a process that copies or shares its file
//     table. The kernel reports a fork event naming the holder as the
//     parent, or the holder's parent for clone(CLONE_PARENT); the child is
//     then a suspect, and so are the children it forks in turn;
//   - the holder passes it over a unix socket (SCM_RIGHTS), or a process
//     allowed to ptrace the holder takes a copy (pidfd_getfd(2)). No event
//     reports either. Both are acts of the holder's own image (or of a
//     process that can read its memory anyway); the holder's exec, which
//     would hand such a copy another image's identity, is reported and
//     voids the verdict.
//
// So writ follows the kernel's process events (the proc connector,
// NETLINK_CONNECTOR / CN_IDX_PROC). A verdict is current while the holder
// has not exec'd, its parent has not exited (which would change whose
// clone(CLONE_PARENT) children are its), and no suspect holds the socket:
// each suspect's open files are looked at once, instead of every
// process's. Every check first reads every event the kernel has queued:
// the kernel queues a fork's event before the child first runs and an
// exec's before the new image runs, so a check never relies on a verdict
// across an event it has not read. A lost event fails closed: the
// kernel's report that it dropped events (ENOBUFS), a gap in the per-CPU
// sequence numbers the kernel puts on every event (one it could not
// allocate), and the first event seen from a CPU each void every verdict.
// Without the connector (no CAP_NET_ADMIN, or writ outside the initial pid
// and user namespaces) nothing is kept and every check scans.
//
// The messages are fixed kernel ABI (linux/connector.h, linux/cn_proc.h),
// host byte order:
//
//	struct cn_msg     { u32 idx, val; u32 seq, ack; u16 len, flags; }        // 20 bytes, then data
//	struct proc_event { u32 what, cpu; u64 timestamp_ns; union event_data; } // event_data at 16
//	  fork: u32 parent_pid, parent_tgid, child_pid, child_tgid
//	  exec: u32 process_pid, process_tgid
//	  exit: u32 process_pid, process_tgid, exit_code, exit_signal, ...
//	  ack:  u32 err
const (
	cnIdxProc         = 1
	cnValProc         = 1
	sizeofCnMsg       = 20
	sizeofProcEvent   = 16 // without event_data
	procCnMcastListen = 1

	procEventNone = 0x00000000
	procEventFork = 0x00000001
	procEventExec = 0x00000002
	procEventExit = 0x80000000

	// procEventsRcvBuf is the receive buffer asked for: room for
	// thousands of events between two checks.
	procEventsRcvBuf = 4 << 20
	// touchRingSize is how many recent events are remembered for verdicts
	// whose scan started before they were registered.
	touchRingSize = 4096
	// maxSuspectRounds bounds how often a check looks at suspects again
	// because they forked while being looked at.
	maxSuspectRounds = 4
)

// procEvents follows the kernel's process events. It is safe for
// concurrent use.
type procEvents struct {
	mu  sync.Mutex
	fd  int   // -1 once closed
	err error // non-nil: events are not followed, no verdict is current
	gen uint64
	// genNS is when gen last changed (CLOCK_MONOTONIC ns): events from
	// then on are complete.
	genNS uint64
	// n counts events that matter; ring holds the last touchRingSize.
	n      uint64
	ring   [touchRingSize]procEvent
	cpuSeq map[uint32]uint32
	// watch holds the registered verdicts by the pids whose events change
	// them: the holder, its parent and its suspects.
	watch map[int32]map[*holderVerdict]struct{}
	buf   []byte
	from  unix.RawSockaddrNetlink // the sender of the last datagram read
	log   *slog.Logger
}

// procEvent is a fork (of a process, not a thread), exec or exit.
type procEvent struct {
	what  uint32
	ns    uint64 // the kernel's timestamp_ns (CLOCK_MONOTONIC)
	tgid  int32  // the parent for a fork
	child int32  // for a fork
	pid   int32  // the thread, for exec and exit
}

// holderVerdict is the result of a holder scan: pid, and no other
// process, held the socket inode (under fd number fd) while it ran exe.
type holderVerdict struct {
	pid, ppid int32
	inode     uint64
	fd        string
	exe       fileKey

	// Guarded by events.mu:
	events   *procEvents
	gen      uint64
	dead     bool
	suspects map[int32]struct{}
}

// eventMark is the state of a procEvents before a holder scan.
type eventMark struct {
	gen, n uint64
}

// openProcEvents subscribes to the kernel's process events. When that
// fails, the result says why from err and keeps no verdict.
func openProcEvents(log *slog.Logger) *procEvents {
	e := &procEvents{fd: -1, cpuSeq: map[uint32]uint32{}, watch: map[int32]map[*holderVerdict]struct{}{}, buf: make([]byte, 4096), log: log}
	if err := e.open(); err != nil {
		e.err = err
		if e.fd >= 0 {
			unix.Close(e.fd)
			e.fd = -1
		}
	}
	return e
}

func (e *procEvents) open() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return fmt.Errorf("open proc connector socket: %w", err)
	}
	e.fd = fd
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		return fmt.Errorf("join the proc connector group: %w", err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, procEventsRcvBuf) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, procEventsRcvBuf)
	}
	var nonce [4]byte
	rand.Read(nonce[:])
	ack := binary.NativeEndian.Uint32(nonce[:]) | 1
	for {
		err = unix.Sendto(fd, listenRequest(ack), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("subscribe to process events: %w", err)
	}
	// The kernel handles the request inside sendto and broadcasts its
	// answer to the group; it answers nothing when it ignores the request
	// (writ is not in the initial pid and user namespaces).
	for {
		n, from, err := unix.Recvfrom(fd, e.buf, unix.MSG_DONTWAIT)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return errors.New("subscribe to process events: the kernel did not answer (writ must run in the initial pid and user namespaces)")
		case err != nil:
			return fmt.Errorf("subscribe to process events: %w", err)
		}
		if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
			continue
		}
		acked, err := e.handle(e.buf[:n], ack+1)
		if err != nil {
			return fmt.Errorf("subscribe to process events: %w", err)
		}
		if acked {
			e.genNS = monotonicNS() // complete from here on
			return nil
		}
	}
}

// listenRequest is a netlink message asking for every process event.
func listenRequest(ack uint32) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN+sizeofCnMsg+4)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.NLMSG_DONE)
	cn := b[unix.NLMSG_HDRLEN:]
	ne.PutUint32(cn[0:], cnIdxProc)
	ne.PutUint32(cn[4:], cnValProc)
	ne.PutUint32(cn[12:], ack)
	ne.PutUint16(cn[16:], 4)
	ne.PutUint32(cn[sizeofCnMsg:], procCnMcastListen)
	return b
}

// handle processes one datagram from the connector. wantAck, when not 0,
// is the ack number of the answer to writ's subscription: handle reports
// whether the datagram held it, and fails if the kernel refused. A
// malformed datagram is an error, which the caller counts as lost events.
func (e *procEvents) handle(b []byte, wantAck uint32) (acked bool, err error) {
	ne := binary.NativeEndian
	for len(b) > 0 {
		_, _, body, rest, err := splitNetlink(b, "process event")
		if err != nil {
			return acked, err
		}
		b = rest
		if len(body) < sizeofCnMsg {
			return acked, fmt.Errorf("parse process event: connector message of %d bytes", len(body))
		}
		if ne.Uint32(body[0:]) != cnIdxProc || ne.Uint32(body[4:]) != cnValProc {
			continue
		}
		seq, ackNo := ne.Uint32(body[8:]), ne.Uint32(body[12:])
		data := body[sizeofCnMsg:]
		if dlen := int(ne.Uint16(body[16:])); dlen < len(data) {
			data = data[:dlen]
		}
		if len(data) < sizeofProcEvent+8 {
			return acked, fmt.Errorf("parse process event: event of %d bytes", len(data))
		}
		what, cpu, ns := ne.Uint32(data[0:]), ne.Uint32(data[4:]), ne.Uint64(data[8:])
		ev := data[sizeofProcEvent:]
		if what == procEventNone {
			if wantAck != 0 && ackNo == wantAck {
				if errno := ne.Uint32(ev[0:]); errno != 0 {
					return true, fmt.Errorf("the kernel refused: %w (writ needs CAP_NET_ADMIN)", unix.Errno(errno))
				}
				acked = true
			}
			continue // an answer to another listener
		}
		if last, ok := e.cpuSeq[cpu]; !ok || seq != last+1 {
			// What may be missing came before this event.
			e.lost(fmt.Sprintf("event %d is the first seen from CPU %d since %d", seq, cpu, last), ns)
		}
		e.cpuSeq[cpu] = seq
		switch what {
		case procEventFork:
			if len(ev) < 16 {
				return acked, fmt.Errorf("parse process event: fork event of %d bytes", len(ev))
			}
			if child, childTGID := ne.Uint32(ev[8:]), ne.Uint32(ev[12:]); child == childTGID { // a process, not a thread
				e.record(procEvent{what: what, ns: ns, tgid: int32(ne.Uint32(ev[4:])), child: int32(child)})
			}
		case procEventExec, procEventExit:
			e.record(procEvent{what: what, ns: ns, pid: int32(ne.Uint32(ev[0:])), tgid: int32(ne.Uint32(ev[4:]))})
		}
	}
	return acked, nil
}

// record keeps ev in the ring and applies it to the verdicts it concerns.
func (e *procEvents) record(ev procEvent) {
	e.n++
	e.ring[e.n%touchRingSize] = ev
	for v := range e.watch[ev.tgid] {
		e.apply(v, ev)
	}
}

// apply changes v for ev, an event of a process v watches.
func (e *procEvents) apply(v *holderVerdict, ev procEvent) {
	if v.dead {
		return
	}
	switch ev.what {
	case procEventFork:
		_, suspect := v.suspects[ev.tgid]
		if ev.tgid == v.pid || ev.tgid == v.ppid || suspect {
			if v.suspects == nil {
				v.suspects = map[int32]struct{}{}
			}
			v.suspects[ev.child] = struct{}{}
			e.watchFor(ev.child, v)
		}
	case procEventExec:
		if ev.tgid == v.pid {
			e.kill(v) // another image: the verdict was about the old one
		}
	case procEventExit:
		if ev.tgid == v.ppid {
			e.kill(v) // the holder may be reparented: its parent is unknown
		}
	}
}

func (e *procEvents) watchFor(pid int32, v *holderVerdict) {
	vs := e.watch[pid]
	if vs == nil {
		vs = map[*holderVerdict]struct{}{}
		e.watch[pid] = vs
	}
	vs[v] = struct{}{}
}

func (e *procEvents) unwatch(pid int32, v *holderVerdict) {
	if vs := e.watch[pid]; vs != nil {
		delete(vs, v)
		if len(vs) == 0 {
			delete(e.watch, pid)
		}
	}
}

// kill voids v and unregisters it.
func (e *procEvents) kill(v *holderVerdict) {
	v.dead = true
	e.unwatch(v.pid, v)
	e.unwatch(v.ppid, v)
	for s := range v.suspects {
		e.unwatch(s, v)
	}
}

// lost voids every verdict: an event may have been missed.
// Events from since are complete again (the events of a new
// generation).
func (e *procEvents) lost(why string, since uint64) {
	if len(e.watch) > 0 {
		e.log.Debug("process events lost; holder verdicts dropped", "reason", why)
	}
	e.newGen(since)
	clear(e.watch)
}

// newGen starts a generation, complete from since: verdicts and windows
// from before are void.
func (e *procEvents) newGen(since uint64) {
	e.gen++
	e.genNS = max(e.genNS, since)
}

// monotonicNS is CLOCK_MONOTONIC in nanoseconds, the clock of the
// kernel's event timestamps and of bpf_ktime_get_ns.
func monotonicNS() uint64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return ^uint64(0) // no window can be complete
	}
	return uint64(ts.Nano())
}

// drain handles every event the kernel has queued. Called with e.mu held.
func (e *procEvents) drain() {
	if e.fd < 0 {
		return // closed (then e.err is set), or made up by a test
	}
	for e.err == nil {
		n, err := e.recv()
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return
		case err == unix.ENOBUFS:
			e.lost("the kernel dropped events (receive buffer full)", monotonicNS())
			continue
		case err != nil:
			e.fail(fmt.Errorf("receive process events: %w", err))
			return
		}
		if e.from.Family != unix.AF_NETLINK || e.from.Pid != 0 {
			continue // not from the kernel
		}
		if _, err := e.handle(e.buf[:n], 0); err != nil {
			e.lost(err.Error(), monotonicNS())
		}
	}
}

// recv reads one datagram into e.buf without waiting, and its sender into
// e.from. It is recvfrom(2) without the allocations of unix.Recvfrom: the
// drain runs on every Workload API call and every proxied request, and
// almost always finds nothing. Called with e.mu held.
func (e *procEvents) recv() (int, error) {
	e.from = unix.RawSockaddrNetlink{}
	fromLen := uint32(unix.SizeofSockaddrNetlink)
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(e.fd), uintptr(unsafe.Pointer(&e.buf[0])), uintptr(len(e.buf)),
		unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&e.from)), uintptr(unsafe.Pointer(&fromLen)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// fail stops following events for good. Called with e.mu held.
func (e *procEvents) fail(err error) {
	e.log.Warn("process events stopped; every holder check scans /proc from now on", "error", err)
	e.err = err
	e.newGen(monotonicNS())
	clear(e.watch)
	if e.fd >= 0 {
		unix.Close(e.fd)
		e.fd = -1
	}
}

// mark returns the state before a holder scan, and false when events are
// not followed.
func (e *procEvents) mark() (eventMark, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.drain()
	return eventMark{gen: e.gen, n: e.n}, e.err == nil
}

// commit registers v, the result of a scan that started at m, after
// applying the events since m: a fork by the holder or its parent makes
// the child a suspect; an exec of the holder, an exit of its parent or
// lost events leave v unregistered, and commit reports false.
func (e *procEvents) commit(m eventMark, v *holderVerdict) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.drain()
	if e.err != nil || e.gen != m.gen || e.n-m.n >= touchRingSize {
		return false
	}
	v.events, v.gen, v.dead = e, e.gen, false
	e.watchFor(v.pid, v)
	e.watchFor(v.ppid, v)
	for i := m.n + 1; i <= e.n; i++ {
		ev := e.ring[i%touchRingSize]
		if _, suspect := v.suspects[ev.tgid]; ev.tgid == v.pid || ev.tgid == v.ppid || suspect {
			e.apply(v, ev)
		}
	}
	return !v.dead
}

// current reports whether v still holds after every queued event is read:
// the holder has not exec'd, its parent has not exited, no events were
// lost, and holds reports of no suspect that it holds the socket. A
// suspect holds reports as not holding (it closed the socket, exec'd with
// it closed, or exited) is dropped.
func (v *holderVerdict) current(holds func(pid int32) (bool, error)) bool {
	e := v.events
	e.mu.Lock()
	defer e.mu.Unlock()
	for range maxSuspectRounds {
		e.drain()
		if e.err != nil || v.gen != e.gen || v.dead {
			return false
		}
		if len(v.suspects) == 0 {
			return true
		}
		// Look at each suspect, then read the events queued meanwhile:
		// a suspect that forked before it closed the socket has made a
		// new suspect, which the next round looks at.
		var cleared []int32
		for s := range v.suspects {
			h, err := holds(s)
			if err != nil || h {
				e.kill(v)
				return false
			}
			cleared = append(cleared, s)
		}
		e.drain()
		if e.err != nil || v.gen != e.gen || v.dead {
			return false
		}
		for _, s := range cleared {
			delete(v.suspects, s)
			e.unwatch(s, v)
		}
	}
	return len(v.suspects) == 0
}

// release unregisters v. It is safe to call on nil and more than once.
func (v *holderVerdict) release() {
	if v == nil || v.events == nil {
		return
	}
	e := v.events
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gen == v.gen {
		e.kill(v)
	}
	v.dead = true
}

// close stops following events.
func (e *procEvents) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fd >= 0 {
		unix.Close(e.fd)
		e.fd = -1
	}
	if e.err == nil {
		e.err = errors.New("process events closed")
	}
	e.newGen(monotonicNS())
	clear(e.watch)
}

// windowForks reports, for a socket created by process pid at ns (the
// socket index's CLOCK_MONOTONIC timestamp), the processes forked since
// then, after reading every queued event. It returns false when that
// cannot be known or is too much: events since then were lost, or have
// left the ring; pid exec'd since (the socket's holder is now another
// image); more than maxWindowForks processes were forked.
//
// Events from different CPUs may arrive slightly out of timestamp order,
// so the walk back stops only at an event older than the window by
// another windowSlackNS.
func (e *procEvents) windowForks(pid int32, ns uint64) ([]int32, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.drain()
	if e.err != nil || ns < 2*windowSlackNS {
		return nil, false
	}
	from := ns - windowSlackNS
	if e.genNS >= from-windowSlackNS {
		return nil, false // the generation began inside the window
	}
	var children []int32
	oldest := uint64(1)
	if e.n >= touchRingSize {
		oldest = e.n - touchRingSize + 1
	}
	for i := e.n; i >= oldest && i > 0; i-- {
		ev := e.ring[i%touchRingSize]
		if ev.ns < from-windowSlackNS {
			return children, true
		}
		if ev.ns < from {
			continue
		}
		switch ev.what {
		case procEventFork:
			if len(children) == maxWindowForks {
				return nil, false
			}
			children = append(children, ev.child)
		case procEventExec:
			if ev.tgid == pid {
				return nil, false
			}
		}
	}
	// Every event recorded is in the ring; those before the first are
	// forgotten, and may have been in the window.
	return children, oldest == 1
}
