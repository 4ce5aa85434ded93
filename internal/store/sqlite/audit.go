package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// AuditStore keeps the audit log (package auditlog) in the audit_events and
// audit_checkpoints tables of a [DB]. Each event is stored as its
// canonical JSON (the exact leaf data of the Merkle tree) next to its
// stored tree hashes and its id; its other searchable fields go to the
// audit search index, a second file written in parallel (see
// audit_index.go). ReadRecords returns every event's keys as stored in
// the id column and the index, so that auditlog.Verify can check them
// against the JSON.
type AuditStore struct {
	db *DB
}

var (
	_ auditlog.Backend   = (*AuditStore)(nil)
	_ auditlog.Pipeliner = (*AuditStore)(nil)
)

// Audit returns the audit log storage of d.
func (d *DB) Audit() *AuditStore { return &AuditStore{db: d} }

const auditColumns = `idx, data, hashes, id`

// auditMaxRows is the most rows one INSERT statement carries (four
// parameters each, within SQLite's limit of 32766). It is at least
// auditlog.DefaultMaxBatch.
const auditMaxRows = 8000

// AppendRecords implements auditlog.Records: WriteRecords, then
// SyncRecords.
func (a *AuditStore) AppendRecords(ctx context.Context, recs []auditlog.Record) error {
	if err := a.WriteRecords(ctx, recs); err != nil {
		return err
	}
	return a.SyncRecords(ctx)
}

// WriteRecords implements auditlog.Pipeliner. A batch is one transaction of
// multi-row INSERTs with prepared statements (see batchInsert) on the
// log's own connection (see auditWriter); a batch that one statement
// carries runs in autocommit mode, where SQLite needs no statement
// journal. Each statement inserts nothing unless the log continues
// exactly at its first record's index. Once the batch is committed, its
// keys are queued for the search index.
func (a *AuditStore) WriteRecords(ctx context.Context, recs []auditlog.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if len(recs) > auditMaxRows {
		return fmt.Errorf("append audit events: %d records in one batch, over the limit of %d", len(recs), auditMaxRows)
	}
	ix, err := a.db.auditIndex(ctx)
	if err != nil {
		return fmt.Errorf("append audit events: %w", err)
	}
	args := make([]any, 0, 4*len(recs))
	rows := make([]indexRow, len(recs))
	nh := 0
	for _, r := range recs {
		nh += len(r.Hashes)
	}
	hashBuf := make([]byte, 0, nh*tlog.HashSize) // every record's, one allocation
	for i, r := range recs {
		if r.Index != recs[0].Index+int64(i) {
			return fmt.Errorf("append audit events: record %d has index %d, want %d (indexes must be consecutive)", i, r.Index, recs[0].Index+int64(i))
		}
		k := r.Keys
		if k == nil {
			dk, err := auditlog.DecodeKeys(r.Data)
			if err != nil {
				return fmt.Errorf("append audit events: record %d: %w", r.Index, err)
			}
			k = &dk
		}
		if k.ID == "" || k.Type == "" {
			return fmt.Errorf("append audit events: record %d has no event id or type", r.Index)
		}
		start := len(hashBuf)
		for _, h := range r.Hashes {
			hashBuf = append(hashBuf, h[:]...)
		}
		// The event is stored as text. r.Data is not changed once
		// encoded (auditlog.Record) and the driver copies what it binds,
		// so it is bound without a copy of its own.
		args = append(args, r.Index, unsafe.String(unsafe.SliceData(r.Data), len(r.Data)), hashBuf[start:len(hashBuf):len(hashBuf)], k.ID)
		rows[i] = indexRow{r.Index, *k}
	}
	w, err := a.db.auditWriter(ctx)
	if err != nil {
		return fmt.Errorf("append audit events: %w", err)
	}
	n, err := w.exec(ctx, recs[0].Index, len(recs), args)
	if err != nil {
		if isUnique(err) {
			return fmt.Errorf("append audit events: %w: an event id is already in the log", store.ErrExists)
		}
		return fmt.Errorf("append audit events: %w", err)
	}
	if n != int64(len(recs)) {
		size, _ := a.RecordCount(ctx)
		return fmt.Errorf("append audit events: the log continues at %d, not at %d", size, recs[0].Index)
	}
	ix.add(rows)
	return nil
}

