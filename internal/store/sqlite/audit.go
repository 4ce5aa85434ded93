package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// AuditStore keeps the audit log (package audit) in the audit_events and
// audit_checkpoints tables of a [DB]. Each event is stored as its
// canonical JSON (the exact leaf data of the Merkle tree) next to its
// stored tree hashes; the searchable columns are generated from the JSON
// and indexed, so they always agree with the hashed event.
type AuditStore struct {
	db *DB
}

var _ audit.Backend = (*AuditStore)(nil)

// Audit returns the audit log storage of d.
func (d *DB) Audit() *AuditStore { return &AuditStore{db: d} }

const auditColumns = `idx, data, hashes`

// auditMaxRows is the most rows one INSERT statement carries (three
// parameters each, within SQLite's limit of 32766).
const auditMaxRows = 8192

// AppendRecords implements audit.Records. A batch is one multi-row
// INSERT in autocommit mode: one statement is its own transaction (one
// commit, one fsync), and outside an explicit transaction SQLite needs no
// statement journal for it. The statement inserts nothing unless the log
// continues exactly at the first record's index.
func (a *AuditStore) AppendRecords(ctx context.Context, recs []audit.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if len(recs) > auditMaxRows {
		return fmt.Errorf("append audit events: %d records in one batch, over the limit of %d", len(recs), auditMaxRows)
	}
	args := make([]any, 0, 3*len(recs)+1)
	for i, r := range recs {
		if r.Index != recs[0].Index+int64(i) {
			return fmt.Errorf("append audit events: record %d has index %d, want %d (indexes must be consecutive)", i, r.Index, recs[0].Index+int64(i))
		}
		hashes := make([]byte, 0, len(r.Hashes)*tlog.HashSize)
		for _, h := range r.Hashes {
			hashes = append(hashes, h[:]...)
		}
		args = append(args, r.Index, string(r.Data), hashes)
	}
	args = append(args, recs[0].Index)
	var (
		res sql.Result
		err error
	)
	if st := a.db.appendStmt(ctx, len(recs)); st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = a.db.db.ExecContext(ctx, appendQuery(len(recs)), args...)
	}
	if err != nil {
		if isUnique(err) {
			return fmt.Errorf("append audit events: %w: an event id is already in the log", store.ErrExists)
		}
		return fmt.Errorf("append audit events: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != int64(len(recs)) {
		size, _ := a.RecordCount(ctx)
		return fmt.Errorf("append audit events: the log continues at %d, not at %d", size, recs[0].Index)
	}
	return nil
}

// scanRecord reads one row selected with auditColumns.
func scanRecord(rows interface{ Scan(...any) error }) (audit.Record, error) {
	var (
		r      audit.Record
		hashes []byte
	)
	if err := rows.Scan(&r.Index, &r.Data, &hashes); err != nil {
		return r, err
	}
	if len(hashes)%tlog.HashSize != 0 {
		return r, &audit.RecordError{Index: r.Index, Err: fmt.Errorf("column hashes has %d bytes, not a multiple of %d", len(hashes), tlog.HashSize)}
	}
	r.Hashes = make([]tlog.Hash, len(hashes)/tlog.HashSize)
	for i := range r.Hashes {
		copy(r.Hashes[i][:], hashes[i*tlog.HashSize:])
	}
	return r, nil
}

// RecordCount implements audit.Records.
func (a *AuditStore) RecordCount(ctx context.Context) (int64, error) {
	var n int64
	if err := a.db.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx)+1, 0) FROM audit_events`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count audit events: %w", err)
	}
	return n, nil
}

// ReadRecords implements audit.Records.
func (a *AuditStore) ReadRecords(ctx context.Context, from int64, limit int) ([]audit.Record, error) {
	rows, err := a.db.db.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_events WHERE idx >= ? ORDER BY idx LIMIT ?`, from, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit events from %d: %w", from, err)
	}
	return collectRecords(rows, fmt.Sprintf("read audit events from %d", from))
}

