package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// AuditStore keeps the audit log (package auditlog) in the audit_events,
// audit_head and audit_checkpoints tables. Each event is stored as its
// canonical JSON (the exact leaf data of the Merkle tree) with its stored
// tree hashes and its searchable keys, which ReadRecords returns so that
// auditlog.Verify checks them against the JSON.
//
// Appends from every server are serialised by the lock on the single
// audit_head row: an append locks it, checks or learns the log's size,
// inserts its batch with COPY, moves the head and commits, all in one
// transaction. A batch is one commit, so the log's group commit is one
// WAL flush per batch.
type AuditStore struct {
	db *DB
}

var (
	_ auditlog.Backend   = (*AuditStore)(nil)
	_ auditlog.Sequencer = (*AuditStore)(nil)
)

// Audit returns the audit log storage of d.
func (d *DB) Audit() *AuditStore { return &AuditStore{db: d} }

const auditColumns = `idx, data, hashes, id, type, spiffe_id, instance, task`

var auditCopyColumns = []string{"idx", "data", "hashes", "id", "type", "spiffe_id", "instance", "task"}

// auditMaxRows bounds one batch; it is at least auditlog.DefaultMaxBatch.
const auditMaxRows = 8000

// AppendRecords implements auditlog.Records: the records must continue the
// log exactly where it ends.
func (a *AuditStore) AppendRecords(ctx context.Context, recs []auditlog.Record) error {
	if len(recs) == 0 {
		return nil
	}
	return a.append(ctx, func(size int64) ([]auditlog.Record, error) {
		if size != recs[0].Index {
			return nil, fmt.Errorf("the log continues at %d, not at %d", size, recs[0].Index)
		}
		return recs, nil
	})
}

// AppendSequenced implements auditlog.Sequencer.
func (a *AuditStore) AppendSequenced(ctx context.Context, build func(size int64) ([]auditlog.Record, error)) error {
	return a.append(ctx, build)
}

func (a *AuditStore) append(ctx context.Context, build func(size int64) ([]auditlog.Record, error)) error {
	err := pgx.BeginFunc(ctx, a.db.pool, func(tx pgx.Tx) error {
		var size int64
		if err := tx.QueryRow(ctx, `SELECT size FROM audit_head WHERE one FOR UPDATE`).Scan(&size); err != nil {
			return fmt.Errorf("lock the log head: %w", err)
		}
		recs, err := build(size)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		rows, err := auditRows(recs, size)
		if err != nil {
			return err
		}
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_events"}, auditCopyColumns, pgx.CopyFromRows(rows))
		if err != nil {
			return err
		}
		if n != int64(len(recs)) {
			return fmt.Errorf("stored %d of %d events", n, len(recs))
		}
		_, err = tx.Exec(ctx, `UPDATE audit_head SET size = $1 WHERE one`, size+int64(len(recs)))
		return err
	})
	if isUnique(err) {
		return fmt.Errorf("append audit events: %w: an event id is already in the log", store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("append audit events: %w", err)
	}
	return nil
}

// auditRows checks recs (consecutive from size, with keys) and returns
// their column values.
func auditRows(recs []auditlog.Record, size int64) ([][]any, error) {
	if len(recs) > auditMaxRows {
		return nil, fmt.Errorf("%d records in one batch, over the limit of %d", len(recs), auditMaxRows)
	}
	rows := make([][]any, len(recs))
	for i, r := range recs {
		if r.Index != size+int64(i) {
			return nil, fmt.Errorf("record %d has index %d, want %d (indexes must continue the log)", i, r.Index, size+int64(i))
		}
		k := r.Keys
		if k == nil {
			dk, err := auditlog.DecodeKeys(r.Data)
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", r.Index, err)
			}
			k = &dk
		}
		if k.ID == "" || k.Type == "" {
			return nil, fmt.Errorf("record %d has no event id or type", r.Index)
		}
		hashes := make([]byte, 0, len(r.Hashes)*tlog.HashSize)
		for _, h := range r.Hashes {
			hashes = append(hashes, h[:]...)
		}
		rows[i] = []any{r.Index, r.Data, hashes, k.ID, string(k.Type), k.SpiffeID, k.Instance, k.Task}
	}
	return rows, nil
}

