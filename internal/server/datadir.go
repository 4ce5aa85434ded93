package server

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// LockFile is the file in the data directory that a running server holds
// an exclusive lock on (flock(2)); it contains the server's pid.
const LockFile = "writ.lock"

// prepareDataDir creates the data directory (0700) if it is missing and
// checks the mode of one that exists. A directory other users may write
// to is refused: they could replace the store, the key-encryption key or
// the socket. One they may only read or search is allowed with a warning:
// every file writ writes in it is 0600, so they see names and sizes only.
func prepareDataDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data directory %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("check data directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data directory %s is not a directory; choose another --data-dir", dir)
	}
	mode := fi.Mode().Perm()
	switch {
	case mode&0o022 != 0:
		return fmt.Errorf("data directory %s is writable by other users (mode %04o): they could replace writ's store, keys or socket; run chmod 700 %s", dir, mode, dir)
	case mode&0o077 != 0:
		log.Warn("the data directory is readable by other users; its files are private (0600) but their names and sizes are not: run chmod 700 on it",
			"data_dir", dir, "mode", fmt.Sprintf("%04o", mode))
	}
	return nil
}

// dirLock is an exclusive lock on a data directory.
type dirLock struct{ f *os.File }

// lockDataDir takes the exclusive lock on dir/writ.lock and writes this
// process's pid into the file. If another process holds the lock it
// fails, naming the directory and that process's pid, rather than wait:
// two servers on one store would each break the other's audit log.
func lockDataDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		holder := "another process"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
				holder = "writ (pid " + strconv.Itoa(pid) + ")"
			}
		}
		f.Close()
		return nil, fmt.Errorf("data directory %s is in use by %s: stop that server first, or give this one another --data-dir", dir, holder)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	if err := writePID(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	return &dirLock{f: f}, nil
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// release gives the lock up. The file stays: removing it would let a
// server that opened it meanwhile lock a file no longer in the directory.
func (l *dirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Close()
	l.f = nil
}

// warnUnreachableSocket warns when workload.socket_mode lets other users
// connect but the socket's directory does not let them reach it (the
// default socket is in the 0700 data directory).
func (s *Server) warnUnreachableSocket() {
	mode := s.cfg.Workload.SocketFileMode()
	if mode&0o002 == 0 {
		return
	}
	dir := filepath.Dir(s.cfg.Workload.Socket)
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm()&0o001 != 0 {
		return
	}
	s.log.Warn("workload.socket_mode lets other users connect, but they cannot enter the socket's directory; put the socket in a directory they can reach, such as /run/writ/workload.sock",
		"socket", s.cfg.Workload.Socket, "socket_mode", fmt.Sprintf("%04o", mode), "directory_mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
}