// SyncRecords implements auditlog.Pipeliner: it fsyncs the store's
// write-ahead log, which holds every committed write.
func (a *AuditStore) SyncRecords(ctx context.Context) error {
	w, err := a.db.auditWriter(ctx)
	if err != nil {
		return fmt.Errorf("sync audit events: %w", err)
	}
	if err := w.sync(); err != nil {
		return fmt.Errorf("sync audit events: %w", err)
	}
	w.checkpoint(ctx)
	return nil
}

// scanRecord reads one row selected with auditColumns. The record's Keys
// hold only the id; withKeys adds the rest from the search index.
func scanRecord(rows interface{ Scan(...any) error }) (auditlog.Record, error) {
	var (
		r      auditlog.Record
		hashes []byte
		k      auditlog.Keys
	)
	if err := rows.Scan(&r.Index, &r.Data, &hashes, &k.ID); err != nil {
		return r, err
	}
	r.Keys = &k
	if len(hashes)%tlog.HashSize != 0 {
		return r, &auditlog.RecordError{Index: r.Index, Err: fmt.Errorf("column hashes has %d bytes, not a multiple of %d", len(hashes), tlog.HashSize)}
	}
	r.Hashes = make([]tlog.Hash, len(hashes)/tlog.HashSize)
	for i := range r.Hashes {
		copy(r.Hashes[i][:], hashes[i*tlog.HashSize:])
	}
	return r, nil
}

// RecordCount implements auditlog.Records.
func (a *AuditStore) RecordCount(ctx context.Context) (int64, error) {
	var n int64
	if err := a.db.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx)+1, 0) FROM audit_events`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count audit events: %w", err)
	}
	return n, nil
}

// ReadRecords implements auditlog.Records. Each record's Keys are as stored:
// the id column and, for events the search index has reached, the
// index's row (empty fields if the row is missing); nil past the index's
// end, where there is nothing stored to check.
func (a *AuditStore) ReadRecords(ctx context.Context, from int64, limit int) ([]auditlog.Record, error) {
	ix, err := a.db.auditIndex(ctx)
	if err != nil {
		return nil, fmt.Errorf("read audit events from %d: %w", from, err)
	}
	// Both files at once: the events cannot be more than [from,
	// from+limit), and the index rows are read for that range.
	upTo := ix.upTo()
	type keysResult struct {
		keys []auditlog.Keys
		err  error
	}
	kc := make(chan keysResult, 1)
	go func() {
		keys, err := ix.keys(ctx, from, min(from+int64(limit), upTo))
		kc <- keysResult{keys, err}
	}()
	recs, err := a.readEvents(ctx, from, limit)
	kr := <-kc
	if kr.err != nil {
		return nil, fmt.Errorf("read audit events from %d: %w", from, kr.err)
	}
	for i := range recs {
		r := &recs[i]
		if r.Index >= upTo || r.Index-from >= int64(len(kr.keys)) {
			r.Keys = nil // not indexed yet: nothing stored to check
			continue
		}
		id := r.Keys.ID
		*r.Keys = kr.keys[r.Index-from]
		r.Keys.ID = id
	}
	return recs, err
}

// ReadEventData calls fn with the index and canonical encoding of up to
// limit events with index >= from, in index order, and returns how many
// it passed. It is the cheapest read of the log — no hashes, no search
// index keys — for readers of the events themselves (`writ policy learn`
// and `replay`); nothing is checked, which is `writ audit verify`'s job.
// data is valid only during the call.
func (a *AuditStore) ReadEventData(ctx context.Context, from int64, limit int, fn func(idx int64, data []byte) error) (int, error) {
	rows, err := a.db.db.QueryContext(ctx, `SELECT idx, data FROM audit_events WHERE idx >= ? ORDER BY idx LIMIT ?`, from, limit)
	if err != nil {
		return 0, fmt.Errorf("read audit events from %d: %w", from, err)
	}
	defer rows.Close()
	var (
		n    int
		idx  int64
		data sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&idx, &data); err != nil {
			return n, fmt.Errorf("read audit events from %d: %w", from, err)
		}
		n++
		if err := fn(idx, data); err != nil {
			return n, err
		}
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("read audit events from %d: %w", from, err)
	}
	return n, nil
}

// readEvents reads up to limit records with index >= from, without their
// index keys.
func (a *AuditStore) readEvents(ctx context.Context, from int64, limit int) ([]auditlog.Record, error) {
	rows, err := a.db.db.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_events WHERE idx >= ? ORDER BY idx LIMIT ?`, from, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit events from %d: %w", from, err)
	}
	return collectRecords(rows, fmt.Sprintf("read audit events from %d", from))
}

