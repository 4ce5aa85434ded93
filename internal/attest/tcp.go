package attest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

var (
	// ErrNoTCPPeer reports that no local process holds the client end of
	// a TCP connection: it closed, or it comes from another host or
	// network namespace.
	ErrNoTCPPeer = errors.New("no local process holds the client end of the connection")

	// ErrSharedSocket reports that the client end of a TCP connection is
	// open in more than one process (inherited across fork or passed over
	// a socket), so the connection cannot be attributed to one of them.
	ErrSharedSocket = errors.New("the client end of the connection is open in more than one process")
)

// PeerFromPID returns the process with the given pid, pinned by a pidfd,
// with its current effective uid and gid read from /proc. Use it when the
// pid was learnt some other way than from a unix socket. The caller must
// Close the peer.
func (a *Attestor) PeerFromPID(ctx context.Context, pid int) (Peer, error) {
	if pid <= 0 {
		return Peer{}, fmt.Errorf("pin pid %d: not a process id", pid)
	}
	p, err := pinPID(Peer{PID: pid})
	if err != nil {
		return Peer{}, err
	}
	if _, err := a.fillIDs(&p, nil, ""); err != nil {
		p.Close()
		return Peer{}, fmt.Errorf("pin pid %d: %w", pid, err)
	}
	return p, nil
}

// fillIDs sets p.UID and p.GID from /proc/PID/status. If inode is not nil,
// it also requires the process to still hold that socket, and returns
// where it holds it and its parent: at fd hint when that file is the
// socket (the fd a scan of a moment ago found it at; one readlink), else
// wherever a scan of its fd table finds it. When p is pinned, the pidfd
// is checked after /proc/PID is opened, so the facts are about the pinned
// process.
func (a *Attestor) fillIDs(p *Peer, inode *uint64, hint string) (*tcpFound, error) {
	d, err := openProc(a.procRoot, p.PID)
	if err != nil {
		return nil, err
	}
	defer d.close()
	if err := p.checkAlive(); err != nil {
		return nil, err
	}
	var found *tcpFound
	if inode != nil {
		fd := hint
		if fd == "" || !holdsAtFD(d.fd, fd, socketLink(*inode)) {
			s := newFDScan(socketLink(*inode))
			holds, err := s.holds(d.fd, "fd", d.path+"/fd")
			if err != nil {
				return nil, err
			}
			if !holds {
				return nil, fmt.Errorf("pid %d no longer holds socket inode %d: %w", p.PID, *inode, ErrProcessGone)
			}
			fd = s.found
		}
		ppid, err := parentOf(d)
		if err != nil {
			return nil, err
		}
		found = &tcpFound{inode: *inode, fd: fd, ppid: ppid}
	}
	st, err := d.status()
	if err != nil {
		return nil, err
	}
	p.UID, p.GID = st.uid, st.gid
	return found, nil
}

// tcpFound is what a holder scan found of a TCP connection's process,
// kept on its pinned peer until [Attestor.WatchImage] makes it a verdict.
type tcpFound struct {
	events *procEvents // nil when process events are not followed
	mark   eventMark   // before the scan
	inode  uint64
	fd     string
	ppid   int32
}

// FindTCPPeer returns the pid of the local process that holds the client
// end of a loopback TCP connection, as seen by the server that accepted it:
// local is the server's address and remote the client's. It finds the
// client's socket (the one whose local address is remote and whose peer is
// local), asking the kernel for that one socket over NETLINK_SOCK_DIAG when
// ProcRoot is a live procfs and reading ProcRoot/net/tcp and tcp6
// otherwise or when netlink fails, and then scans the open files of every
// process for that socket.
//
// It fails with [ErrNoTCPPeer] when no process holds the socket and with
// [ErrSharedSocket] when several do. Only loopback connections are
// accepted. Processes whose open files writ may not read are skipped; run
// writ as root so that these are only the few the kernel hides even from
// root. The pid may be reused as soon as FindTCPPeer returns; use
// [Attestor.PeerFromTCP] to get the process pinned.
func (a *Attestor) FindTCPPeer(ctx context.Context, local, remote netip.AddrPort) (int, error) {
	pid, _, _, err := a.findTCPPeer(ctx, local, remote)
	return pid, err
}

