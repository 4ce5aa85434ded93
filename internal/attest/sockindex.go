package attest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// The socket index: which process created each TCP socket, told by the
// kernel as the socket is created, so that the first request on a new
// connection need not scan every process's open files to find it.
//
// An eBPF program of type cgroup/sock, attached at BPF_CGROUP_INET_SOCK_CREATE
// to the root of the cgroup v2 hierarchy, runs in the context of every
// process that creates an IPv4 or IPv6 socket on the host and records
//
//	socket cookie -> { creating process (tgid), creation time (CLOCK_MONOTONIC ns) }
//
// in an LRU hash map. The socket cookie is the kernel's 64-bit id of the
// socket, never reused until reboot, and sock_diag reports it beside the
// inode, so writ finds the creator of a connection's client socket with one
// map lookup.
//
// The creator is only a candidate. The connection is attributed to it
// without a scan only when, from the socket's creation to now, the kernel's
// process events (procevents.go, timestamped by the same clock) are
// complete (no loss, none older than the ring) and show no exec of the
// creator, and no process forked in that window holds the socket: any
// process other than the creator that holds the socket got it by a fork
// after its creation (each such fork is an event in the window), or by
// SCM_RIGHTS or pidfd_getfd, which no event reports (the limit
// docs/identity.md states for kept verdicts, here from the socket's
// creation). The creator must still hold the socket. Anything else (no
// entry, an exec, too many forks, a forked process holding it, lost
// events) falls back to the full scan, which stays the ground truth.
const (
	// socketIndexEntries bounds the map; the oldest entries go first.
	socketIndexEntries = 1 << 15
	// maxWindowForks is how many processes forked since a socket's
	// creation are looked at before falling back to the full scan.
	maxWindowForks = 32
	// windowSlackNS widens the window backwards: the program's clock
	// (bpf_ktime_get_ns, the NMI-safe reader) and the connector's
	// (ktime_get_ns) are the same monotonic clock read by two routines,
	// and events from two CPUs may arrive a little out of order; a fork
	// or exec just before creation is counted rather than missed, which
	// costs at worst a scan.
	windowSlackNS = 100_000
)

// socketIndex is the loaded program, its map and its attachment.
type socketIndex struct {
	m    *ebpf.Map
	prog *ebpf.Program
	l    link.Link
}

// sockCreation is a map value: what the program writes, in host order.
type sockCreation struct {
	TGID uint64 // the creating process (low 32 bits)
	NS   uint64 // bpf_ktime_get_ns() at creation
}

// The index is process-wide: one program per writ process, however many
// Attestors it runs (tests start many).
var sharedSocketIndex struct {
	once sync.Once
	idx  *socketIndex
	err  error
}

// loadSocketIndex returns the process's socket index, loading and
// attaching it on first use, or why it cannot (no CAP_BPF/CAP_SYS_ADMIN,
// no cgroup v2 mount, a kernel without cgroup/sock programs).
func loadSocketIndex() (*socketIndex, error) {
	sharedSocketIndex.once.Do(func() {
		sharedSocketIndex.idx, sharedSocketIndex.err = newSocketIndex()
	})
	return sharedSocketIndex.idx, sharedSocketIndex.err
}

func newSocketIndex() (*socketIndex, error) {
	cg, err := cgroup2Root("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("socket index: %w", err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "writ_sock_owner",
		Type:       ebpf.LRUHash,
		KeySize:    8,
		ValueSize:  16,
		MaxEntries: socketIndexEntries,
	})
	if err != nil {
		return nil, fmt.Errorf("socket index: create map: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "writ_sock_new",
		Type:         ebpf.CGroupSock,
		AttachType:   ebpf.AttachCGroupInetSockCreate,
		License:      "Dual MIT/GPL",
		Instructions: socketIndexProgram(m.FD()),
	})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("socket index: load program: %w", err)
	}
	l, err := link.AttachCgroup(link.CgroupOptions{Path: cg, Attach: ebpf.AttachCGroupInetSockCreate, Program: prog})
	if err != nil {
		prog.Close()
		m.Close()
		return nil, fmt.Errorf("socket index: attach to cgroup %s: %w", cg, err)
	}
	return &socketIndex{m: m, prog: prog, l: l}, nil
}

// socketIndexProgram is the cgroup/sock program:
//
//	key   = bpf_get_socket_cookie(ctx)
//	value = { bpf_get_current_pid_tgid() >> 32, bpf_ktime_get_ns() }
//	bpf_map_update_elem(map, &key, &value, BPF_ANY)
//	return 1 // allow the socket: the program only watches
func socketIndexProgram(mapFD int) asm.Instructions {
	return asm.Instructions{
		// r1 = ctx (struct bpf_sock *)
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord), // key
		asm.FnGetCurrentPidTgid.Call(),
		asm.RSh.Imm(asm.R0, 32),
		asm.StoreMem(asm.RFP, -24, asm.R0, asm.DWord), // value.TGID
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.RFP, -16, asm.R0, asm.DWord), // value.NS
		asm.LoadMapPtr(asm.R1, mapFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -24),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call(),
		asm.Mov.Imm(asm.R0, 1),
		asm.Return(),
	}
}

// creator returns the process that created the socket with the given
// cookie and when, or false when the index has no entry for it (the socket
// predates the index, or its entry was evicted).
func (x *socketIndex) creator(cookie uint64) (tgid int32, ns uint64, ok bool) {
	if x == nil || cookie == 0 {
		return 0, 0, false
	}
	var v sockCreation
	if err := x.m.Lookup(&cookie, &v); err != nil {
		return 0, 0, false
	}
	return int32(uint32(v.TGID)), v.NS, true
}

// cgroup2Root returns the mount point of the cgroup v2 hierarchy (unified
// mode at /sys/fs/cgroup, hybrid mode at /sys/fs/cgroup/unified, or
// wherever mountinfo says), whose root covers every process of the host.
func cgroup2Root(mountinfo string) (string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return "", fmt.Errorf("find the cgroup v2 mount: %w", err)
	}
	defer f.Close()
	root, err := parseCgroup2Root(bufio.NewScanner(f))
	if err != nil {
		return "", fmt.Errorf("find the cgroup v2 mount in %s: %w", mountinfo, err)
	}
	return root, nil
}

// parseCgroup2Root reads mountinfo lines:
//
//	36 35 0:30 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw
//
// and returns the mount point of the first cgroup2 mount of the
// hierarchy's root ("/").
func parseCgroup2Root(sc *bufio.Scanner) (string, error) {
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		if fs, _, _ := strings.Cut(post, " "); fs != "cgroup2" {
			continue
		}
		f := strings.Fields(pre)
		if len(f) < 5 || f[3] != "/" {
			continue
		}
		return unescapeMountPath(f[4]), nil
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no cgroup2 file system is mounted")
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOctal(s[i+1:i+4]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := range 3 {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return s[0] <= '3'
}
