package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writ-dev/writ/internal/auditlog"
)

// The audit search index is a second SQLite file beside the store
// (AuditIndexPath) holding the searchable fields of every event
// (auditlog.Keys but the id, which stays with the event). It is written by
// its own goroutine, on its own connection, behind the log's writer.
//
// Why a file of its own: SQLite lets one connection write a database at a
// time, and keeping four search indexes up to date cost about a third of
// every append. In a second file the index is written on the other core
// while the log commits its next batch.
//
// The index is derived data. It may lag the log by the batches being
// indexed (searches read the events not yet indexed directly), it is
// caught up from the events when the store opens (also after a crash, and
// rebuilt from scratch if the file is missing), and `writ audit verify`
// checks every indexed row against its event, so an edited row, which
// could hide an event from searches, is caught.
const auditIndexSchema = `
CREATE TABLE IF NOT EXISTS audit_keys (
	idx       INTEGER PRIMARY KEY, -- the event's index in the log
	type      TEXT NOT NULL,
	spiffe_id TEXT,                -- NULL when the event has none
	instance  TEXT,
	task      TEXT
);
-- Each index leads with the event's block of 4096 indexes (idx >> 12):
-- new entries land in the few pages of the current block instead of all
-- over the index, and searches probe the blocks one by one.
CREATE INDEX IF NOT EXISTS audit_keys_type ON audit_keys(idx >> 12, type);
CREATE INDEX IF NOT EXISTS audit_keys_spiffe_id ON audit_keys(idx >> 12, spiffe_id) WHERE spiffe_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_keys_instance ON audit_keys(idx >> 12, instance) WHERE instance IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_keys_task ON audit_keys(idx >> 12, task) WHERE task IS NOT NULL;
-- The id of the log's first event: an index made for another store (a file
-- copied or restored beside the wrong writ.db) is detected and rebuilt.
CREATE TABLE IF NOT EXISTS audit_index_meta (first_id TEXT NOT NULL);
`

// auditIndexVersion is the index file's user_version. A file with another
// version is rebuilt.
const auditIndexVersion = 2

// auditIndexMaxPending bounds the keys kept in memory for the indexer;
// beyond it they are dropped and the indexer reads them back from the
// events.
const auditIndexMaxPending = 1 << 16

// AuditIndexPath returns the path of the audit search index of the store
// at path: "writ.db" has its index in "writ.audit-index.db".
func AuditIndexPath(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".audit-index.db"
}

// indexRow is one event's searchable fields.
type indexRow struct {
	idx int64
	k   auditlog.Keys
}

