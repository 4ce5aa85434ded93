package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/writ-dev/writ/internal/store"
)

const pinColumns = `server, tool, digest, observed, shape, state, reason, actor, revision, first_seen, updated_at`

// CreatePin implements store.Pins.
func (d *DB) CreatePin(ctx context.Context, p store.Pin) (store.Pin, error) {
	now := d.now().UTC()
	p.Revision, p.FirstSeen, p.UpdatedAt = 1, now, now
	_, err := d.pool.Exec(ctx, `INSERT INTO mcp_pins (`+pinColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)`,
		p.Server, p.Tool, p.Digest, p.Observed, p.Shape, p.State, p.Reason, p.Actor, p.Revision, unixNano(now), unixNano(now))
	if isUnique(err) {
		return store.Pin{}, fmt.Errorf("create pin %s/%s: %w", p.Server, p.Tool, store.ErrExists)
	}
	if err != nil {
		return store.Pin{}, fmt.Errorf("create pin %s/%s: %w", p.Server, p.Tool, err)
	}
	return p, nil
}

// UpdatePin implements store.Pins. The stored row is locked while its
// revision is compared, so that of two concurrent updates from the same
// revision exactly one applies.
func (d *DB) UpdatePin(ctx context.Context, p store.Pin) (store.Pin, error) {
	var (
		out  store.Pin
		cond error
	)
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		cur, err := scanPin(tx.QueryRow(ctx, `SELECT `+pinColumns+` FROM mcp_pins WHERE server = $1 AND tool = $2 FOR UPDATE`, p.Server, p.Tool))
		if err != nil {
			return err
		}
		if cur.Revision != p.Revision {
			out = cur
			cond = fmt.Errorf("update pin %s/%s: at revision %d, not %d: %w", p.Server, p.Tool, cur.Revision, p.Revision, store.ErrPrecondition)
			return nil
		}
		np := p
		np.Revision, np.FirstSeen, np.UpdatedAt = cur.Revision+1, cur.FirstSeen, d.now().UTC()
		if _, err := tx.Exec(ctx, `UPDATE mcp_pins SET digest = $1, observed = $2, shape = $3, state = $4, reason = $5, actor = $6,
			revision = $7, updated_at = $8 WHERE server = $9 AND tool = $10`,
			np.Digest, np.Observed, np.Shape, np.State, np.Reason, np.Actor, np.Revision, unixNano(np.UpdatedAt), np.Server, np.Tool); err != nil {
			return err
		}
		out = np
		return nil
	})
	if err != nil {
		return store.Pin{}, fmt.Errorf("update pin %s/%s: %w", p.Server, p.Tool, err)
	}
	return out, cond
}

// GetPin implements store.Pins.
func (d *DB) GetPin(ctx context.Context, server, tool string) (store.Pin, error) {
	p, err := scanPin(d.pool.QueryRow(ctx, `SELECT `+pinColumns+` FROM mcp_pins WHERE server = $1 AND tool = $2`, server, tool))
	if err != nil {
		return store.Pin{}, fmt.Errorf("get pin %s/%s: %w", server, tool, err)
	}
	return p, nil
}

// ListPins implements store.Pins.
func (d *DB) ListPins(ctx context.Context, server string) ([]store.Pin, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+pinColumns+` FROM mcp_pins WHERE $1 = '' OR server = $1 ORDER BY server, tool`, server)
	if err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	out, err := collect(rows, scanPin)
	if err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	return out, nil
}

// DeletePin implements store.Pins.
func (d *DB) DeletePin(ctx context.Context, server, tool string) error {
	tag, err := d.pool.Exec(ctx, `DELETE FROM mcp_pins WHERE server = $1 AND tool = $2`, server, tool)
	if err != nil {
		return fmt.Errorf("delete pin %s/%s: %w", server, tool, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete pin %s/%s: %w", server, tool, store.ErrNotFound)
	}
	return nil
}

func scanPin(s pgx.Row) (store.Pin, error) {
	var (
		p                    store.Pin
		firstSeen, updatedAt int64
	)
	err := s.Scan(&p.Server, &p.Tool, &p.Digest, &p.Observed, &p.Shape, &p.State, &p.Reason, &p.Actor, &p.Revision, &firstSeen, &updatedAt)
	if err != nil {
		return store.Pin{}, notFound(err)
	}
	p.FirstSeen, p.UpdatedAt = fromNano(firstSeen), fromNano(updatedAt)
	return p, nil
}
