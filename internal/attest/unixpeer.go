package attest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// The Workload API guard against a handed-over socket.
//
// SO_PEERCRED names the process that called connect(2), and the kernel
// never updates it. A process that is not registered can connect, give
// the connected socket to another process (fork, or SCM_RIGHTS) and exec
// a registered executable: attestation of the pid then describes the
// registered executable while someone else reads the answers. So before a
// Workload API call is served, writ finds the client end of the
// connection (asking the kernel over sock_diag for the peer of its own
// end) and requires that the attested process, and no other, holds it.
//
// The messages are fixed kernel ABI (linux/unix_diag.h), host byte order:
//
//	struct unix_diag_req { u8 family, protocol; u16 pad; u32 states, ino, show; u32 cookie[2]; } // 24 bytes
//	struct unix_diag_msg { u8 family, type, state, pad; u32 ino; u32 cookie[2]; }                // 16 bytes
//
// followed, in the answer, by attributes; UNIX_DIAG_PEER carries the
// peer's inode as a u32.
const (
	sizeofUnixDiagReq = 24
	sizeofUnixDiagMsg = 16
	udiagShowPeer     = 0x4
	unixDiagPeer      = 2
)

var (
	// ErrSocketHandedOver reports that the client end of a Workload API
	// connection is held by a process other than the one that connected
	// (the socket was inherited or passed), so the connecting process's
	// identity may not be given to whoever reads the answer.
	ErrSocketHandedOver = errors.New("the client end of the connection is held by a process other than the one that connected")

	// ErrUnixDiagUnavailable reports that the kernel does not answer
	// sock_diag requests for unix sockets (CONFIG_UNIX_DIAG, the
	// unix_diag module), so the holder of a connection cannot be checked.
	ErrUnixDiagUnavailable = errors.New("the kernel does not answer sock_diag requests for unix sockets (load the unix_diag module)")
)

// sockInode returns the inode of the socket c.
func sockInode(c syscall.Conn) (uint64, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("stat socket: %w", err)
	}
	var st unix.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		return 0, fmt.Errorf("stat socket: %w", err)
	}
	if serr != nil {
		return 0, fmt.Errorf("stat socket: %w", serr)
	}
	return st.Ino, nil
}

// checkSoleHolder requires that p's process, and no other, holds the
// client end of the unix connection whose server end is p.sock. The first
// check of a connection scans the open files of every process (as
// [Attestor.FindTCPPeer] does); its verdict is then kept on the
// connection while process events show nothing that could change it (see
// procevents.go), so a later call costs reading the queued events and one
// readlink. exe is the executable p was just attested with: a verdict
// made while p ran another one is not used.
func (a *Attestor) checkSoleHolder(ctx context.Context, p Peer, exe fileKey) error {
	if p.sock == 0 {
		return nil // not a peer of a unix connection writ accepted
	}
	if !a.sockDiag {
		return fmt.Errorf("check the holder of the connection: %s is not a live procfs", a.procRoot)
	}
	var last *holderVerdict
	if p.pidfd != nil {
		last = p.pidfd.holder.Load()
		if last != nil && last.exe == exe && a.current(last) {
			// The pid looked at is the pinned process, not a reuse.
			return p.checkAlive()
		}
	}
	events, mark := a.markEvents()
	var client uint64
	if last != nil {
		client = last.inode // a connection's peer never changes
	} else {
		var err error
		if client, err = unixPeerInode(p.sock); err != nil {
			return fmt.Errorf("check the holder of the connection: %w", err)
		}
	}
	// The common refusal first, cheaply: the connecting process no
	// longer holds the socket at all.
	d, err := openProc(a.procRoot, p.PID)
	if err != nil {
		return err
	}
	defer d.close()
	s := newFDScan(socketLink(client))
	holds, err := s.holds(d.fd, "fd", d.path+"/fd")
	if err != nil {
		return fmt.Errorf("check the holder of the connection: %w", err)
	}
	if !holds {
		return fmt.Errorf("pid %d connected but no longer holds socket inode %d: %w", p.PID, client, ErrSocketHandedOver)
	}
	pids, _, err := a.socketHolders(ctx, client)
	if err != nil {
		return fmt.Errorf("check the holder of the connection: %w", err)
	}
	for _, pid := range pids {
		if pid != p.PID {
			return fmt.Errorf("socket inode %d is open in pids %v, not only in pid %d that connected: %w", client, pids, p.PID, ErrSocketHandedOver)
		}
	}
	var ppid int32
	if events != nil && p.pidfd != nil {
		if ppid, err = parentOf(d); err != nil {
			return err
		}
	}
	// The pid scanned is the pinned process, not a reuse of its pid.
	if err := p.checkAlive(); err != nil {
		return err
	}
	if events != nil && p.pidfd != nil {
		v := &holderVerdict{pid: int32(p.PID), ppid: ppid, inode: client, fd: s.found, exe: exe}
		if events.commit(mark, v) {
			p.pidfd.setHolder(v)
		}
	}
	return nil
}

