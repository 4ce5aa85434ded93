package attest

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var (
	// ErrProcessGone reports that the process being attested exited, or
	// that its pid now names a different process, before attestation
	// finished. The caller should refuse the request; the client may retry.
	ErrProcessGone = errors.New("process exited or its pid was reused during attestation")

	// ErrPeerClosed reports that the connection owning a [Peer]'s pidfd
	// was closed, so the process can no longer be pinned.
	ErrPeerClosed = errors.New("peer connection closed")
)

// Peer is a local process as the kernel reported it: its pid and the
// effective uid and gid it had when it connected.
//
// A Peer made by [PeerFromUnixConn], [Attestor.PeerFromPID] or
// [Attestor.PeerFromTCP] holds a pidfd that pins the process, and the
// caller must [Peer.Close] it. A Peer from [PeerFromContext] belongs to its
// gRPC connection, which closes it. A Peer written as a literal (for a pid
// learnt elsewhere) holds no pidfd; [Attestor.Attest] then guards against pid
// reuse with the process start time alone.
type Peer struct {
	PID int
	UID int
	GID int

	pidfd *pidFD // nil when the process is not pinned
	// sock is the inode of writ's end of the unix connection the peer
	// came from, 0 for a peer learnt otherwise. [Attestor.Attest] then
	// requires the process to be the sole holder of the client end.
	sock uint64
}

// Pinned reports whether the peer holds a pidfd for its process.
func (p Peer) Pinned() bool { return p.pidfd != nil }

// Close releases the peer's pidfd, if any. It is safe to call more than
// once and on copies of the same Peer.
func (p Peer) Close() error {
	if p.pidfd == nil {
		return nil
	}
	return p.pidfd.close()
}

// checkAlive returns ErrProcessGone if the pinned process has exited and
// ErrPeerClosed if the pidfd was closed. An unpinned peer always passes.
func (p Peer) checkAlive() error {
	if p.pidfd == nil {
		return nil
	}
	return p.pidfd.alive()
}

// pidFD is an owned pidfd. Its methods are safe for concurrent use, and
// after close they report ErrPeerClosed rather than touch an fd number the
// process may have reused for something else.
type pidFD struct {
	mu     sync.RWMutex
	fd     int
	closed bool

	// last is the most recent full attestation of this pinned process,
	// for the fast path of Attestor.Attest.
	last atomic.Pointer[attestation]
	// holder is the verdict of the last holder scan of the connection
	// this process was found on, while process events keep it.
	holder atomic.Pointer[holderVerdict]
	// tcp is the holder scan that found this process for a TCP
	// connection, until WatchImage makes it a verdict.
	tcp atomic.Pointer[tcpFound]
}

// setHolder keeps v as the connection's verdict and releases the one it
// replaces.
func (h *pidFD) setHolder(v *holderVerdict) {
	h.holder.Swap(v).release()
}

// attestation is a full attestation remembered on a pinned peer.
type attestation struct {
	res Result
	exe fileKey
	at  time.Time
}

func newPIDFD(fd int) *pidFD { return &pidFD{fd: fd} }

func (h *pidFD) close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	h.holder.Swap(nil).release()
	if err := unix.Close(h.fd); err != nil {
		return fmt.Errorf("close pidfd: %w", err)
	}
	return nil
}

// alive polls the pidfd: it becomes readable when the process exits.
func (h *pidFD) alive() error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return ErrPeerClosed
	}
	fds := []unix.PollFd{{Fd: int32(h.fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll pidfd: %w", err)
		}
		switch {
		case n == 0:
			return nil
		case fds[0].Revents&unix.POLLNVAL != 0:
			return errors.New("poll pidfd: not an open file descriptor")
		case fds[0].Revents&(unix.POLLIN|unix.POLLHUP) != 0:
			return ErrProcessGone
		}
		return nil
	}
}

// PeerFromUnixConn returns the process at the other end of a unix socket
// connection, pinned by a pidfd. The caller must Close the peer.
// [Attestor.Attest] of the peer checks that the process is still the only
// holder of the connection's client end.
func PeerFromUnixConn(c *net.UnixConn) (Peer, error) {
	return peerFromConn(c)
}

func peerFromConn(c syscall.Conn) (Peer, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("read peer credentials: %w", err)
	}
	var (
		cred     *unix.Ucred
		credErr  error
		pidfd    = -1
		pidfdErr error
	)
	err = rc.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if credErr == nil {
			pidfd, pidfdErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD)
		}
	})
	if err != nil {
		return Peer{}, fmt.Errorf("read peer credentials: %w", err)
	}
	if credErr != nil {
		return Peer{}, fmt.Errorf("read peer credentials (SO_PEERCRED): %w", credErr)
	}
	p := Peer{PID: int(cred.Pid), UID: int(cred.Uid), GID: int(cred.Gid)}
	if p.sock, err = sockInode(c); err != nil {
		if pidfdErr == nil {
			unix.Close(pidfd)
		}
		return Peer{}, fmt.Errorf("read peer credentials: %w", err)
	}
	if p.PID <= 0 {
		if pidfdErr == nil {
			unix.Close(pidfd)
		}
		return Peer{}, errors.New("read peer credentials: the peer runs in a pid namespace writ cannot see; run writ in the workload's pid namespace (or the host's)")
	}
	switch {
	case pidfdErr == nil:
		p.pidfd = newPIDFD(pidfd)
		return p, nil
	case errors.Is(pidfdErr, unix.ESRCH):
		return Peer{}, fmt.Errorf("read peer pidfd of pid %d: %w", p.PID, ErrProcessGone)
	case errors.Is(pidfdErr, unix.ENOPROTOOPT), errors.Is(pidfdErr, unix.EINVAL), errors.Is(pidfdErr, unix.ENODATA):
		// Kernel older than 6.5: open a pidfd by pid now, as close to the
		// connect as we can get.
		return pinPID(p)
	}
	return Peer{}, fmt.Errorf("read peer pidfd of pid %d (SO_PEERPIDFD): %w", p.PID, pidfdErr)
}

// pinPID opens a pidfd for p.PID. On kernels without pidfd_open (before
// 5.3) the peer stays unpinned.
func pinPID(p Peer) (Peer, error) {
	fd, err := unix.PidfdOpen(p.PID, 0)
	switch {
	case err == nil:
		p.pidfd = newPIDFD(fd)
		return p, nil
	case errors.Is(err, unix.ENOSYS):
		return p, nil
	case errors.Is(err, unix.ESRCH):
		return Peer{}, fmt.Errorf("open pidfd for pid %d: %w", p.PID, ErrProcessGone)
	}
	return Peer{}, fmt.Errorf("open pidfd for pid %d: %w", p.PID, err)
}
