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
// cursor's transaction.
func (d *DB) AddLineage(ctx context.Context, from, next int64, facts []store.LineageFact) error {
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if err := moveCursor(ctx, tx, store.CursorLineage, from, next, nil); err != nil {
			return err
		}
		if len(facts) == 0 {
			return nil
		}
		b := &pgx.Batch{}
		queueLineage(b, "lineage_facts", "hour", facts)
		queueLineage(b, "lineage_daily", "day", rowcodec.LineageDays(facts))
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("add lineage: %w", err)
	}
	return nil
}

// queueLineage queues the upserts adding facts to table, whose time
// column col takes each fact's Hour (an hour's or a day's start) in unix
// seconds.
func queueLineage(b *pgx.Batch, table, col string, facts []store.LineageFact) {
	for _, f := range facts {
		b.Queue(`INSERT INTO `+table+` (`+col+`, `+rowcodec.LineagePath+`, allowed, denied, held, first_seen, last_seen)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)
			ON CONFLICT (`+col+`, `+rowcodec.LineagePath+`) DO UPDATE SET
				allowed = `+table+`.allowed + excluded.allowed, denied = `+table+`.denied + excluded.denied,
				held = `+table+`.held + excluded.held,
				first_seen = LEAST(`+table+`.first_seen, excluded.first_seen),
				last_seen = GREATEST(`+table+`.last_seen, excluded.last_seen)`,
			f.Hour.Truncate(time.Hour).Unix(), f.User, f.Identity, f.Instance, f.Task, f.Via,
			f.TargetKind, f.Target, f.Tool, f.Credential, f.ApprovedBy, f.Allowed, f.Denied, f.Held,
			unixNano(f.FirstSeen), unixNano(f.LastSeen))
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
