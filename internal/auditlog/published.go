package auditlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrRolledBack reports a log that is older than, or inconsistent with, a
// checkpoint remembered outside it: its newest events were removed (with
// their checkpoints, or the store was restored from an older copy) or its
// history was rewritten.
var ErrRolledBack = errors.New("audit log rolled back")

// CheckpointFile is a file holding one signed checkpoint, kept outside the
// log's store so that whoever can rewrite the store cannot also roll back
// what was remembered of it: the server's own last published checkpoint
// (DATA_DIR/audit.checkpoint, see [Config.Published]) and the last
// checkpoint `writ audit verify` checked. It is replaced atomically and
// readable by its owner only.
type CheckpointFile struct {
	Path string
}

// Read returns the signed checkpoint in the file, or nil if the file does
// not exist.
func (f CheckpointFile) Read() ([]byte, error) {
	fh, err := os.Open(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint file: %w", err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxCheckpointSize+1))
	if err != nil {
		return nil, fmt.Errorf("read checkpoint file %s: %w", f.Path, err)
	}
	if len(b) > maxCheckpointSize {
		return nil, fmt.Errorf("read checkpoint file %s: over %d bytes, not a checkpoint", f.Path, maxCheckpointSize)
	}
	return b, nil
}

// Write replaces the file's content with msg: it writes a temporary file
// beside it (mode 0600), syncs it and renames it over the file, so that a
// crash leaves the old checkpoint or the new one, never a mix. It creates
// the directory (mode 0700) if needed.
func (f CheckpointFile) Write(msg []byte) error {
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write checkpoint file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.Path)+".*")
	if err != nil {
		return fmt.Errorf("write checkpoint file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	_, err = tmp.Write(msg)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.Path)
	}
	if err != nil {
		return fmt.Errorf("write checkpoint file %s: %w", f.Path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // the rename, durable; not every file system syncs directories
		d.Close()
	}
	return nil
}

// checkPublished compares the stored log (as load left it) with the
// checkpoint this log last published, before anything is appended. A
// missing file is no finding (a new data directory, or a first start of a
// release that keeps it); it is written at the next checkpoint.
func (l *Log) checkPublished(ctx context.Context, f *CheckpointFile) error {
	msg, err := f.Read()
	if err != nil || msg == nil {
		return err
	}
	cp, err := OpenCheckpoint(msg, l.trusted)
	if err != nil {
		return fmt.Errorf("check the published checkpoint %s: %w; if this data directory's log key was replaced on purpose, move that file away (keep it as evidence) and start again", f.Path, err)
	}
	howto := fmt.Sprintf("run `writ audit verify` to see what the log holds; if you restored an older copy of the data directory on purpose, move %s away (keep it as evidence) and start again", f.Path)
	if cp.Origin != l.origin {
		return fmt.Errorf("%w: %s is a checkpoint of log %q, this log is %q; %s", ErrRolledBack, f.Path, cp.Origin, l.origin, howto)
	}
	if cp.Size > l.tree.size {
		return fmt.Errorf("%w: this server published a checkpoint of %d events (%s) but the log now holds %d events (latest signed checkpoint: %d events): the newest events were removed or an older copy of the store was restored; %s",
			ErrRolledBack, cp.Size, f.Path, l.tree.size, l.latestCP.Size, howto)
	}
	h, err := tlog.TreeHash(cp.Size, backendHashes{ctx, l.b})
	if err != nil {
		return fmt.Errorf("check the published checkpoint %s: read the tree at size %d: %w", f.Path, cp.Size, err)
	}
	if h != cp.Hash {
		return fmt.Errorf("%w: the log's first %d events no longer match the checkpoint this server published (%s): its history was rewritten; %s",
			ErrRolledBack, cp.Size, f.Path, howto)
	}
	return nil
}

// publish records a newly signed checkpoint in the published file. A
// failure is logged, not returned: the checkpoint is stored in the log
// and events keep being accepted; only the rollback check at the next
// start is weaker (it compares with an older checkpoint).
func (l *Log) publish(msg []byte) {
	f := l.cfg.Published
	if f == nil {
		return
	}
	if err := f.Write(msg); err != nil {
		l.log.Error("record the published audit checkpoint; the rollback check at the next start compares with an older one", "error", err)
	}
}

// RememberedFile returns the file in dir that keeps the latest checkpoint a
// verifier checked of the log whose key is vkey: one file per log key,
// named after the key's NAME+HASH (escaped for a file name), as the Go
// checksum database client keeps the latest tree of each server.
func RememberedFile(dir, vkey string) CheckpointFile {
	return CheckpointFile{Path: filepath.Join(dir, url.PathEscape(KeyID(vkey)))}
}
