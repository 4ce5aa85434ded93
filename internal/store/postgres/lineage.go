package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/rowcodec"
)

var _ store.Lineage = (*DB)(nil)

func placeholder(n int) string { return "$" + strconv.Itoa(n) }

// GetCursor implements store.Lineage.
func (d *DB) GetCursor(ctx context.Context, name string) (store.Cursor, error) {
	return getCursor(ctx, d.pool, name)
}

func getCursor(ctx context.Context, q querier, name string) (store.Cursor, error) {
	c := store.Cursor{Name: name}
	err := q.QueryRow(ctx, `SELECT next_index, state FROM see_cursors WHERE name = $1`, name).Scan(&c.Next, &c.State)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read cursor %s: %w", name, err)
	}
	if len(c.State) == 0 {
		c.State = nil
	}
	return c, nil
}

// moveCursor moves the named cursor from from to next with state, inside
// tx; it fails with store.ErrCursorMoved if the cursor is not at from.
// The conditional UPDATE takes the cursor's row lock, so of two servers
// folding the same events in concurrently the second waits for the
// first's commit, then finds the cursor moved and stores nothing.
func moveCursor(ctx context.Context, tx pgx.Tx, name string, from, next int64, state []byte) error {
	if next < from {
		return fmt.Errorf("move cursor %s: next %d is before %d", name, next, from)
	}
	if state == nil {
		state = []byte{}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO see_cursors (name, next_index, state) VALUES ($1, 0, '') ON CONFLICT (name) DO NOTHING`, name); err != nil {
		return fmt.Errorf("move cursor %s: %w", name, err)
	}
	tag, err := tx.Exec(ctx, `UPDATE see_cursors SET next_index = $1, state = $2 WHERE name = $3 AND next_index = $4`, next, state, name, from)
	if err != nil {
		return fmt.Errorf("move cursor %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		cur, err := getCursor(ctx, tx, name)
		if err != nil {
			return err
		}
		return fmt.Errorf("move cursor %s from %d: it is at %d: %w", name, from, cur.Next, store.ErrCursorMoved)
	}
	return nil
}

// AddLineage implements store.Lineage: the facts go as one batch in the
// cursor's transaction, after the paths the dictionary lacks.
func (d *DB) AddLineage(ctx context.Context, from, next int64, facts []store.LineageFact) error {
	var fresh newPaths
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if err := moveCursor(ctx, tx, store.CursorLineage, from, next, nil); err != nil {
			return err
		}
		if len(facts) == 0 {
			return nil
		}
		var ids map[rowcodec.PathKey]int64
		var err error
		if ids, fresh, err = d.pathIDs(ctx, tx, facts); err != nil {
			return err
		}
		b := &pgx.Batch{}
		queueLineage(b, "lineage_facts", "hour", facts, ids)
		queueLineage(b, "lineage_daily", "day", rowcodec.LineageDays(facts), ids)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("add lineage: %w", err)
	}
	// Only now are the new dictionary rows there for good.
	d.paths.Learn(fresh.ids, fresh.keys)
	return nil
}

// newPaths are dictionary rows a transaction wrote or read.
type newPaths struct {
	ids  []int64
	keys []rowcodec.PathKey
}

// pathIDs returns the dictionary id of every path of facts, adding the
// paths the dictionary does not hold yet inside tx (one batch), and the
// rows the cache did not know. Each new path is inserted, then read by a
// statement of its own: under READ COMMITTED that read sees a row another
// transaction committed meanwhile, on which the insert did nothing.
func (d *DB) pathIDs(ctx context.Context, tx pgx.Tx, facts []store.LineageFact) (map[rowcodec.PathKey]int64, newPaths, error) {
	ids := make(map[rowcodec.PathKey]int64)
	var fresh newPaths
	b := &pgx.Batch{}
	for i := range facts {
		k := rowcodec.KeyOf(&facts[i])
		if _, ok := ids[k]; ok {
			continue
		}
		if id, ok := d.paths.ID(k); ok {
			ids[k] = id
			continue
		}
		ids[k] = 0
		args := make([]any, len(k))
		for j, v := range k {
			args[j] = v
		}
		b.Queue(`INSERT INTO lineage_paths (`+rowcodec.LineagePath+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT DO NOTHING`, args...)
		b.Queue(`SELECT id FROM lineage_paths WHERE "user" = $1 AND identity = $2 AND instance = $3 AND task = $4 AND via = $5
			AND target_kind = $6 AND target = $7 AND tool = $8 AND credential = $9 AND approved_by = $10`, args...)
		fresh.keys = append(fresh.keys, k)
	}
	if len(fresh.keys) == 0 {
		return ids, fresh, nil
	}
	br := tx.SendBatch(ctx, b)
	for _, k := range fresh.keys {
		var id int64
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, fresh, fmt.Errorf("path dictionary: %w", err)
		}
		if err := br.QueryRow().Scan(&id); err != nil {
			br.Close()
			return nil, fresh, fmt.Errorf("path dictionary: %w", err)
		}
		ids[k] = id
		fresh.ids = append(fresh.ids, id)
	}
	if err := br.Close(); err != nil {
		return nil, fresh, fmt.Errorf("path dictionary: %w", err)
	}
	return ids, fresh, nil
}