func collectRecords(rows *sql.Rows, what string) ([]audit.Record, error) {
	defer rows.Close()
	var out []audit.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			var re *audit.RecordError
			if errors.As(err, &re) {
				return out, err
			}
			return out, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// RecordByID implements audit.Records.
func (a *AuditStore) RecordByID(ctx context.Context, id string) (audit.Record, error) {
	r, err := scanRecord(a.db.db.QueryRowContext(ctx, `SELECT `+auditColumns+` FROM audit_events WHERE id = ?`, id))
	if err != nil {
		return r, fmt.Errorf("read audit event %q: %w", id, notFound(err))
	}
	return r, nil
}

// auditBlockShift is the shift of the idx >> 12 that leads every search
// index (see migrations/0002_audit.sql).
const auditBlockShift = 12

// auditCond is one SQL condition on the generated columns of audit_events.
type auditCond struct {
	sql     string
	args    []any
	indexed bool // the column has a search index
}

// SearchRecords implements audit.Records.
//
// The candidates come from one search index, block by block (see the
// migration), or from the primary key when the query names no indexed
// field; every condition is also checked on the generated columns in SQL,
// and audit.Query.Match has the final word. Time bounds are turned into
// index bounds by binary search, relying on event times following the
// index order to within audit.TimeSkew.
func (a *AuditStore) SearchRecords(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	size, err := a.RecordCount(ctx)
	if err != nil {
		return nil, fmt.Errorf("search audit events: %w", err)
	}
	lo, hi := max(q.After, 0), size
	if q.Before > 0 {
		hi = min(hi, q.Before)
	}
	if !q.Since.IsZero() && lo < hi {
		if lo, err = a.firstAtOrAfter(ctx, lo, hi, q.Since.Add(-audit.TimeSkew)); err != nil {
			return nil, err
		}
	}
	if !q.Until.IsZero() && lo < hi {
		if hi, err = a.firstAtOrAfter(ctx, lo, hi, q.Until.Add(audit.TimeSkew)); err != nil {
			return nil, err
		}
	}
	// Ordered by how selective the column usually is: the first indexed
	// one drives the scan.
	var conds []auditCond
	if q.Task != "" {
		conds = append(conds, auditCond{`task = ?`, []any{q.Task}, true})
	}
	if q.Instance != "" {
		conds = append(conds, auditCond{`instance = ?`, []any{q.Instance}, true})
	}
	if q.SpiffeID != "" {
		// A superset of "this ID or under it as a path"; Match decides.
		conds = append(conds, auditCond{`spiffe_id >= ? AND spiffe_id < ?`,
			[]any{q.SpiffeID, strings.TrimSuffix(q.SpiffeID, "/") + "0"}, true})
	}
	if q.Type != "" {
		conds = append(conds, auditCond{`type = ?`, []any{string(q.Type)}, true})
	}
	if q.Decision != "" {
		conds = append(conds, auditCond{`decision = ?`, []any{q.Decision}, false})
	}
	if !q.Since.IsZero() {
		conds = append(conds, auditCond{`time_ms >= ?`, []any{q.Since.UnixMilli() - 1}, false})
	}
	if !q.Until.IsZero() {
		conds = append(conds, auditCond{`time_ms <= ?`, []any{q.Until.UnixMilli() + 1}, false})
	}
	sc := &auditScan{a: a, q: q, conds: conds}
	if len(conds) > 0 && conds[0].indexed {
		err = sc.blocks(ctx, lo, hi)
	} else {
		err = sc.scan(ctx, lo, hi, false)
	}
	return sc.out, err
}

// auditScan collects the records matching q, in q's order.
type auditScan struct {
	a     *AuditStore
	q     audit.Query
	conds []auditCond
	out   []audit.Record
}

func (s *auditScan) full() bool { return len(s.out) >= s.q.Limit }

// blocks scans [lo, hi) one block of the driving index at a time.
func (s *auditScan) blocks(ctx context.Context, lo, hi int64) error {
	if lo >= hi {
		return nil
	}
	first, last := lo>>auditBlockShift, (hi-1)>>auditBlockShift
	for i := range last - first + 1 {
		b := last - i
		if s.q.Ascending {
			b = first + i
		}
		blo, bhi := max(lo, b<<auditBlockShift), min(hi, (b+1)<<auditBlockShift)
		if err := s.scan(ctx, blo, bhi, true); err != nil {
			return err
		}
		if s.full() {
			return nil
		}
	}
	return nil
}

// scan reads candidates in [lo, hi) page by page, through the first
// condition's search index if block is set (all of [lo, hi) must then lie
// in one block), or else through the primary key.
func (s *auditScan) scan(ctx context.Context, lo, hi int64, block bool) error {
	const page = 256
	for lo < hi && !s.full() {
		var (
			where []string
			args  []any
		)
		if block {
			where = append(where, `(idx >> 12) = ?`)
			args = append(args, lo>>auditBlockShift)
		}
		for _, c := range s.conds {
			where = append(where, c.sql)
			args = append(args, c.args...)
		}
		where = append(where, `idx >= ?`, `idx < ?`)
		args = append(args, lo, hi, page)
		order := `DESC`
		if s.q.Ascending {
			order = `ASC`
		}
		rows, err := s.a.db.db.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_events WHERE `+
			strings.Join(where, ` AND `)+` ORDER BY idx `+order+` LIMIT ?`, args...)
		if err != nil {
			return fmt.Errorf("search audit events: %w", err)
		}
		recs, err := collectRecords(rows, "search audit events")
		if err != nil {
			return err
		}
		for _, r := range recs {
			e, err := r.Event()
			if err != nil {
				return err
			}
			if s.q.Match(r.Index, &e) && !s.full() {
				s.out = append(s.out, r)
			}
		}
		if len(recs) < page {
			return nil
		}
		if s.q.Ascending {
			lo = recs[len(recs)-1].Index + 1
		} else {
			hi = recs[len(recs)-1].Index
		}
	}
	return nil
}

// firstAtOrAfter returns the first index in [lo, hi] whose event time is
// at or after t, by binary search over the index order. Because event
// times follow the index order to within audit.TimeSkew, every event
// before the returned index is earlier than t + audit.TimeSkew.
func (a *AuditStore) firstAtOrAfter(ctx context.Context, lo, hi int64, t time.Time) (int64, error) {
	want := t.UnixMilli()
	for lo < hi {
		mid := lo + (hi-lo)/2
		var ms sql.NullInt64
		err := a.db.db.QueryRowContext(ctx, `SELECT time_ms FROM audit_events WHERE idx = ?`, mid).Scan(&ms)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("search audit events by time: %w", err)
		}
		if ms.Valid && ms.Int64 >= want {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}

// ReadHashes implements audit.Records. Each stored-hash index names a
// record and a position in that record's hashes column.
func (a *AuditStore) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	stmt, err := a.db.db.PrepareContext(ctx, `SELECT hashes FROM audit_events WHERE idx = ?`)
	if err != nil {
		return nil, fmt.Errorf("read audit hashes: %w", err)
	}
	defer stmt.Close()
	cache := make(map[int64][]byte)
	for i, x := range indexes {
		if x < 0 {
			return nil, fmt.Errorf("read audit hashes: negative stored-hash index %d", x)
		}
		// The hash of subtree (level, n) was stored by the append of
		// the subtree's last record m, as the level'th hash after m's
		// leaf hash.
		level, n := tlog.SplitStoredHashIndex(x)
		m := (n+1)<<level - 1
		hashes, ok := cache[m]
		if !ok {
			if err := stmt.QueryRowContext(ctx, m).Scan(&hashes); err != nil {
				return nil, fmt.Errorf("read audit hashes: stored hash %d (record %d): %w", x, m, notFound(err))
			}
			cache[m] = hashes
		}
		off := level * tlog.HashSize
		if off+tlog.HashSize > len(hashes) {
			return nil, fmt.Errorf("read audit hashes: stored hash %d is missing from record %d", x, m)
		}
		copy(out[i][:], hashes[off:])
	}
	return out, nil
}

// PutCheckpoint implements audit.Checkpoints.
func (a *AuditStore) PutCheckpoint(ctx context.Context, c audit.StoredCheckpoint) error {
	if c.CreatedAt.IsZero() {
		c.CreatedAt = a.db.now()
	}
	_, err := a.db.db.ExecContext(ctx, `INSERT INTO audit_checkpoints (size, note, created_at) VALUES (?, ?, ?)
		ON CONFLICT(size) DO UPDATE SET note = excluded.note, created_at = excluded.created_at`,
		c.Size, c.Note, unixNano(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("store audit checkpoint at size %d: %w", c.Size, err)
	}
	return nil
}

// LatestCheckpoint implements audit.Checkpoints.
func (a *AuditStore) LatestCheckpoint(ctx context.Context) (audit.StoredCheckpoint, error) {
	var (
		c  audit.StoredCheckpoint
		at int64
	)
	err := a.db.db.QueryRowContext(ctx, `SELECT size, note, created_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1`).
		Scan(&c.Size, &c.Note, &at)
	if err != nil {
		return c, fmt.Errorf("read latest audit checkpoint: %w", notFound(err))
	}
	c.CreatedAt = fromNano(at)
	return c, nil
}

// ListCheckpoints implements audit.Checkpoints.
func (a *AuditStore) ListCheckpoints(ctx context.Context) ([]audit.StoredCheckpoint, error) {
	rows, err := a.db.db.QueryContext(ctx, `SELECT size, note, created_at FROM audit_checkpoints ORDER BY size`)
	if err != nil {
		return nil, fmt.Errorf("list audit checkpoints: %w", err)
	}
	defer rows.Close()
	var out []audit.StoredCheckpoint
	for rows.Next() {
		var (
			c  audit.StoredCheckpoint
			at int64
		)
		if err := rows.Scan(&c.Size, &c.Note, &at); err != nil {
			return nil, fmt.Errorf("list audit checkpoints: %w", err)
		}
		c.CreatedAt = fromNano(at)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit checkpoints: %w", err)
	}
	return out, nil
}

// appendQuery is the statement that appends n records: one multi-row
// INSERT that succeeds only if the log currently ends just before the
// first record.
func appendQuery(n int) string {
	var q strings.Builder
	q.Grow(8*n + 256)
	q.WriteString(`INSERT OR ROLLBACK INTO audit_events (idx, data, hashes) SELECT column1, column2, column3 FROM (VALUES `)
	for i := range n {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(`(?,?,?)`)
	}
	q.WriteString(`) WHERE (SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_events) = ?`)
	return q.String()
}

// maxCachedAppend is the largest batch whose append statement is kept
// prepared. Small batches (one event at a time under light load) are the
// common case, where preparing the statement anew cost about a quarter of
// each commit; large batches amortise it.
const maxCachedAppend = 32

// appendStmt returns the prepared append statement for n records, or nil
// for batches larger than maxCachedAppend (or if preparing fails, so the
// caller falls back to an ad hoc statement that reports the error).
func (d *DB) appendStmt(ctx context.Context, n int) *sql.Stmt {
	if n > maxCachedAppend {
		return nil
	}
	d.stmtMu.Lock()
	defer d.stmtMu.Unlock()
	if st := d.appendStmts[n]; st != nil {
		return st
	}
	st, err := d.db.PrepareContext(ctx, appendQuery(n))
	if err != nil {
		return nil
	}
	if d.appendStmts == nil {
		d.appendStmts = map[int]*sql.Stmt{}
	}
	d.appendStmts[n] = st
	return st
}