// unixPeerInode asks the kernel for the inode of the peer of the unix
// socket with inode server (in writ's network namespace).
func unixPeerInode(server uint64) (uint64, error) {
	if server > 0xffffffff {
		return 0, fmt.Errorf("socket inode %d does not fit sock_diag's 32 bits", server)
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, fmt.Errorf("open sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	kernel := &unix.SockaddrNetlink{Family: unix.AF_NETLINK}
	for {
		err = unix.Sendto(fd, unixDiagRequest(uint32(server)), 0, kernel)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("send sock_diag request: %w", err)
	}
	// As for TCP: the kernel answered inside sendto.
	buf := make([]byte, 1024)
	for {
		n, from, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("receive sock_diag answer: %w", err)
		}
		if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
			continue
		}
		return parseUnixDiagReply(buf[:n], uint32(server))
	}
}

// unixDiagRequest returns a netlink message asking for the unix socket
// with inode ino and its peer.
func unixDiagRequest(ino uint32) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN+sizeofUnixDiagReq)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:], sockDiagSeq)
	req := b[unix.NLMSG_HDRLEN:]
	req[0] = unix.AF_UNIX
	ne.PutUint32(req[4:], ^uint32(0)) // every state
	ne.PutUint32(req[8:], ino)
	ne.PutUint32(req[12:], udiagShowPeer)
	ne.PutUint32(req[16:], inetDiagNoCookie)
	ne.PutUint32(req[20:], inetDiagNoCookie)
	return b
}

// parseUnixDiagReply returns the peer inode from the kernel's answer to
// unixDiagRequest(ino). A socket without a peer (its client end was
// closed) is [ErrNoTCPPeer]'s unix twin: an error saying so.
func parseUnixDiagReply(b []byte, ino uint32) (uint64, error) {
	ne := binary.NativeEndian
	for len(b) > 0 {
		typ, seq, body, rest, err := splitNetlink(b, "sock_diag answer")
		if err != nil {
			return 0, err
		}
		b = rest
		if seq != sockDiagSeq {
			continue
		}
		switch typ {
		case unix.NLMSG_ERROR:
			if len(body) < 4 {
				return 0, fmt.Errorf("parse sock_diag answer: error message of %d bytes", len(body))
			}
			errno := -int32(ne.Uint32(body))
			switch {
			case errno == 0:
				continue
			case errno < 0:
				return 0, fmt.Errorf("parse sock_diag answer: error number %d", -errno)
			case unix.Errno(errno) == unix.ENOENT:
				return 0, fmt.Errorf("unix socket inode %d: no such socket (the connection closed)", ino)
			case unix.Errno(errno) == unix.EOPNOTSUPP, unix.Errno(errno) == unix.EINVAL:
				return 0, ErrUnixDiagUnavailable
			}
			return 0, fmt.Errorf("sock_diag: %w", unix.Errno(errno))
		case unix.NLMSG_DONE:
			return 0, fmt.Errorf("unix socket inode %d: no such socket (the connection closed)", ino)
		case unix.SOCK_DIAG_BY_FAMILY:
			if len(body) < sizeofUnixDiagMsg {
				return 0, fmt.Errorf("parse sock_diag answer: socket message of %d bytes, want at least %d", len(body), sizeofUnixDiagMsg)
			}
			if body[0] != unix.AF_UNIX || ne.Uint32(body[4:]) != ino {
				return 0, fmt.Errorf("parse sock_diag answer: answer for family %d inode %d, asked for unix inode %d", body[0], ne.Uint32(body[4:]), ino)
			}
			attrs := body[sizeofUnixDiagMsg:]
			for len(attrs) >= 4 {
				alen := int(ne.Uint16(attrs[0:]))
				atyp := ne.Uint16(attrs[2:]) & 0x3fff // without NLA_F_NESTED, NLA_F_NET_BYTEORDER
				if alen < 4 || alen > len(attrs) {
					return 0, fmt.Errorf("parse sock_diag answer: attribute length %d does not fit in %d bytes", alen, len(attrs))
				}
				if atyp == unixDiagPeer {
					if alen < 8 {
						return 0, fmt.Errorf("parse sock_diag answer: peer attribute of %d bytes", alen)
					}
					peer := ne.Uint32(attrs[4:])
					if peer == 0 {
						break
					}
					return uint64(peer), nil
				}
				attrs = attrs[min((alen+3)&^3, len(attrs)):]
			}
			return 0, fmt.Errorf("unix socket inode %d has no peer (the client end was closed)", ino)
		}
	}
	return 0, errors.New("parse sock_diag answer: no answer for the request")
}

// ProbeUnixDiag checks that the kernel answers the sock_diag requests the
// Workload API's holder check needs, on a socket pair of its own. Without
// them every Workload API call is refused; servers call it at start to say
// so at once.
func ProbeUnixDiag() error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("probe unix sock_diag: %w", err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	var a, b unix.Stat_t
	if err := unix.Fstat(fds[0], &a); err != nil {
		return fmt.Errorf("probe unix sock_diag: %w", err)
	}
	if err := unix.Fstat(fds[1], &b); err != nil {
		return fmt.Errorf("probe unix sock_diag: %w", err)
	}
	peer, err := unixPeerInode(a.Ino)
	if err != nil {
		return fmt.Errorf("probe unix sock_diag: %w", err)
	}
	if peer != b.Ino {
		return fmt.Errorf("probe unix sock_diag: the kernel names inode %d as the peer of %d, not %d", peer, a.Ino, b.Ino)
	}
	return nil
}