// queueLineage queues the upserts adding facts to table, whose time
// column col takes each fact's Hour (an hour's or a day's start) in unix
// seconds, and path_id the path's id in ids.
func queueLineage(b *pgx.Batch, table, col string, facts []store.LineageFact, ids map[rowcodec.PathKey]int64) {
	for i := range facts {
		f := &facts[i]
		b.Queue(`INSERT INTO `+table+` (`+col+`, `+rowcodec.LineagePath+`, allowed, denied, held, first_seen, last_seen, path_id)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)
			ON CONFLICT (`+col+`, `+rowcodec.LineagePath+`) DO UPDATE SET
				allowed = `+table+`.allowed + excluded.allowed, denied = `+table+`.denied + excluded.denied,
				held = `+table+`.held + excluded.held,
				first_seen = LEAST(`+table+`.first_seen, excluded.first_seen),
				last_seen = GREATEST(`+table+`.last_seen, excluded.last_seen)`,
			f.Hour.Truncate(time.Hour).Unix(), f.User, f.Identity, f.Instance, f.Task, f.Via,
			f.TargetKind, f.Target, f.Tool, f.Credential, f.ApprovedBy, f.Allowed, f.Denied, f.Held,
			unixNano(f.FirstSeen), unixNano(f.LastSeen), ids[rowcodec.KeyOf(f)])
	}
}

// LineageStart implements store.Lineage.
func (d *DB) LineageStart(ctx context.Context) (time.Time, bool, error) {
	var h *int64
	err := d.pool.QueryRow(ctx, `SELECT coalesce((SELECT min(hour) FROM lineage_facts WHERE hour < -3600), (SELECT min(hour) FROM lineage_facts WHERE hour > -3600))`).Scan(&h)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("lineage start: %w", err)
	}
	if h == nil {
		return time.Time{}, false, nil
	}
	return time.Unix(*h, 0).UTC(), true, nil
}

// ListLineage implements store.Lineage.
func (d *DB) ListLineage(ctx context.Context, f store.LineageFilter) ([]store.LineageFact, error) {
	if rowcodec.ByPath(f) {
		if out, ok, err := d.listByPath(ctx, f); err != nil || ok {
			return out, err
		}
	}
	q, args := rowcodec.LineageQuery(f, placeholder)
	rows, err := d.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list lineage: %w", err)
	}
	out, err := collect(rows, func(r pgx.Row) (store.LineageFact, error) { return rowcodec.ScanLineageSum(r.Scan) })
	if err != nil {
		return nil, fmt.Errorf("list lineage: %w", err)
	}
	return out, nil
}

// listByPath answers a whole-graph query (rowcodec.ByPath) from the path
// ids; false when the dictionary's cache is full.
func (d *DB) listByPath(ctx context.Context, f store.LineageFilter) ([]store.LineageFact, bool, error) {
	return d.paths.ListByPath(ctx, d.each, f, `id > $1 ORDER BY id`, func(ids []int64) (string, []any) { return `id = ANY($1)`, []any{ids} })
}

// each runs q and calls row for each row of its answer (rowcodec.Each).
func (d *DB) each(ctx context.Context, q string, args []any, row func(scan func(dest ...any) error) error) error {
	rows, err := d.pool.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}
