package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/writ-dev/writ/internal/store"
)

// PutKey implements store.Keys.
func (d *DB) PutKey(ctx context.Context, k store.Key) error {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = d.now().UTC()
	}
	_, err := d.pool.Exec(ctx, `INSERT INTO keys (id, kind, state, sealed, public, cert, not_before, not_after, created_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
		ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, state = excluded.state, sealed = excluded.sealed,
		public = excluded.public, cert = excluded.cert, not_before = excluded.not_before, not_after = excluded.not_after`,
		k.ID, k.Kind, k.State, nonNilBytes(k.Sealed), nonNilBytes(k.Public), k.Cert, unixNano(k.NotBefore), unixNano(k.NotAfter), unixNano(k.CreatedAt))
	if err != nil {
		return fmt.Errorf("put key %q: %w", k.ID, err)
	}
	return nil
}

// ListKeys implements store.Keys.
func (d *DB) ListKeys(ctx context.Context, kind string) ([]store.Key, error) {
	rows, err := d.pool.Query(ctx, `SELECT id, kind, state, sealed, public, cert, not_before, not_after, created_at
		FROM keys WHERE kind = $1 ORDER BY created_at, id`, kind)
	if err != nil {
		return nil, fmt.Errorf("list %s keys: %w", kind, err)
	}
	out, err := collect(rows, func(r pgx.Row) (store.Key, error) {
		var (
			k                 store.Key
			nb, na, createdAt int64
		)
		err := r.Scan(&k.ID, &k.Kind, &k.State, &k.Sealed, &k.Public, &k.Cert, &nb, &na, &createdAt)
		k.NotBefore, k.NotAfter, k.CreatedAt = fromNano(nb), fromNano(na), fromNano(createdAt)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("list %s keys: %w", kind, err)
	}
	return out, nil
}

// DeleteKey implements store.Keys.
func (d *DB) DeleteKey(ctx context.Context, id string) error {
	tag, err := d.pool.Exec(ctx, `DELETE FROM keys WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete key %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete key %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// PutAdminToken implements store.AdminTokens.
func (d *DB) PutAdminToken(ctx context.Context, t store.AdminToken) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = d.now().UTC()
	}
	_, err := d.pool.Exec(ctx, `INSERT INTO admin_tokens (id, hash, created_at) VALUES ($1,$2,$3)
		ON CONFLICT (id) DO UPDATE SET hash = excluded.hash`, t.ID, nonNilBytes(t.Hash), unixNano(t.CreatedAt))
	if err != nil {
		return fmt.Errorf("put admin token %q: %w", t.ID, err)
	}
	return nil
}

// ListAdminTokens implements store.AdminTokens.
func (d *DB) ListAdminTokens(ctx context.Context) ([]store.AdminToken, error) {
	rows, err := d.pool.Query(ctx, `SELECT id, hash, created_at FROM admin_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list admin tokens: %w", err)
	}
	out, err := collect(rows, func(r pgx.Row) (store.AdminToken, error) {
		var (
			t  store.AdminToken
			ca int64
		)
		err := r.Scan(&t.ID, &t.Hash, &ca)
		t.CreatedAt = fromNano(ca)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list admin tokens: %w", err)
	}
	return out, nil
}

// nonNilBytes stores a nil slice as an empty value in a NOT NULL column,
// as SQLite does.
func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
