package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/rowcodec"
)

// GetCursor implements store.Lineage.
func (d *DB) GetCursor(ctx context.Context, name string) (store.Cursor, error) {
	return getCursor(ctx, d.db, name)
}

type queryer interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func getCursor(ctx context.Context, q queryer, name string) (store.Cursor, error) {
	c := store.Cursor{Name: name}
	err := q.QueryRowContext(ctx, `SELECT next_index, state FROM see_cursors WHERE name = ?`, name).Scan(&c.Next, &c.State)
	if errors.Is(err, sql.ErrNoRows) {
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
func moveCursor(ctx context.Context, tx *sql.Tx, name string, from, next int64, state []byte) error {
	if next < from {
		return fmt.Errorf("move cursor %s: next %d is before %d", name, next, from)
	}
	cur, err := getCursor(ctx, tx, name)
	if err != nil {
		return err
	}
	if cur.Next != from {
		return fmt.Errorf("move cursor %s from %d: it is at %d: %w", name, from, cur.Next, store.ErrCursorMoved)
	}
	if state == nil {
		state = []byte{}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO see_cursors (name, next_index, state) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET next_index = excluded.next_index, state = excluded.state`, name, next, state); err != nil {
		return fmt.Errorf("move cursor %s: %w", name, err)
	}
	return nil
}

// AddLineage implements store.Lineage.
func (d *DB) AddLineage(ctx context.Context, from, next int64, facts []store.LineageFact) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add lineage: %w", err)
	}
	defer tx.Rollback()
	if err := moveCursor(ctx, tx, store.CursorLineage, from, next, nil); err != nil {
		return fmt.Errorf("add lineage: %w", err)
	}
	ids, fresh, err := d.pathIDs(ctx, tx, facts)
	if err != nil {
		return err
	}
	if err := upsertLineage(ctx, tx, "lineage_facts", "hour", facts, ids); err != nil {
		return err
	}
	if err := upsertLineage(ctx, tx, "lineage_daily", "day", rowcodec.LineageDays(facts), ids); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
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
// paths the dictionary does not hold yet, inside tx, and the rows the
// cache did not know.
func (d *DB) pathIDs(ctx context.Context, tx *sql.Tx, facts []store.LineageFact) (map[rowcodec.PathKey]int64, newPaths, error) {
	ids := make(map[rowcodec.PathKey]int64)
	var fresh newPaths
	var ins, sel *sql.Stmt
	for i := range facts {
		k := rowcodec.KeyOf(&facts[i])
		if _, ok := ids[k]; ok {
			continue
		}
		if id, ok := d.paths.ID(k); ok {
			ids[k] = id
			continue
		}
		if ins == nil {
			var err error
			if ins, err = tx.PrepareContext(ctx, `INSERT INTO lineage_paths (`+rowcodec.LineagePath+`) VALUES (?,?,?,?,?,?,?,?,?,?)
				ON CONFLICT DO NOTHING`); err != nil {
				return nil, fresh, fmt.Errorf("add lineage: %w", err)
			}
			defer ins.Close()
			if sel, err = tx.PrepareContext(ctx, `SELECT id FROM lineage_paths WHERE "user" = ? AND identity = ? AND instance = ?
				AND task = ? AND via = ? AND target_kind = ? AND target = ? AND tool = ? AND credential = ? AND approved_by = ?`); err != nil {
				return nil, fresh, fmt.Errorf("add lineage: %w", err)
			}
			defer sel.Close()
		}
		args := make([]any, len(k))
		for j, v := range k {
			args[j] = v
		}
		var id int64
		if _, err := ins.ExecContext(ctx, args...); err != nil {
			return nil, fresh, fmt.Errorf("add lineage: path dictionary: %w", err)
		}
		if err := sel.QueryRowContext(ctx, args...).Scan(&id); err != nil {
			return nil, fresh, fmt.Errorf("add lineage: path dictionary: %w", err)
		}
		ids[k] = id
		fresh.ids, fresh.keys = append(fresh.ids, id), append(fresh.keys, k)
	}
	return ids, fresh, nil
}

// upsertLineage adds facts to table, whose time column col takes each
// fact's Hour (an hour's or a day's start) in unix seconds.
func upsertLineage(ctx context.Context, tx *sql.Tx, table, col string, facts []store.LineageFact, ids map[rowcodec.PathKey]int64) error {
	if len(facts) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO `+table+` (`+col+`, `+rowcodec.LineagePath+`, allowed, denied, held, first_seen, last_seen, path_id)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (`+col+`, `+rowcodec.LineagePath+`) DO UPDATE SET
			allowed = allowed + excluded.allowed, denied = denied + excluded.denied, held = held + excluded.held,
			first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)`)
	if err != nil {
		return fmt.Errorf("add lineage: %w", err)
	}
	defer stmt.Close()
	for i := range facts {
		f := &facts[i]
		if _, err := stmt.ExecContext(ctx, f.Hour.Truncate(time.Hour).Unix(), f.User, f.Identity, f.Instance, f.Task, f.Via,
			f.TargetKind, f.Target, f.Tool, f.Credential, f.ApprovedBy, f.Allowed, f.Denied, f.Held,
			unixNano(f.FirstSeen), unixNano(f.LastSeen), ids[rowcodec.KeyOf(f)]); err != nil {
			return fmt.Errorf("add lineage: %w", err)
		}
	}
	return nil
}

// LineageStart implements store.Lineage.
func (d *DB) LineageStart(ctx context.Context) (time.Time, bool, error) {
	var h *int64
	err := d.db.QueryRowContext(ctx, `SELECT coalesce((SELECT min(hour) FROM lineage_facts WHERE hour < -3600), (SELECT min(hour) FROM lineage_facts WHERE hour > -3600))`).Scan(&h)
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
	q, args := lineageQuery(f)
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list lineage: %w", err)
	}
	defer rows.Close()
	var out []store.LineageFact
	for rows.Next() {
		lf, err := rowcodec.ScanLineageSum(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("list lineage: %w", err)
		}
		if len(out) == cap(out) {
			// Doubling, not append's 1.25 for large slices: the whole
			// graph's 30,000 paths are copied once, not five times.
			out = slices.Grow(out, max(len(out), 64))
		}
		out = append(out, lf)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list lineage: %w", err)
	}
	return out, nil
}

// lineageQuery is the query ListLineage runs for f in SQL, with its
// arguments.
func lineageQuery(f store.LineageFilter) (string, []any) {
	q, args := rowcodec.LineageQuery(f, func(int) string { return "?" })
	if f.AllTime {
		// The all-time rollup filtered on a path column: one scan of the
		// rollup's covering partial index (migration 0021). Without
		// statistics the planner prefers an equality on the first column
		// of 0022's index, then looks every path up in the table.
		q = strings.Replace(q, "FROM lineage_facts WHERE", "FROM lineage_facts INDEXED BY lineage_facts_all_time WHERE", 1)
	}
	return q, args
}

// listByPath answers a whole-graph query (rowcodec.ByPath) from the path
// ids; false when the dictionary's cache is full.
func (d *DB) listByPath(ctx context.Context, f store.LineageFilter) ([]store.LineageFact, bool, error) {
	return d.paths.ListByPath(ctx, d.each, f, `id > ? ORDER BY id`, func(ids []int64) (string, []any) {
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		return `id IN (?` + strings.Repeat(",?", len(ids)-1) + `)`, args
	})
}

// each runs q and calls row for each row of its answer (rowcodec.Each).
func (d *DB) each(ctx context.Context, q string, args []any, row func(scan func(dest ...any) error) error) error {
	rows, err := d.db.QueryContext(ctx, q, args...)
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