// PeerFromTCP is [Attestor.FindTCPPeer] followed by pinning the process
// with a pidfd and checking that the pinned process holds the socket, so
// that the returned peer is the connection's process even if the pid has
// since been reused. UID and GID are the process's effective ids. The
// caller must Close the peer.
//
// [Attestor.WatchImage] of the peer keeps the scan's verdict (this
// process, and no other, holds the connection) while process events show
// nothing that could change it, and [ImageWatch.Check] scans again when
// they do.
func (a *Attestor) PeerFromTCP(ctx context.Context, local, remote netip.AddrPort) (Peer, error) {
	events, mark := a.markEvents()
	pid, inode, hint, err := a.findTCPPeer(ctx, local, remote)
	if err != nil {
		return Peer{}, err
	}
	p, err := pinPID(Peer{PID: pid})
	if err != nil {
		return Peer{}, fmt.Errorf("find process of connection %s -> %s: %w", remote, local, err)
	}
	found, err := a.fillIDs(&p, &inode, hint)
	if err != nil {
		p.Close()
		return Peer{}, fmt.Errorf("find process of connection %s -> %s: %w", remote, local, err)
	}
	if p.pidfd != nil {
		found.events, found.mark = events, mark
		p.pidfd.tcp.Store(found)
	}
	return p, nil
}

// findTCPPeer is FindTCPPeer, also returning the socket's inode and, when
// the socket index named the process, the fd at which it holds the
// socket (a hint for the check after pinning; "" when not known).
func (a *Attestor) findTCPPeer(ctx context.Context, local, remote netip.AddrPort) (int, uint64, string, error) {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	if !local.Addr().IsLoopback() || !remote.Addr().IsLoopback() {
		return 0, 0, "", fmt.Errorf("find process of connection %s -> %s: only loopback connections can be attributed to a local process", remote, local)
	}
	sock, err := a.tcpInode(local, remote)
	if err != nil {
		return 0, 0, "", fmt.Errorf("find process of connection %s -> %s: %w", remote, local, err)
	}
	inode := sock.inode
	if pid, fd, ok := a.indexedHolder(sock); ok {
		return pid, inode, fd, nil
	}
	pids, skipped, err := a.socketHolders(ctx, inode)
	if err != nil {
		return 0, 0, "", fmt.Errorf("find process of connection %s -> %s: %w", remote, local, err)
	}
	switch len(pids) {
	case 0:
		if skipped > 0 {
			return 0, 0, "", fmt.Errorf("find process of connection %s -> %s: socket inode %d: %w (%d processes could not be inspected; writ needs root or CAP_SYS_PTRACE)", remote, local, inode, ErrNoTCPPeer, skipped)
		}
		return 0, 0, "", fmt.Errorf("find process of connection %s -> %s: socket inode %d: %w", remote, local, inode, ErrNoTCPPeer)
	case 1:
		return pids[0], inode, "", nil
	}
	return 0, 0, "", fmt.Errorf("find process of connection %s -> %s: pids %v: %w", remote, local, pids, ErrSharedSocket)
}

// tcpInode returns the inode of the socket whose local address is client
// and whose peer is server, and its cookie when sock_diag told it.
func (a *Attestor) tcpInode(server, client netip.AddrPort) (kernelSocket, error) {
	if a.sockDiag {
		sock, err := sockDiagSocket(server, client)
		switch {
		case err == nil && sock.inode != 0:
			return sock, nil
		case err == nil:
			return kernelSocket{}, ErrNoTCPPeer // TIME_WAIT: no process holds it
		case !errors.Is(err, errSockDiagMiss) && a.sockDiagLogged.CompareAndSwap(false, true):
			a.log.Debug("sock_diag lookup failed; finding TCP sockets in the procfs socket tables instead", "error", err)
		}
	}
	inode, err := a.tcpInodeFromTables(server, client)
	return kernelSocket{inode: inode}, err
}

