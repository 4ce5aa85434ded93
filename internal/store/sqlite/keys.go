package sqlite

import (
	"context"
	"fmt"

	"github.com/writ-dev/writ/internal/store"
)

// PutKey implements store.Keys.
func (d *DB) PutKey(ctx context.Context, k store.Key) error {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = d.now().UTC()
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO keys (id, kind, state, sealed, public, cert, not_before, not_after, created_at)
		VALUES (?,?,?,?,?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET kind=excluded.kind, state=excluded.state, sealed=excluded.sealed,
		public=excluded.public, cert=excluded.cert, not_before=excluded.not_before, not_after=excluded.not_after`,
		k.ID, k.Kind, k.State, k.Sealed, k.Public, k.Cert, unixNano(k.NotBefore), unixNano(k.NotAfter), unixNano(k.CreatedAt))
	if err != nil {
		return fmt.Errorf("put key %q: %w", k.ID, err)
	}
	return nil
}

// ListKeys implements store.Keys.
func (d *DB) ListKeys(ctx context.Context, kind string) ([]store.Key, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id, kind, state, sealed, public, cert, not_before, not_after, created_at
		FROM keys WHERE kind = ? ORDER BY created_at, id`, kind)
	if err != nil {
		return nil, fmt.Errorf("list %s keys: %w", kind, err)
	}
	defer rows.Close()
	var out []store.Key
	for rows.Next() {
		var (
			k                 store.Key
			nb, na, createdAt int64
		)
		if err := rows.Scan(&k.ID, &k.Kind, &k.State, &k.Sealed, &k.Public, &k.Cert, &nb, &na, &createdAt); err != nil {
			return nil, fmt.Errorf("list %s keys: %w", kind, err)
		}
		k.NotBefore, k.NotAfter, k.CreatedAt = fromNano(nb), fromNano(na), fromNano(createdAt)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s keys: %w", kind, err)
	}
	return out, nil
}

// DeleteKey implements store.Keys.
func (d *DB) DeleteKey(ctx context.Context, id string) error {
	res, err := d.db.ExecContext(ctx, `DELETE FROM keys WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete key %q: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete key %q: %w", id, store.ErrNotFound)
	}
	return nil
}
