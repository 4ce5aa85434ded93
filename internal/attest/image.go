package attest

import (
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
// sees an exec (or the process's end) with one system call, and can never
// look at another process that reuses the pid. It is safe for concurrent
// use; Close it when the attestation is no longer relied on.
type ImageWatch struct {
	mu     sync.Mutex
	d      *procDir
	exe    fileKey
	closed bool
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
	w := &ImageWatch{d: d, exe: res.exe}
	if err := w.Check(); err != nil {
		d.close()
		return nil, err
	}
	return w, nil
}

// Check returns nil while the process runs the executable it was attested
// with, [ErrImageChanged] after an exec, and an error wrapping
// [ErrProcessGone] once it has exited.
func (w *ImageWatch) Check() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("check process image: %w", ErrPeerClosed)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(w.d.fd, "exe", &st, 0); err != nil {
		return w.d.procErr("stat", "exe", err)
	}
	if keyOf(&st) != w.exe {
		return fmt.Errorf("pid %d: %w", w.d.pid, ErrImageChanged)
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
	w.d.close()
	return nil
}