// scanRecord reads one row selected with auditColumns.
func scanRecord(row pgx.Row) (auditlog.Record, error) {
	var (
		r      auditlog.Record
		hashes []byte
		k      auditlog.Keys
		typ    string
	)
	if err := row.Scan(&r.Index, &r.Data, &hashes, &k.ID, &typ, &k.SpiffeID, &k.Instance, &k.Task); err != nil {
		return r, err
	}
	k.Type = audit.Type(typ)
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

func collectRecords(rows pgx.Rows, what string) ([]auditlog.Record, error) {
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

// RecordCount implements auditlog.Records: the size on the log head.
func (a *AuditStore) RecordCount(ctx context.Context) (int64, error) {
	var n int64
	if err := a.db.pool.QueryRow(ctx, `SELECT size FROM audit_head WHERE one`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count audit events: %w", err)
	}
	return n, nil
}

// ReadRecords implements auditlog.Records. Every record's Keys are the
// stored key columns.
func (a *AuditStore) ReadRecords(ctx context.Context, from int64, limit int) ([]auditlog.Record, error) {
	rows, err := a.db.pool.Query(ctx, `SELECT `+auditColumns+` FROM audit_events WHERE idx >= $1 ORDER BY idx LIMIT $2`, from, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit events from %d: %w", from, err)
	}
	return collectRecords(rows, fmt.Sprintf("read audit events from %d", from))
}

// RecordByID implements auditlog.Records.
func (a *AuditStore) RecordByID(ctx context.Context, id string) (auditlog.Record, error) {
	r, err := scanRecord(a.db.pool.QueryRow(ctx, `SELECT `+auditColumns+` FROM audit_events WHERE id = $1`, id))
	if err != nil {
		return r, fmt.Errorf("read audit event %q: %w", id, notFound(err))
	}
	return r, nil
}

// auditPage is how many candidates one search query reads.
const auditPage = 256

// SearchRecords implements auditlog.Records. The conditions on the key
// columns are SQL conditions, answered from the (key, idx) indexes in
// index order; the decision and time are checked by auditlog.Query.Match,
// which has the final word on every candidate. Time bounds become index
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
	// The conditions are fixed SQL; only their values are parameters.
	var (
		where []string
		args  []any
	)
	cond := func(sql string, vals ...any) {
		for _, v := range vals {
			args = append(args, v)
			sql = strings.Replace(sql, "?", "$"+strconv.Itoa(len(args)), 1)
		}
		where = append(where, sql)
	}
	if q.Task != "" {
		cond(`task = ?`, q.Task)
	}
	if q.Instance != "" {
		cond(`instance = ?`, q.Instance)
	}
	if q.SpiffeID != "" {
		// A superset of "this ID or under it as a path"; Match decides.
		cond(`spiffe_id >= ? AND spiffe_id < ?`, q.SpiffeID, strings.TrimSuffix(q.SpiffeID, "/")+"0")
	}
	if q.Type != "" {
		cond(`type = ?`, string(q.Type))
	}
	order := `DESC`
	if q.Ascending {
		order = `ASC`
	}
	var out []auditlog.Record
	for lo < hi && len(out) < q.Limit {
		pw, pargs := where, args
		pargs = append(pargs[:len(pargs):len(pargs)], lo, hi, auditPage)
		n := len(args)
		pw = append(pw[:len(pw):len(pw)], fmt.Sprintf(`idx >= $%d AND idx < $%d`, n+1, n+2))
		rows, err := a.db.pool.Query(ctx, `SELECT `+auditColumns+` FROM audit_events WHERE `+
			strings.Join(pw, ` AND `)+` ORDER BY idx `+order+fmt.Sprintf(` LIMIT $%d`, n+3), pargs...)
		if err != nil {
			return nil, fmt.Errorf("search audit events: %w", err)
		}
		recs, err := collectRecords(rows, "search audit events")
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			e, err := r.Event()
			if err != nil {
				return nil, err
			}
			if q.Match(r.Index, &e) && len(out) < q.Limit {
				out = append(out, r)
			}
		}
		if len(recs) < auditPage {
			break
		}
		if last := recs[len(recs)-1].Index; q.Ascending {
			lo = last + 1
		} else {
			hi = last
		}
	}
	return out, nil
}