func collectRecords(rows *sql.Rows, what string) ([]auditlog.Record, error) {
	defer rows.Close()
	var out []auditlog.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			var re *auditlog.RecordError
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

// RecordByID implements auditlog.Records.
func (a *AuditStore) RecordByID(ctx context.Context, id string) (auditlog.Record, error) {
	r, err := scanRecord(a.db.db.QueryRowContext(ctx, `SELECT `+auditColumns+` FROM audit_events WHERE id = ?`, id))
	if err != nil {
		return r, fmt.Errorf("read audit event %q: %w", id, notFound(err))
	}
	return r, nil
}

// auditTimeMS is an event's time in Unix milliseconds, read from its JSON.
const auditTimeMS = `CAST(round(unixepoch(data ->> '$.time', 'subsec') * 1000) AS INTEGER)`

// auditBlockShift is the shift of the idx >> 12 that leads every search
// index (see audit_index.go).
const auditBlockShift = 12

// auditCond is one condition of a search, on the search index (index)
// and on the event's JSON in the store (event).
type auditCond struct {
	index string // "" if the index does not hold the field
	event string
	args  []any
}

// SearchRecords implements auditlog.Records.
//
// Events the search index has reached are found through it, block by
// block, when the query names an indexed field (the most selective one
// drives the scan); the rest (the events not yet indexed, and every event
// when the query names no indexed field) are read from the store by
// index, with the conditions checked on the JSON. auditlog.Query.Match has
// the final word on every candidate. Time bounds are turned into index
// bounds by binary search, relying on event times following the index
// order to within auditlog.TimeSkew.
func (a *AuditStore) SearchRecords(ctx context.Context, q auditlog.Query) ([]auditlog.Record, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	size, err := a.RecordCount(ctx)
	if err != nil {
		return nil, fmt.Errorf("search audit events: %w", err)
	}
	ix, err := a.db.auditIndex(ctx)
	if err != nil {
		return nil, fmt.Errorf("search audit events: %w", err)
	}
	lo, hi := max(q.After, 0), size
	if q.Before > 0 {
		hi = min(hi, q.Before)
	}
	if !q.Since.IsZero() && lo < hi {
		if lo, err = a.firstAtOrAfter(ctx, lo, hi, q.Since.Add(-auditlog.TimeSkew)); err != nil {
			return nil, err
		}
	}
	if !q.Until.IsZero() && lo < hi {
		if hi, err = a.firstAtOrAfter(ctx, lo, hi, q.Until.Add(auditlog.TimeSkew)); err != nil {
			return nil, err
		}
	}
	// Ordered by how selective the field usually is: the first indexed
	// one drives the scan.
	var conds []auditCond
	if q.Task != "" {
		conds = append(conds, auditCond{`task = ?`, `(data ->> '$.task') = ?`, []any{q.Task}})
	}
	if q.Instance != "" {
		conds = append(conds, auditCond{`instance = ?`, `(data ->> '$.instance') = ?`, []any{q.Instance}})
	}
	if q.SpiffeID != "" {
		// A superset of "this ID or under it as a path"; Match decides.
		conds = append(conds, auditCond{`spiffe_id >= ? AND spiffe_id < ?`, `(data ->> '$.spiffe_id') >= ? AND (data ->> '$.spiffe_id') < ?`,
			[]any{q.SpiffeID, strings.TrimSuffix(q.SpiffeID, "/") + "0"}})
	}
	if q.Type != "" {
		conds = append(conds, auditCond{`type = ?`, `(data ->> '$.type') = ?`, []any{string(q.Type)}})
	}
	if q.Decision != "" {
		conds = append(conds, auditCond{"", `(data ->> '$.decision') = ?`, []any{q.Decision}})
	}
	if !q.Since.IsZero() {
		conds = append(conds, auditCond{"", auditTimeMS + ` >= ?`, []any{q.Since.UnixMilli() - 1}})
	}
	if !q.Until.IsZero() {
		conds = append(conds, auditCond{"", auditTimeMS + ` <= ?`, []any{q.Until.UnixMilli() + 1}})
	}
	sc := &auditScan{a: a, ix: ix, q: q, conds: conds}
	if len(conds) == 0 || conds[0].index == "" {
		err = sc.events(ctx, lo, hi)
		return sc.out, err
	}
	// The indexed part [lo, mid) and the part not yet indexed [mid, hi),
	// newest first unless ascending.
	mid := min(max(ix.upTo(), lo), hi)
	parts := []func() error{
		func() error { return sc.events(ctx, mid, hi) },
		func() error { return sc.blocks(ctx, lo, mid) },
	}
	if q.Ascending {
		parts[0], parts[1] = parts[1], parts[0]
	}
	for _, part := range parts {
		if err := part(); err != nil || sc.full() {
			return sc.out, err
		}
	}
	return sc.out, nil
}

// auditScan collects the records matching q, in q's order.
type auditScan struct {
	a     *AuditStore
	ix    *auditIndex
	q     auditlog.Query
	conds []auditCond
	out   []auditlog.Record
}

// auditPage is how many candidates one query reads.
const auditPage = 256

func (s *auditScan) full() bool { return len(s.out) >= s.q.Limit }

// keep adds the candidates that match the query.
func (s *auditScan) keep(recs []auditlog.Record) error {
	for _, r := range recs {
		e, err := r.Event()
		if err != nil {
			return err
		}
		if s.q.Match(r.Index, &e) && !s.full() {
			s.out = append(s.out, r)
		}
	}
	return nil
}

// events reads candidates in [lo, hi) from the store, page by page
// through the primary key, with every condition checked on the JSON.
func (s *auditScan) events(ctx context.Context, lo, hi int64) error {
	for lo < hi && !s.full() {
		var (
			where []string
			args  []any
		)
		for _, c := range s.conds {
			where = append(where, c.event)
			args = append(args, c.args...)
		}
		where = append(where, `idx >= ?`, `idx < ?`)
		args = append(args, lo, hi, auditPage)
		rows, err := s.a.db.db.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_events WHERE `+
			strings.Join(where, ` AND `)+` ORDER BY idx `+s.order()+` LIMIT ?`, args...)
		if err != nil {
			return fmt.Errorf("search audit events: %w", err)
		}
		recs, err := collectRecords(rows, "search audit events")
		if err != nil {
			return err
		}
		if err := s.keep(recs); err != nil {
			return err
		}
		if len(recs) < auditPage {
			return nil
		}
		lo, hi = s.advance(lo, hi, recs[len(recs)-1].Index)
	}
	return nil
}

func (s *auditScan) order() string {
	if s.q.Ascending {
		return `ASC`
	}
	return `DESC`
}

// advance narrows [lo, hi) past last, the final index of a full page.
func (s *auditScan) advance(lo, hi, last int64) (int64, int64) {
	if s.q.Ascending {
		return last + 1, hi
	}
	return lo, last
}

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
		if err := s.block(ctx, b, blo, bhi); err != nil {
			return err
		}
		if s.full() {
			return nil
		}
	}
	return nil
}

// block reads candidates in [lo, hi), all in block b, from the search
// index (every indexed condition), then their events from the store.
func (s *auditScan) block(ctx context.Context, b, lo, hi int64) error {
	for lo < hi && !s.full() {
		where := []string{`(idx >> 12) = ?`}
		args := []any{b}
		for _, c := range s.conds {
			if c.index != "" {
				where = append(where, c.index)
				args = append(args, c.args...)
			}
		}
		where = append(where, `idx >= ?`, `idx < ?`)
		args = append(args, lo, hi, auditPage)
		rows, err := s.ix.db.QueryContext(ctx, `SELECT idx FROM audit_keys WHERE `+
			strings.Join(where, ` AND `)+` ORDER BY idx `+s.order()+` LIMIT ?`, args...)
		if err != nil {
			return fmt.Errorf("search audit events: %w", err)
		}
		var idxs []any
		for rows.Next() {
			var x int64
			if err := rows.Scan(&x); err != nil {
				rows.Close()
				return fmt.Errorf("search audit events: %w", err)
			}
			idxs = append(idxs, x)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("search audit events: %w", err)
		}
		if len(idxs) == 0 {
			return nil
		}
		evs, err := s.a.db.db.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_events WHERE idx IN (?`+
			strings.Repeat(`,?`, len(idxs)-1)+`) ORDER BY idx `+s.order(), idxs...)
		if err != nil {
			return fmt.Errorf("search audit events: %w", err)
		}
		recs, err := collectRecords(evs, "search audit events")
		if err != nil {
			return err
		}
		if err := s.keep(recs); err != nil {
			return err
		}
		if len(idxs) < auditPage {
			return nil
		}
		lo, hi = s.advance(lo, hi, idxs[len(idxs)-1].(int64))
	}
	return nil
}