// auditIndex is an open audit search index.
type auditIndex struct {
	d    *DB // the store whose events are indexed
	path string
	db   *sql.DB // searches and, read-only, offline tools
	w    *sql.Conn
	ins  batchInsert // on w, owned by the indexer goroutine

	indexed atomic.Int64 // events [0, indexed) are indexed
	// unqueued is set while events may be in the store that the queue
	// will not bring: from before the store opened, or dropped from a
	// full queue. Until a read of the events finds nothing past the
	// index, an empty queue sends the indexer to the events; after it,
	// every new event comes through add (WriteRecords is the only
	// writer), so an empty queue costs no read.
	unqueued atomic.Bool
	// maxPending bounds pending (auditIndexMaxPending; tests lower it).
	maxPending int

	mu      sync.Mutex
	pending []indexRow // written events waiting for the indexer, by index
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

// auditIndex returns the store's search index, opening it on first use.
// A writable store starts the indexer, which first catches up with the
// events; a read-only store opens an existing index read-only, and has
// none (every search reads the events) if the file is missing.
func (d *DB) auditIndex(ctx context.Context) (*auditIndex, error) {
	d.auditMu.Lock()
	defer d.auditMu.Unlock()
	if d.auditIx != nil {
		return d.auditIx, nil
	}
	ix := &auditIndex{d: d, path: AuditIndexPath(d.path)}
	var err error
	if d.readOnly {
		err = ix.openReadOnly(ctx)
	} else if err = ix.open(ctx); err != nil && ctx.Err() == nil {
		// The index is derived data, written without syncs: a power
		// loss can leave it damaged. Start it afresh from the events.
		for _, sfx := range []string{"", "-wal", "-shm"} {
			if rerr := os.Remove(ix.path + sfx); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				return nil, fmt.Errorf("open the audit search index %s: %w; removing it to rebuild: %v", ix.path, err, rerr)
			}
		}
		ix = &auditIndex{d: d, path: ix.path}
		err = ix.open(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("open the audit search index %s: %w (it is rebuilt from the events if you delete it and restart writ)", ix.path, err)
	}
	d.auditIx = ix
	return ix, nil
}

func (ix *auditIndex) open(ctx context.Context) error {
	q := url.Values{}
	// No syncs: the index is rebuilt from the events if a power loss
	// damages it (see auditIndex). Its checkpoints' fsyncs were the
	// largest source of the access proxy's tail latency, competing with
	// the log's own syncs for the disk.
	for _, p := range []string{"journal_mode(WAL)", "synchronous(OFF)", "busy_timeout(10000)", cacheSize} {
		q.Add("_pragma", p)
	}
	if err := privateFile(ix.path); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", fileDSN(ix.path, q))
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(8)
	ix.db = db
	fail := func(err error) error {
		if ix.w != nil {
			ix.w.Close()
		}
		db.Close()
		return err
	}
	if ix.w, err = db.Conn(ctx); err != nil {
		return fail(err)
	}
	var version int
	if err := ix.w.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fail(err)
	}
	if version != auditIndexVersion {
		// A new file, or one of another layout: (re)build it.
		if _, err := ix.w.ExecContext(ctx, `DROP TABLE IF EXISTS audit_keys`); err != nil {
			return fail(err)
		}
	}
	if _, err := ix.w.ExecContext(ctx, auditIndexSchema+fmt.Sprintf(`PRAGMA user_version = %d;`, auditIndexVersion)); err != nil {
		return fail(err)
	}
	// The index never runs ahead of the events: rows past the end of
	// the log (a crash between the two files' commits cannot make
	// them, but a restored backup of the store can) are dropped.
	size, err := ix.d.Audit().RecordCount(ctx)
	if err != nil {
		return fail(err)
	}
	if _, err := ix.w.ExecContext(ctx, `DELETE FROM audit_keys WHERE idx >= ?`, size); err != nil {
		return fail(err)
	}
	if same, err := ix.sameLog(ctx, ix.w); err != nil {
		return fail(err)
	} else if !same {
		if _, err := ix.w.ExecContext(ctx, `DELETE FROM audit_keys; DELETE FROM audit_index_meta`); err != nil {
			return fail(err)
		}
	}
	var next int64
	if err := ix.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_keys`).Scan(&next); err != nil {
		return fail(err)
	}
	ix.indexed.Store(next)
	ix.unqueued.Store(true)
	ix.maxPending = auditIndexMaxPending
	ix.ins = batchInsert{conn: ix.w, query: indexQuery, per: 5}
	ix.wake = make(chan struct{}, 1)
	ix.stop = make(chan struct{})
	ix.done = make(chan struct{})
	go ix.run()
	if next < size {
		ix.signal()
	}
	return nil
}

func (ix *auditIndex) openReadOnly(ctx context.Context) error {
	if _, err := os.Stat(ix.path); errors.Is(err, os.ErrNotExist) {
		return nil // no index: searches read the events, verify has no rows to check
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "query_only(1)")
	db, err := sql.Open("sqlite", fileDSN(ix.path, q))
	if err != nil {
		return err
	}
	var (
		version int
		next    int64
	)
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		db.Close()
		return err
	}
	if version != auditIndexVersion {
		db.Close()
		return nil // a layout this binary does not read: as if missing
	}
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_keys`).Scan(&next); err != nil {
		db.Close()
		return err
	}
	if same, err := ix.sameLog(ctx, db); err != nil || !same {
		db.Close()
		return err // another log's index: as if missing
	}
	ix.db = db
	ix.indexed.Store(next)
	return nil
}

