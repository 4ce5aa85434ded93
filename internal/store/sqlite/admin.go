package sqlite

import (
	"context"
	"fmt"

	"github.com/writ-dev/writ/internal/store"
)

// PutAdminToken implements store.AdminTokens.
func (d *DB) PutAdminToken(ctx context.Context, t store.AdminToken) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = d.now().UTC()
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO admin_tokens (id, hash, created_at) VALUES (?,?,?)
		ON CONFLICT(id) DO UPDATE SET hash = excluded.hash`, t.ID, t.Hash, unixNano(t.CreatedAt))
	if err != nil {
		return fmt.Errorf("put admin token %q: %w", t.ID, err)
	}
	return nil
}

// ListAdminTokens implements store.AdminTokens.
func (d *DB) ListAdminTokens(ctx context.Context) ([]store.AdminToken, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id, hash, created_at FROM admin_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list admin tokens: %w", err)
	}
	defer rows.Close()
	var out []store.AdminToken
	for rows.Next() {
		var (
			t  store.AdminToken
			ca int64
		)
		if err := rows.Scan(&t.ID, &t.Hash, &ca); err != nil {
			return nil, fmt.Errorf("list admin tokens: %w", err)
		}
		t.CreatedAt = fromNano(ca)
		out = append(out, t)
	}
	return out, rows.Err()
}
