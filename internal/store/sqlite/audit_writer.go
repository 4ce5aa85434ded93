package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/fsync"
)

// auditWriter is the connection the audit log appends through. It
// commits with synchronous=NORMAL, which in WAL mode writes a commit to
// the write-ahead log without waiting for the disk, and the log makes its
// commits durable by fsyncing the write-ahead log itself (sync), once per
// group of commits and while the next batch is being written. A commit
// that sync covered is as durable as one made with synchronous=FULL: the
// WAL is only ever overwritten after a checkpoint has copied its frames
// into the database file and synced that.
type auditWriter struct {
	walPath string

	mu   sync.Mutex // guards the fields below and orders sync against close
	conn *sql.Conn
	ins  batchInsert // appends, on conn
	wal  *os.File    // the WAL, opened on the first sync

	ckptMu   sync.Mutex // guards the fields below
	ckpt     *sql.Conn  // for background checkpoints, opened on first use
	lastCkpt time.Time
	db       *sql.DB
}

// The writer connection leaves checkpoints (copying the WAL into the
// database file and syncing it, several milliseconds) to the syncer, which
// runs a PASSIVE checkpoint beside the writer at most every
// auditCheckpointEvery after a sync (see checkpoint). The writer checkpoints
// itself only when the WAL reaches auditWriterCheckpointPages (SQLite's
// default is 1000), and then finds most of it copied already: a commit
// that triggers a checkpoint waits for it, which was the proxy's slowest
// decisions.
const (
	auditCheckpointEvery       = 100 * time.Millisecond
	auditWriterCheckpointPages = 8192
)

// auditWriter returns the audit log's writer connection, opening it on
// first use.
func (d *DB) auditWriter(ctx context.Context) (*auditWriter, error) {
	d.auditMu.Lock()
	defer d.auditMu.Unlock()
	if d.auditW != nil {
		return d.auditW, nil
	}
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open the audit writer connection: %w", err)
	}
	for _, p := range []string{`PRAGMA synchronous = NORMAL`, fmt.Sprintf(`PRAGMA wal_autocheckpoint = %d`, auditWriterCheckpointPages)} {
		if _, err := conn.ExecContext(ctx, p); err != nil {
			conn.Close()
			return nil, fmt.Errorf("set up the audit writer connection: %s: %w", p, err)
		}
	}
	d.auditW = &auditWriter{walPath: d.path + "-wal", conn: conn, db: d.db,
		ins: batchInsert{conn: conn, query: appendQuery, per: 4}}
	return d.auditW, nil
}

// exec appends n records whose parameters are args (auditColumns for
// each) at index first, returning how many rows were inserted: n, or 0
// if the log does not continue at first.
func (w *auditWriter) exec(ctx context.Context, first int64, n int, args []any) (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		return 0, sql.ErrConnDone
	}
	w.ins.extra = func(row int) []any { return []any{first + int64(row)} }
	return w.ins.exec(ctx, n, args)
}

// execQuery runs an ad hoc statement on the writer connection.
func (w *auditWriter) execQuery(ctx context.Context, query string, args ...any) (sql.Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		return nil, sql.ErrConnDone
	}
	return w.conn.ExecContext(ctx, query, args...)
}

// sync fsyncs the write-ahead log. The file is reopened if it is not the
// one at walPath any more (SQLite deletes the WAL when the last
// connection closes, and this one stays open, so that only happens if
// someone else removed it).
func (w *auditWriter) sync() error {
	w.mu.Lock()
	if w.conn == nil {
		w.mu.Unlock()
		return sql.ErrConnDone
	}
	f := w.wal
	if f != nil {
		cur, err1 := os.Stat(w.walPath)
		open, err2 := f.Stat()
		if err1 != nil || err2 != nil || !os.SameFile(cur, open) {
			f.Close()
			f, w.wal = nil, nil
		}
	}
	if f == nil {
		var err error
		if f, err = os.Open(w.walPath); err != nil {
			w.mu.Unlock()
			return fmt.Errorf("open the write-ahead log: %w", err)
		}
		w.wal = f
	}
	w.mu.Unlock()
	// Outside the lock, so that the next batch is written meanwhile; a
	// close waits for nothing but cannot pull the file away (os.File
	// serialises Close against a running Sync).
	if err := fsync.Data(f); err != nil {
		return fmt.Errorf("fdatasync %s: %w", w.walPath, err)
	}
	return nil
}

// checkpoint runs a PASSIVE checkpoint, which copies what it can of the
// WAL into the database file without blocking the writer or readers, if
// auditCheckpointEvery has passed since the last. Errors are not fatal: the
// writer's own checkpoints still bound the WAL.
func (w *auditWriter) checkpoint(ctx context.Context) {
	w.ckptMu.Lock()
	defer w.ckptMu.Unlock()
	if time.Since(w.lastCkpt) < auditCheckpointEvery || w.db == nil {
		return
	}
	w.lastCkpt = time.Now()
	if w.ckpt == nil {
		c, err := w.db.Conn(ctx)
		if err != nil {
			return
		}
		w.ckpt = c
	}
	w.ckpt.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
}

func (w *auditWriter) close() {
	w.ckptMu.Lock()
	if w.ckpt != nil {
		w.ckpt.Close()
		w.ckpt = nil
	}
	w.db = nil
	w.ckptMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ins.close()
	if w.wal != nil {
		w.wal.Close()
	}
	if w.conn != nil {
		w.conn.Close()
	}
	w.conn, w.wal = nil, nil
}