// firstAtOrAfter returns the first index in [lo, hi] whose event time is
// at or after t, by binary search over the index order.
func (a *AuditStore) firstAtOrAfter(ctx context.Context, lo, hi int64, t time.Time) (int64, error) {
	for lo < hi {
		mid := lo + (hi-lo)/2
		var data []byte
		err := a.db.pool.QueryRow(ctx, `SELECT data FROM audit_events WHERE idx = $1`, mid).Scan(&data)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("search audit events by time: %w", err)
		}
		var e struct {
			Time time.Time `json:"time"`
		}
		if err == nil && json.Unmarshal(data, &e) == nil && !e.Time.Before(t) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}

// ReadHashes implements auditlog.Records. Each stored-hash index names a
// record and a position in that record's hashes column; the records are
// read in one query.
func (a *AuditStore) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	type want struct {
		rec   int64
		level int
	}
	wants := make([]want, len(indexes))
	var recIdx []int64
	seen := map[int64]bool{}
	for i, x := range indexes {
		if x < 0 {
			return nil, fmt.Errorf("read audit hashes: negative stored-hash index %d", x)
		}
		// The hash of subtree (level, n) was stored by the append of
		// the subtree's last record m, as the level'th hash after m's
		// leaf hash.
		level, n := tlog.SplitStoredHashIndex(x)
		m := (n+1)<<level - 1
		wants[i] = want{m, level}
		if !seen[m] {
			seen[m] = true
			recIdx = append(recIdx, m)
		}
	}
	stored := make(map[int64][]byte, len(recIdx))
	if len(recIdx) > 0 {
		rows, err := a.db.pool.Query(ctx, `SELECT idx, hashes FROM audit_events WHERE idx = ANY($1)`, recIdx)
		if err != nil {
			return nil, fmt.Errorf("read audit hashes: %w", err)
		}
		for rows.Next() {
			var (
				idx int64
				h   []byte
			)
			if err := rows.Scan(&idx, &h); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read audit hashes: %w", err)
			}
			stored[idx] = h
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read audit hashes: %w", err)
		}
	}
	out := make([]tlog.Hash, len(indexes))
	for i, w := range wants {
		hashes, ok := stored[w.rec]
		if !ok {
			return nil, fmt.Errorf("read audit hashes: stored hash %d (record %d): %w", indexes[i], w.rec, store.ErrNotFound)
		}
		off := w.level * tlog.HashSize
		if off+tlog.HashSize > len(hashes) {
			return nil, fmt.Errorf("read audit hashes: stored hash %d is missing from record %d", indexes[i], w.rec)
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
	_, err := a.db.pool.Exec(ctx, `INSERT INTO audit_checkpoints (size, note, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (size) DO UPDATE SET note = excluded.note, created_at = excluded.created_at`,
		c.Size, nonNilBytes(c.Note), unixNano(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("store audit checkpoint at size %d: %w", c.Size, err)
	}
	return nil
}

// LatestCheckpoint implements auditlog.Checkpoints.
func (a *AuditStore) LatestCheckpoint(ctx context.Context) (auditlog.StoredCheckpoint, error) {
	c, err := scanCheckpoint(a.db.pool.QueryRow(ctx, `SELECT size, note, created_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1`))
	if err != nil {
		return c, fmt.Errorf("read latest audit checkpoint: %w", notFound(err))
	}
	return c, nil
}

// ListCheckpoints implements auditlog.Checkpoints.
func (a *AuditStore) ListCheckpoints(ctx context.Context) ([]auditlog.StoredCheckpoint, error) {
	rows, err := a.db.pool.Query(ctx, `SELECT size, note, created_at FROM audit_checkpoints ORDER BY size`)
	if err != nil {
		return nil, fmt.Errorf("list audit checkpoints: %w", err)
	}
	out, err := collect(rows, scanCheckpoint)
	if err != nil {
		return nil, fmt.Errorf("list audit checkpoints: %w", err)
	}
	return out, nil
}

func scanCheckpoint(r pgx.Row) (auditlog.StoredCheckpoint, error) {
	var (
		c  auditlog.StoredCheckpoint
		at int64
	)
	err := r.Scan(&c.Size, &c.Note, &at)
	c.CreatedAt = fromNano(at)
	return c, err
}
