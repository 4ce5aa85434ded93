package sqlite

import (
	"errors"
	"fmt"
	"os"
)

// privateFile makes the SQLite database at path, and the write-ahead log
// and shared-memory files beside it if they exist, readable and writable
// by writ's user only (0600), creating the database file if it is missing.
//
// SQLite creates "-wal" and "-shm" itself, with the mode of the database
// file (the unix VFS copies it), so the database must be 0600 before
// SQLite first opens it: chmod after the fact left the others 0644 under
// a umask of 022, readable by every user wherever the directory was. The
// existing files are tightened too, for stores written by earlier
// releases.
func privateFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create store file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create store file %s: %w", path, err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restrict store file %s to its owner: %w", p, err)
		}
	}
	return nil
}
