package attest

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// procEvents returns the attestor's process events, subscribing on first
// use, or nil when ProcRoot is not the live procfs (whose pids the
// kernel's events name).
func (a *Attestor) procEvents() *procEvents {
	if !a.sockDiag || a.noProcEvents {
		return nil
	}
	a.eventsOnce.Do(func() {
		e := openProcEvents(a.log)
		a.events = e
		runtime.AddCleanup(a, func(e *procEvents) { e.close() }, e)
	})
	return a.events
}

// FollowProcessEvents subscribes to the kernel's process events now rather
// than at the first holder check, and returns why it cannot when it cannot
// (writ then checks the holders of a connection's socket by scanning /proc
// on every Workload API call). Servers call it at start to say so.
func (a *Attestor) FollowProcessEvents() error {
	if !a.sockDiag {
		return fmt.Errorf("follow process events: %s is not a live procfs", a.procRoot)
	}
	if a.noProcEvents {
		return errors.New("follow process events: turned off (Config.NoProcEvents)")
	}
	e := a.procEvents()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return fmt.Errorf("follow process events: %w", e.err)
	}
	return nil
}

// SocketIndex returns nil when the socket index (sockindex.go) is loaded,
// so that the first request on a new TCP connection usually finds the
// connection's process without scanning every process's open files, and
// why not otherwise (writ then scans). Servers call it at start to say so.
func (a *Attestor) SocketIndex() error { return a.sockIndexErr }

// markEvents returns the process events and their state before a holder
// scan, or nil when no verdict can be kept.
func (a *Attestor) markEvents() (*procEvents, eventMark) {
	e := a.procEvents()
	if e == nil {
		return nil, eventMark{}
	}
	m, ok := e.mark()
	if !ok {
		return nil, eventMark{}
	}
	return e, m
}

// Close stops following process events. Holder checks then scan /proc
// every time. It is safe to call more than once.
func (a *Attestor) Close() error {
	a.eventsOnce.Do(func() {}) // no subscription after Close
	if a.events != nil {
		a.events.close()
	}
	return nil
}

// current reports whether v, a verdict on a process's socket, still holds,
// with a look at the open files of any process forked since, and at the
// holder's fd that held the socket.
func (a *Attestor) current(v *holderVerdict) bool {
	if v == nil || !v.current(a.suspectHolds(v.inode)) {
		return false
	}
	return a.holdsAt(v)
}

// holdsAt reports whether v's process still has v's socket open under the
// fd number it had it at: one readlink, where a scan reads every link.
func (a *Attestor) holdsAt(v *holderVerdict) bool {
	var buf [64]byte
	path := a.procRoot + "/" + strconv.Itoa(int(v.pid)) + "/fd/" + v.fd
	n, err := readlinkRetry(unix.AT_FDCWD, path, buf[:])
	return err == nil && bytes.Equal(buf[:n], socketLink(v.inode))
}

// suspectHolds returns the check of a suspect: whether the process has the
// socket open in any of its file tables. A process that is gone holds
// nothing; one writ may not inspect is an error, which voids the verdict.
func (a *Attestor) suspectHolds(inode uint64) func(pid int32) (bool, error) {
	return func(pid int32) (bool, error) {
		name := a.procRoot + "/" + strconv.Itoa(int(pid))
		s := newFDScan(socketLink(inode))
		holds, err := s.holds(unix.AT_FDCWD, name+"/fd", name+"/fd")
		if err == nil && !holds {
			holds, err = s.threadsHold(unix.AT_FDCWD, int(pid), name, name+"/task")
		}
		if errors.Is(err, ErrProcessGone) {
			return false, nil
		}
		return holds, err
	}
}

// holderFD is suspectHolds of one process that also returns the fd at
// which its own file table holds the socket ("" when only a thread's
// table does).
func (a *Attestor) holderFD(inode uint64, pid int32) (fd string, holds bool, err error) {
	name := a.procRoot + "/" + strconv.Itoa(int(pid))
	s := newFDScan(socketLink(inode))
	holds, err = s.holds(unix.AT_FDCWD, name+"/fd", name+"/fd")
	if err == nil && holds {
		return s.found, true, nil
	}
	if err == nil {
		holds, err = s.threadsHold(unix.AT_FDCWD, int(pid), name, name+"/task")
	}
	if errors.Is(err, ErrProcessGone) {
		return "", false, nil
	}
	return "", holds, err
}

// holdsAtFD reports whether the file fd (a name in the fd directory) of
// the process whose /proc directory is open as dirfd is the socket whose
// link text is target.
func holdsAtFD(dirfd int, fd string, target []byte) bool {
	var buf [64]byte
	n, err := readlinkRetry(dirfd, "fd/"+fd, buf[:])
	return err == nil && bytes.Equal(buf[:n], target)
}

// parentOf returns the parent pid of the process whose /proc directory d is.
func parentOf(d *procDir) (int32, error) {
	f, err := d.open("stat")
	if err != nil {
		return 0, err
	}
	defer f.close()
	st, err := d.stat(f)
	if err != nil {
		return 0, err
	}
	return int32(st.ppid), nil
}