// sameLog reports whether the index on q was made for this store's log:
// its recorded first event id is the store's, or it holds no rows.
func (ix *auditIndex) sameLog(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (bool, error) {
	var rows int64
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM audit_keys LIMIT 1)`).Scan(&rows); err != nil {
		return false, err
	}
	if rows == 0 {
		return true, nil
	}
	var recorded, first string
	if err := q.QueryRowContext(ctx, `SELECT first_id FROM audit_index_meta LIMIT 1`).Scan(&recorded); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, err
	}
	if err := ix.d.db.QueryRowContext(ctx, `SELECT id FROM audit_events WHERE idx = 0`).Scan(&first); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, err
	}
	return recorded != "" && recorded == first, nil
}

// WaitAuditIndex waits until the search index holds every event of the
// log as it is now, or ctx ends.
func (d *DB) WaitAuditIndex(ctx context.Context) error {
	ix, err := d.auditIndex(ctx)
	if err != nil {
		return err
	}
	size, err := d.Audit().RecordCount(ctx)
	if err != nil {
		return err
	}
	for ix.upTo() < size {
		if ix.stop == nil {
			return errors.New("the audit search index is read-only here and behind the log")
		}
		ix.signal()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// AuditIndexed returns how many of the log's events the search index
// holds (events [0, n)), for the index lag metric.
func (d *DB) AuditIndexed() int64 {
	d.auditMu.Lock()
	ix := d.auditIx
	d.auditMu.Unlock()
	return ix.upTo()
}

// upTo returns the number of indexed events: [0, upTo) are in the index.
func (ix *auditIndex) upTo() int64 {
	if ix == nil || ix.db == nil {
		return 0
	}
	return ix.indexed.Load()
}

// add queues the keys of newly written events for the indexer.
func (ix *auditIndex) add(rows []indexRow) {
	if ix.stop == nil || len(rows) == 0 {
		return
	}
	ix.mu.Lock()
	if len(ix.pending)+len(rows) > ix.maxPending {
		ix.pending = nil // the indexer reads them back from the events
		ix.unqueued.Store(true)
	}
	ix.pending = append(ix.pending, rows...)
	ix.mu.Unlock()
	ix.signal()
}

func (ix *auditIndex) signal() {
	select {
	case ix.wake <- struct{}{}:
	default:
	}
}

// run is the indexer goroutine.
func (ix *auditIndex) run() {
	defer close(ix.done)
	ctx := context.Background()
	for {
		select {
		case <-ix.wake:
		case <-ix.stop:
			ix.flush(ctx)
			return
		}
		// Let more events arrive, so that one commit indexes many:
		// a commit's cost is mostly per commit under light load.
		select {
		case <-time.After(auditIndexDelay):
		case <-ix.stop:
			ix.flush(ctx)
			return
		}
		ix.catchUp(ctx)
	}
}

// flush indexes the queued rows that continue the index, at close. It
// reads nothing back from the events: a rebuild in progress would hold up
// shutdown, and the next start catches up anyway.
func (ix *auditIndex) flush(ctx context.Context) {
	rows, next := ix.take()
	if len(rows) > 0 && rows[0].idx == next && ix.insert(ctx, rows) == nil {
		ix.indexed.Store(rows[len(rows)-1].idx + 1)
	}
}

// take empties the queue and returns its rows that the index does not
// hold yet, with the index of the first event it lacks.
func (ix *auditIndex) take() (rows []indexRow, next int64) {
	ix.mu.Lock()
	rows = ix.pending
	ix.pending = nil
	ix.mu.Unlock()
	next = ix.indexed.Load()
	for len(rows) > 0 && rows[0].idx < next {
		rows = rows[1:]
	}
	return rows, next
}

// auditIndexDelay is how long the indexer lets events gather before it
// indexes them: a commit's cost is mostly per commit. Searches read the
// events not yet indexed directly, so the lag costs them little.
const auditIndexDelay = 100 * time.Millisecond

// catchUp indexes every event written so far. Errors are kept for the
// next round: the index only lags, and searches read what it lacks from
// the events.
func (ix *auditIndex) catchUp(ctx context.Context) {
	for {
		rows, next := ix.take()
		if len(rows) == 0 && !ix.unqueued.Swap(false) {
			return
		}
		if len(rows) == 0 || rows[0].idx > next {
			// A gap (dropped or from before the store opened): read
			// the events up to the queued ones from the store.
			end := int64(-1)
			if len(rows) > 0 {
				end = rows[0].idx
			}
			gap, err := ix.fromEvents(ctx, next, end)
			if end < 0 && (err != nil || len(gap) > 0) {
				ix.unqueued.Store(true) // not caught up yet: read again
			}
			if err != nil || len(gap) == 0 {
				if len(rows) > 0 {
					ix.requeue(rows)
				}
				return
			}
			rows = append(gap, rows...)
		}
		if err := ix.insert(ctx, rows); err != nil {
			ix.requeue(rows)
			return
		}
		ix.indexed.Store(rows[len(rows)-1].idx + 1)
	}
}

// requeue puts rows back in front of the queue after a failed round.
func (ix *auditIndex) requeue(rows []indexRow) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if len(rows)+len(ix.pending) <= ix.maxPending {
		ix.pending = append(rows, ix.pending...)
	} else {
		ix.unqueued.Store(true) // dropped: read them back from the events
	}
}

// fromEvents reads the keys of events [from, end) from the store (end < 0:
// to the end of the log), at most one page.
func (ix *auditIndex) fromEvents(ctx context.Context, from, end int64) ([]indexRow, error) {
	const page = 4096
	n := page
	if end >= 0 {
		n = int(min(end-from, page))
	}
	recs, err := ix.d.Audit().readEvents(ctx, from, n)
	if err != nil {
		return nil, err
	}
	rows := make([]indexRow, 0, len(recs))
	for _, r := range recs {
		if r.Index != from+int64(len(rows)) {
			break // a hole in the log: verify reports it; index up to it
		}
		k, err := auditlog.DecodeKeys(r.Data)
		if err != nil {
			k = auditlog.Keys{Type: "?"} // unreadable: verify reports it
		}
		rows = append(rows, indexRow{r.Index, k})
	}
	return rows, nil
}

// insert stores rows in one transaction. The first event's id is
// recorded first (see sameLog).
func (ix *auditIndex) insert(ctx context.Context, rows []indexRow) error {
	if rows[0].idx == 0 {
		if _, err := ix.w.ExecContext(ctx, `DELETE FROM audit_index_meta; INSERT INTO audit_index_meta (first_id) VALUES (?)`, rows[0].k.ID); err != nil {
			return err
		}
	}
	args := make([]any, 0, 5*len(rows))
	for _, r := range rows {
		args = append(args, r.idx, string(r.k.Type), nullString(r.k.SpiffeID), nullString(r.k.Instance), nullString(r.k.Task))
	}
	_, err := ix.ins.exec(ctx, len(rows), args)
	return err
}

// indexQuery is the statement that indexes n events.
func indexQuery(n int) string {
	var q strings.Builder
	q.WriteString(`INSERT OR REPLACE INTO audit_keys (idx, type, spiffe_id, instance, task) VALUES `)
	for i := range n {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(`(?,?,?,?,?)`)
	}
	return q.String()
}

// keys returns the indexed keys of events [from, to): out[i] holds event
// from+i's, the zero Keys if the index has no row for it.
func (ix *auditIndex) keys(ctx context.Context, from, to int64) ([]auditlog.Keys, error) {
	if ix.upTo() == 0 || from >= to {
		return nil, nil
	}
	out := make([]auditlog.Keys, to-from)
	rows, err := ix.db.QueryContext(ctx, `SELECT idx, type, spiffe_id, instance, task FROM audit_keys WHERE idx >= ? AND idx < ?`, from, to)
	if err != nil {
		return nil, fmt.Errorf("read the audit search index: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			idx                      int64
			k                        auditlog.Keys
			spiffeID, instance, task sql.NullString
		)
		if err := rows.Scan(&idx, &k.Type, &spiffeID, &instance, &task); err != nil {
			return nil, fmt.Errorf("read the audit search index: %w", err)
		}
		k.SpiffeID, k.Instance, k.Task = spiffeID.String, instance.String, task.String
		if idx >= from && idx < to {
			out[idx-from] = k
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the audit search index: %w", err)
	}
	return out, nil
}

// close indexes what is queued (see flush), stops the indexer and closes
// the file.
func (ix *auditIndex) close() {
	if ix.stop != nil {
		close(ix.stop)
		<-ix.done
	}
	ix.ins.close()
	if ix.w != nil {
		ix.w.Close()
	}
	if ix.db != nil {
		ix.db.Close()
	}
}