// indexedHolder returns the process holding the socket, found through the
// socket index (sockindex.go) without a scan, or false when the index
// cannot tell: no index or entry, events that are not complete since the
// socket's creation, an exec of its creator, too many forks, a process
// forked since that holds the socket (which the scan then reports as
// shared), or a creator that no longer holds it. fd is where the creator
// holds the socket in its own file table ("" when only a thread's table
// has it).
func (a *Attestor) indexedHolder(sock kernelSocket) (pid int, fd string, ok bool) {
	if a.sockIndex == nil || sock.cookie == 0 {
		return 0, "", false
	}
	tgid, ns, ok := a.sockIndex.creator(sock.cookie)
	if !ok || tgid <= 0 {
		return 0, "", false
	}
	e := a.procEvents()
	if e == nil {
		return 0, "", false
	}
	holds := a.suspectHolds(sock.inode)
	fd, h, err := a.holderFD(sock.inode, tgid)
	if err != nil || !h {
		return 0, "", false
	}
	// Look at every process forked since the socket's creation, then at
	// those forked while looking (a child may fork and then close the
	// socket): none may hold it.
	checked := map[int32]bool{tgid: true}
	for range maxSuspectRounds {
		children, ok := e.windowForks(tgid, ns)
		if !ok {
			return 0, "", false
		}
		fresh := false
		for _, c := range children {
			if checked[c] {
				continue
			}
			fresh = true
			checked[c] = true
			if h, err := holds(c); err != nil || h {
				return 0, "", false
			}
		}
		if !fresh {
			a.indexed.Add(1)
			return int(tgid), fd, true
		}
	}
	return 0, "", false
}

// tcpInodeFromTables is tcpInode from ProcRoot/net/tcp and tcp6.
func (a *Attestor) tcpInodeFromTables(server, client netip.AddrPort) (uint64, error) {
	files := []string{"tcp", "tcp6"}
	if client.Addr().Is6() {
		files = files[1:]
	}
	for _, name := range files {
		path := filepath.Join(a.procRoot, "net", name)
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // IPv6 disabled
		}
		if err != nil {
			return 0, fmt.Errorf("read socket table: %w", err)
		}
		inode, err := findTCPInode(f, server, client)
		f.Close()
		if err != nil {
			return 0, fmt.Errorf("read socket table %s: %w", path, err)
		}
		if inode != 0 {
			return inode, nil
		}
	}
	return 0, ErrNoTCPPeer
}

// findTCPInode scans a /proc/net/tcp or tcp6 table for the socket whose
// local address is client and whose peer is server. It returns 0 if there
// is none.
func findTCPInode(r io.Reader, server, client netip.AddrPort) (uint64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), 64<<10)
	first := true
	for sc.Scan() {
		if first { // header
			first = false
			continue
		}
		e, err := parseTCPLine(sc.Bytes())
		if err != nil {
			return 0, err
		}
		if e.inode != 0 && e.local == client && e.remote == server {
			return e.inode, nil
		}
	}
	return 0, sc.Err()
}

type tcpEntry struct {
	local, remote netip.AddrPort // unmapped
	inode         uint64         // 0 for sockets without one (TIME_WAIT)
	state         uint8          // TCP state, as in include/net/tcp_states.h
	uid           uint32
}

// parseTCPLine parses one line of a /proc/net/tcp or tcp6 table:
//
//	sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
//	0: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 12345 ...
func parseTCPLine(line []byte) (tcpEntry, error) {
	f := bytes.Fields(line)
	if len(f) < 10 {
		return tcpEntry{}, fmt.Errorf("socket line %q: has %d fields, want at least 10", line, len(f))
	}
	local, err := parseHexAddrPort(f[1])
	if err != nil {
		return tcpEntry{}, fmt.Errorf("socket line %q: %w", line, err)
	}
	remote, err := parseHexAddrPort(f[2])
	if err != nil {
		return tcpEntry{}, fmt.Errorf("socket line %q: %w", line, err)
	}
	inode, err := strconv.ParseUint(string(f[9]), 10, 64)
	if err != nil {
		return tcpEntry{}, fmt.Errorf("socket line %q: bad inode %q", line, f[9])
	}
	state, err := strconv.ParseUint(string(f[3]), 16, 8)
	if err != nil {
		return tcpEntry{}, fmt.Errorf("socket line %q: bad state %q", line, f[3])
	}
	uid, err := strconv.ParseUint(string(f[7]), 10, 32)
	if err != nil {
		return tcpEntry{}, fmt.Errorf("socket line %q: bad uid %q", line, f[7])
	}
	return tcpEntry{local: local, remote: remote, inode: inode, state: uint8(state), uid: uint32(uid)}, nil
}

