package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/writ-dev/writ/internal/store"
)

const pinColumns = `server, tool, digest, observed, shape, state, reason, actor, revision, first_seen, updated_at`

// CreatePin implements store.Pins.
func (d *DB) CreatePin(ctx context.Context, p store.Pin) (store.Pin, error) {
	now := d.now().UTC()
	p.Revision, p.FirstSeen, p.UpdatedAt = 1, now, now
	_, err := d.db.ExecContext(ctx, `INSERT INTO mcp_pins (`+pinColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
		p.Server, p.Tool, p.Digest, p.Observed, p.Shape, p.State, p.Reason, p.Actor, p.Revision, unixNano(now), unixNano(now))
	if isUnique(err) {
		return store.Pin{}, fmt.Errorf("create pin %s/%s: %w", p.Server, p.Tool, store.ErrExists)
	}
	if err != nil {
		return store.Pin{}, fmt.Errorf("create pin %s/%s: %w", p.Server, p.Tool, err)
	}
	return p, nil
}

// UpdatePin implements store.Pins.
func (d *DB) UpdatePin(ctx context.Context, p store.Pin) (store.Pin, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return store.Pin{}, fmt.Errorf("update pin %s/%s: %w", p.Server, p.Tool, err)
	}
	defer tx.Rollback()
	cur, err := scanPin(tx.QueryRowContext(ctx, `SELECT `+pinColumns+` FROM mcp_pins WHERE server = ? AND tool = ?`, p.Server, p.Tool))
	if err != nil {
		return store.Pin{}, fmt.Errorf("update pin %s/%s: %w", p.Server, p.Tool, err)
	}
	if cur.Revision != p.Revision {
		return cur, fmt.Errorf("update pin %s/%s: at revision %d, not %d: %w", p.Server, p.Tool, cur.Revision, p.Revision, store.ErrPrecondition)
	}
	p.Revision, p.FirstSeen, p.UpdatedAt = cur.Revision+1, cur.FirstSeen, d.now().UTC()
	if _, err := tx.ExecContext(ctx, `UPDATE mcp_pins SET digest = ?, observed = ?, shape = ?, state = ?, reason = ?, actor = ?, revision = ?, updated_at = ?
		WHERE server = ? AND tool = ?`,
		p.Digest, p.Observed, p.Shape, p.State, p.Reason, p.Actor, p.Revision, unixNano(p.UpdatedAt), p.Server, p.Tool); err != nil {
		return store.Pin{}, fmt.Errorf("update pin %s/%s: %w", p.Server, p.Tool, err)
	}
	if err := tx.Commit(); err != nil {
		return store.Pin{}, fmt.Errorf("update pin %s/%s: %w", p.Server, p.Tool, err)
	}
	return p, nil
}

// GetPin implements store.Pins.
func (d *DB) GetPin(ctx context.Context, server, tool string) (store.Pin, error) {
	p, err := scanPin(d.db.QueryRowContext(ctx, `SELECT `+pinColumns+` FROM mcp_pins WHERE server = ? AND tool = ?`, server, tool))
	if err != nil {
		return store.Pin{}, fmt.Errorf("get pin %s/%s: %w", server, tool, err)
	}
	return p, nil
}

// ListPins implements store.Pins.
func (d *DB) ListPins(ctx context.Context, server string) ([]store.Pin, error) {
	q, args := `SELECT `+pinColumns+` FROM mcp_pins ORDER BY server, tool`, []any{}
	if server != "" {
		q, args = `SELECT `+pinColumns+` FROM mcp_pins WHERE server = ? ORDER BY tool`, []any{server}
	}
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	defer rows.Close()
	var out []store.Pin
	for rows.Next() {
		p, err := scanPin(rows)
		if err != nil {
			return nil, fmt.Errorf("list pins: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	return out, nil
}

// DeletePin implements store.Pins.
func (d *DB) DeletePin(ctx context.Context, server, tool string) error {
	res, err := d.db.ExecContext(ctx, `DELETE FROM mcp_pins WHERE server = ? AND tool = ?`, server, tool)
	if err != nil {
		return fmt.Errorf("delete pin %s/%s: %w", server, tool, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("delete pin %s/%s: %w", server, tool, store.ErrNotFound)
	}
	return nil
}

func scanPin(s scanner) (store.Pin, error) {
	var (
		p                    store.Pin
		firstSeen, updatedAt int64
	)
	err := s.Scan(&p.Server, &p.Tool, &p.Digest, &p.Observed, &p.Shape, &p.State, &p.Reason, &p.Actor, &p.Revision, &firstSeen, &updatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Pin{}, store.ErrNotFound
	}
	if err != nil {
		return store.Pin{}, err
	}
	p.FirstSeen, p.UpdatedAt = fromNano(firstSeen), fromNano(updatedAt)
	return p, nil
}