// firstAtOrAfter returns the first index in [lo, hi] whose event time is
// at or after t, by binary search over the index order. Because event
// times follow the index order to within auditlog.TimeSkew, every event
// before the returned index is earlier than t + auditlog.TimeSkew.
func (a *AuditStore) firstAtOrAfter(ctx context.Context, lo, hi int64, t time.Time) (int64, error) {
	want := t.UnixMilli()
	for lo < hi {
		mid := lo + (hi-lo)/2
		var ms sql.NullInt64
		err := a.db.db.QueryRowContext(ctx, `SELECT `+auditTimeMS+` FROM audit_events WHERE idx = ?`, mid).Scan(&ms)
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

// ReadHashes implements auditlog.Records. Each stored-hash index names a
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

// PutCheckpoint implements auditlog.Checkpoints.
func (a *AuditStore) PutCheckpoint(ctx context.Context, c auditlog.StoredCheckpoint) error {
	if c.CreatedAt.IsZero() {
		c.CreatedAt = a.db.now()
	}
	// Through the log's writer connection, like the events it signs.
	w, err := a.db.auditWriter(ctx)
	if err == nil {
		_, err = w.execQuery(ctx, `INSERT INTO audit_checkpoints (size, note, created_at) VALUES (?, ?, ?)
		ON CONFLICT(size) DO UPDATE SET note = excluded.note, created_at = excluded.created_at`,
			c.Size, c.Note, unixNano(c.CreatedAt))
	}
	if err == nil {
		err = w.sync()
	}
	if err != nil {
		return fmt.Errorf("store audit checkpoint at size %d: %w", c.Size, err)
	}
	return nil
}

// LatestCheckpoint implements auditlog.Checkpoints.
func (a *AuditStore) LatestCheckpoint(ctx context.Context) (auditlog.StoredCheckpoint, error) {
	var (
		c  auditlog.StoredCheckpoint
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

// ListCheckpoints implements auditlog.Checkpoints.
func (a *AuditStore) ListCheckpoints(ctx context.Context) ([]auditlog.StoredCheckpoint, error) {
	rows, err := a.db.db.QueryContext(ctx, `SELECT size, note, created_at FROM audit_checkpoints ORDER BY size`)
	if err != nil {
		return nil, fmt.Errorf("list audit checkpoints: %w", err)
	}
	defer rows.Close()
	var out []auditlog.StoredCheckpoint
	for rows.Next() {
		var (
			c  auditlog.StoredCheckpoint
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
	q.Grow(10*n + 256)
	q.WriteString(`INSERT OR ROLLBACK INTO audit_events (` + auditColumns + `) SELECT column1, column2, column3, column4 FROM (VALUES `)
	for i := range n {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(`(?,?,?,?)`)
	}
	q.WriteString(`) WHERE (SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_events) = ?`)
	return q.String()
}

// nullString stores an empty string as NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
