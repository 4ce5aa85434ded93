// Package fsync makes writes durable: the two system calls writ's own
// files need, with EINTR handled, for the audit store's WAL and the
// proxy's decision journal.
package fsync

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Data flushes f's data and the metadata needed to read it back (its
// size), as SQLite does for its own syncs on Linux; unlike fsync it does
// not wait for a journal commit of timestamps.
func Data(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}

// Dir makes the creation, rename or removal of entries in dir durable.
func Dir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
