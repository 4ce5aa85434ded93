package attest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrImageChanged reports that a process runs another executable than the
// one it was attested with: it called execve since.
var ErrImageChanged = errors.New("the process runs another executable than the one it was attested with")

// ImageWatch binds an attestation to the process image it was made of: it
// keeps the process's /proc/PID directory open, so that [ImageWatch.Check]
// sees an exec (or the process's end) at once, and can never look at
// another process that reuses the pid. For a peer found by
// [Attestor.PeerFromTCP] it also keeps the connection bound to that one
// process: Check refuses once another process holds it too (a child forked
// after the connection was attributed). It is safe for concurrent use;
// Close it when the attestation is no longer relied on.
type ImageWatch struct {
	a      *Attestor
	mu     sync.Mutex
	d      *procDir
	exe    fileKey
	closed bool
	// inode is the client end of the TCP connection the process was
	// found on, 0 when it was found otherwise or without process events;
	// holder is the current verdict on it.
	inode  uint64
	holder *holderVerdict
}

// WatchImage returns a watch on the process p, bound to the executable res
// (p's attestation) was made of. It fails with [ErrImageChanged] if p runs
// another one already, and with [ErrProcessGone] if p has exited.
func (a *Attestor) WatchImage(p Peer, res Result) (*ImageWatch, error) {
	if res.PID != p.PID || res.exe == (fileKey{}) {
		return nil, fmt.Errorf("watch pid %d: the attestation is not of this process", p.PID)
	}
	d, err := openProc(a.procRoot, p.PID)
	if err != nil {
		return nil, err
	}
	// The directory was opened while the pinned process lived, so it is
	// that process's (a pid is not reused while its process lives).
	if err := p.checkAlive(); err != nil {
		d.close()
		return nil, err
	}
	w := &ImageWatch{a: a, d: d, exe: res.exe}
	if p.pidfd != nil {
		if f := p.pidfd.tcp.Swap(nil); f != nil && f.events != nil {
			w.inode = f.inode
			v := &holderVerdict{pid: int32(p.PID), ppid: f.ppid, inode: f.inode, fd: f.fd, exe: res.exe}
			if f.events.commit(f.mark, v) {
				w.holder = v
			}
		}
	}
	if err := w.Check(); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// Check returns nil while the process runs the executable it was attested
// with and, for a TCP peer, is the only process holding the connection;
// [ErrImageChanged] after an exec, [ErrSharedSocket] once another process
// holds the connection too, and an error wrapping [ErrProcessGone] once it
// has exited.
//
// While process events show nothing that could change the verdict, Check
// reads the queued events and nothing else; otherwise it looks at the
// executable, and for a TCP peer scans the socket's holders again.
func (w *ImageWatch) Check() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("check process image: %w", ErrPeerClosed)
	}
	if w.holder != nil && w.holder.current(w.a.suspectHolds(w.inode)) {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstatat(w.d.fd, "exe", &st, 0); err != nil {
		return w.d.procErr("stat", "exe", err)
	}
	if keyOf(&st) != w.exe {
		return fmt.Errorf("pid %d: %w", w.d.pid, ErrImageChanged)
	}
	if w.inode == 0 {
		return nil
	}
	return w.rescan()
}

// rescan checks again that the process alone holds the connection, and
// keeps the verdict while process events allow. Called with w.mu held.
func (w *ImageWatch) rescan() error {
	events, mark := w.a.markEvents()
	if events == nil {
		return nil // without events, as before: the image is checked per request
	}
	pids, _, err := w.a.socketHolders(context.Background(), w.inode)
	if err != nil {
		return fmt.Errorf("check the holders of socket inode %d: %w", w.inode, err)
	}
	switch {
	case len(pids) == 0:
		return fmt.Errorf("socket inode %d: %w", w.inode, ErrNoTCPPeer)
	case len(pids) > 1 || pids[0] != w.d.pid:
		return fmt.Errorf("socket inode %d is open in pids %v, attributed to pid %d: %w", w.inode, pids, w.d.pid, ErrSharedSocket)
	}
	ppid, err := parentOf(w.d)
	if err != nil {
		return err
	}
	v := &holderVerdict{pid: int32(w.d.pid), ppid: ppid, inode: w.inode, exe: w.exe}
	w.holder.release()
	w.holder = nil
	if events.commit(mark, v) {
		w.holder = v
	}
	return nil
}

// Close releases the watch. It is safe to call more than once.
func (w *ImageWatch) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	w.holder.release()
	w.d.close()
	return nil
}