// parseHexAddrPort parses "0100007F:1F90": the address as 32-bit words in
// the kernel's byte order, each printed as hex, then the port in hex.
func parseHexAddrPort(b []byte) (netip.AddrPort, error) {
	addrHex, portHex, ok := bytes.Cut(b, []byte{':'})
	if !ok || len(portHex) != 4 || (len(addrHex) != 8 && len(addrHex) != 32) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", b)
	}
	port, err := strconv.ParseUint(string(portHex), 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port in %q", b)
	}
	var raw [16]byte
	n := len(addrHex) / 2
	if _, err := hex.Decode(raw[:n], addrHex); err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", b)
	}
	// Each word was printed as a number: big-endian digits of a value
	// stored in host order.
	for i := 0; i < n; i += 4 {
		binary.NativeEndian.PutUint32(raw[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	var addr netip.Addr
	if n == 4 {
		addr = netip.AddrFrom4([4]byte(raw[:4]))
	} else {
		addr = netip.AddrFrom16(raw).Unmap()
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

func socketLink(inode uint64) []byte {
	return []byte("socket:[" + strconv.FormatUint(inode, 10) + "]")
}

// socketHolders returns the pids of every process with the socket open,
// in the order /proc lists them, and how many processes it skipped because
// writ may not read their open files. Running as root, only processes the
// kernel hides even from root are skipped (non-dumpable processes of other
// user namespaces, processes an LSM protects).
//
// The scan is complete on purpose: a socket open in two processes must be
// refused, so every open file of every process is looked at, in the file
// tables of threads that have their own too (see threadsHold). It costs a
// few system calls per process and one per open file.
//
// Scans are shared: a caller that needs one while another runs waits for
// the next, which looks for the sockets of every caller waiting at once.
// When process events are lost every kept verdict is dropped and each
// open connection needs a scan at its next request; this makes that one
// or two scans instead of one per connection. Every caller's scan starts
// after its call, so none relies on a scan older than its question.
func (a *Attestor) socketHolders(ctx context.Context, inode uint64) (pids []int, skipped int, err error) {
	req := &holderScan{inode: inode, done: make(chan struct{})}
	a.holderScans.mu.Lock()
	a.holderScans.queue = append(a.holderScans.queue, req)
	if !a.holderScans.running {
		a.holderScans.running = true
		go a.runHolderScans()
	}
	a.holderScans.mu.Unlock()
	select {
	case <-req.done:
		return req.pids, req.skipped, req.err
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("list processes: %w", ctx.Err())
	}
}

// holderScans is the queue of socketHolders' callers.
type holderScans struct {
	mu      sync.Mutex
	running bool
	queue   []*holderScan
}

// holderScan is one caller's question and, once done is closed, its answer.
type holderScan struct {
	inode   uint64
	pids    []int
	skipped int
	err     error
	done    chan struct{}
}

// runHolderScans scans for the queued callers until none is left.
func (a *Attestor) runHolderScans() {
	for {
		a.holderScans.mu.Lock()
		batch := a.holderScans.queue
		a.holderScans.queue = nil
		if len(batch) == 0 {
			a.holderScans.running = false
			a.holderScans.mu.Unlock()
			return
		}
		a.holderScans.mu.Unlock()
		a.scanHolders(batch)
		for _, r := range batch {
			close(r.done)
		}
	}
}

// scanHolders scans every process's open files once for the sockets of
// batch and fills in each one's answer.
func (a *Attestor) scanHolders(batch []*holderScan) {
	a.scans.Add(1)
	fail := func(err error) {
		for _, r := range batch {
			r.pids, r.skipped, r.err = nil, 0, err
		}
	}
	procfd, err := openRetry(unix.AT_FDCWD, a.procRoot, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		fail(fmt.Errorf("list processes in %s: %w", a.procRoot, err))
		return
	}
	defer unix.Close(procfd)
	want := make(map[uint64][]*holderScan, len(batch))
	for _, r := range batch {
		want[r.inode] = append(want[r.inode], r)
	}
	s := newFDScan(nil)
	s.inodes = want
	skipped := 0
	procs := dirReader{buf: make([]byte, 8<<10)}
	err = procs.each(procfd, func(name string) error {
		pid, perr := strconv.Atoi(name)
		if perr != nil || pid <= 0 {
			return nil
		}
		clear(s.hits)
		_, err := s.holds(procfd, name+"/fd", a.procRoot+"/"+name+"/fd")
		if err == nil {
			// Threads with file tables of their own may hold sockets
			// the leader's table does not.
			_, err = s.threadsHold(procfd, pid, name, a.procRoot+"/"+name+"/task")
			for inode := range s.hits { // what the readable tables hold
				for _, r := range want[inode] {
					r.pids = append(r.pids, pid)
				}
			}
		}
		switch {
		case err == nil, errors.Is(err, ErrProcessGone):
		case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
			skipped++
		default:
			return err
		}
		return nil
	})
	var list *os.SyscallError
	switch {
	case errors.As(err, &list):
		fail(fmt.Errorf("list processes in %s: %w", a.procRoot, list.Err))
		return
	case err != nil:
		fail(err)
		return
	}
	for _, r := range batch {
		r.skipped = skipped
	}
}

// threadsHold reports whether a thread of process pid that has a file
// table of its own (it called unshare(CLONE_FILES), or was cloned without
// CLONE_FILES) holds the socket: /proc/PID/fd lists only the table of the
// thread group leader. A thread whose table is the leader's is recognised
// with one kcmp(2) and not scanned again; without kcmp every other
// thread's table is scanned. name is the pid's directory under procfd,
// path names the task directory in errors.
func (s *fdScan) threadsHold(procfd, pid int, name, path string) (bool, error) {
	// A task directory's link count is 2 and one per thread: one stat
	// passes over the many single-threaded processes.
	var st unix.Stat_t
	if err := unix.Fstatat(procfd, name+"/task", &st, 0); err == nil && st.Nlink <= 3 {
		return false, nil
	}
	fd, err := openRetry(procfd, name+"/task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return false, fdErr(path, err)
	}
	defer unix.Close(fd)
	found := false
	err = s.tasks.each(fd, func(tname string) error {
		tid, err := strconv.Atoi(tname)
		if err != nil || tid == pid || tid <= 0 {
			return nil
		}
		if !s.noKcmp {
			same, err := sameFiles(pid, tid)
			switch {
			case err == nil && same:
				return nil
			case errors.Is(err, unix.ESRCH):
				return nil // the thread ended
			case errors.Is(err, unix.ENOSYS):
				s.noKcmp = true
			}
		}
		holds, err := s.holds(fd, tname+"/fd", path+"/"+tname+"/fd")
		switch {
		case errors.Is(err, ErrProcessGone):
			return nil
		case err != nil:
			return err
		case holds:
			found = true
			return errFound
		}
		return nil
	})
	var list *os.SyscallError
	switch {
	case err == errFound:
		return true, nil
	case errors.As(err, &list):
		return false, fdErr(path, list.Err)
	}
	return found, err
}

// sameFiles reports whether threads a and b share one file table
// (kcmp(2) KCMP_FILES).
func sameFiles(a, b int) (bool, error) {
	const kcmpFiles = 2 // KCMP_FILES in linux/kcmp.h
	for {
		r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(a), uintptr(b), kcmpFiles, 0, 0, 0)
		switch {
		case errno == unix.EINTR:
			continue
		case errno != 0:
			return false, errno
		}
		return r == 0, nil
	}
}

// holdsSocket reports whether the process directory dir (relative to dirfd)
// has an open file whose link reads target.
func holdsSocket(dirfd int, dir string, target []byte) (bool, error) {
	rel := "fd"
	if dirfd == unix.AT_FDCWD {
		rel = dir + "/fd"
	}
	return newFDScan(target).holds(dirfd, rel, dir+"/fd")
}

// fdScan looks for a socket among the open files of processes, reusing
// its buffers from one process to the next.
type fdScan struct {
	target []byte // the link text of the socket: "socket:[INODE]"
	// inodes, when set instead of target, are the sockets looked for at
	// once: holds records each one found in hits and looks at every file.
	inodes map[uint64][]*holderScan
	hits   map[uint64]struct{}
	found  string // the fd number under which holds last found it
	dir    dirReader
	tasks  dirReader // a process's threads, listed while dir lists their files
	link   [64]byte
	noKcmp bool // kcmp(2) is not available: scan every thread's table
}

func newFDScan(target []byte) *fdScan {
	return &fdScan{target: target, dir: dirReader{buf: make([]byte, 16<<10)}, tasks: dirReader{buf: make([]byte, 4<<10)}}
}

// errFound stops a directory scan early.
var errFound = errors.New("found")

// holds reports whether the fd directory rel (relative to dirfd; path
// names it in errors) has a file whose link reads s.target.
func (s *fdScan) holds(dirfd int, rel, path string) (bool, error) {
	fd, err := openRetry(dirfd, rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return false, fdErr(path, err)
	}
	defer unix.Close(fd)
	err = s.dir.each(fd, func(name string) error {
		n, err := readlinkRetry(fd, name, s.link[:])
		if errors.Is(err, unix.ENOENT) {
			return nil // closed meanwhile
		}
		if err != nil {
			return fdErr(path+"/"+name, err)
		}
		if s.inodes != nil {
			if inode, ok := socketInode(s.link[:n]); ok {
				if _, want := s.inodes[inode]; want {
					if s.hits == nil {
						s.hits = map[uint64]struct{}{}
					}
					s.hits[inode] = struct{}{}
				}
			}
			return nil
		}
		if bytes.Equal(s.link[:n], s.target) {
			s.found = name
			return errFound
		}
		return nil
	})
	var list *os.SyscallError
	switch {
	case err == errFound:
		return true, nil
	case errors.As(err, &list):
		return false, fdErr(path, list.Err)
	}
	return false, err
}

// socketInode parses the link text "socket:[INODE]".
func socketInode(link []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(link, []byte("socket:["))
	if !ok || len(rest) < 2 || rest[len(rest)-1] != ']' {
		return 0, false
	}
	var n uint64
	for _, c := range rest[:len(rest)-1] {
		d := uint64(c - '0')
		if c < '0' || c > '9' || n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

func readlinkRetry(dirfd int, name string, buf []byte) (int, error) {
	for {
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// dirReader lists a directory with getdents(2) into its buffer, many
// entries a call, where os.File would also set up the fd for the poller.
type dirReader struct {
	buf   []byte
	names []string
}

// each calls fn with the name of every entry of the directory open at fd
// but "." and "..", and stops at the first error fn returns, which it
// returns as it is. It returns a failure to read the directory as an
// *os.SyscallError.
func (r *dirReader) each(fd int, fn func(name string) error) error {
	for {
		n, err := unix.Getdents(fd, r.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("getdents64", err)
		}
		if n <= 0 {
			return nil
		}
		_, _, r.names = unix.ParseDirent(r.buf[:n], -1, r.names[:0])
		for _, name := range r.names {
			if err := fn(name); err != nil {
				return err
			}
		}
	}
}

func fdErr(path string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ESRCH):
		return fmt.Errorf("read %s: %w", path, ErrProcessGone)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("read %s: %w (writ needs root or CAP_SYS_PTRACE to inspect other users' processes)", path, err)
	}
	return fmt.Errorf("read %s: %w", path, err)
}
