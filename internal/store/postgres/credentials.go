package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/writ-dev/writ/internal/store"
)

const credentialColumns = `name, type, sealed, version, actor, created_at, updated_at`

// CreateCredential implements store.Credentials.
func (d *DB) CreateCredential(ctx context.Context, c store.Credential) (store.Credential, error) {
	now := d.now().UTC()
	c.Version, c.CreatedAt, c.UpdatedAt = 1, now, now
	_, err := d.pool.Exec(ctx, `INSERT INTO credentials (`+credentialColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7)`,
		c.Name, c.Type, nonNilBytes(c.Sealed), c.Version, c.Actor, unixNano(now), unixNano(now))
	if isUnique(err) {
		return store.Credential{}, fmt.Errorf("create credential %q: %w", c.Name, store.ErrExists)
	}
	if err != nil {
		return store.Credential{}, fmt.Errorf("create credential %q: %w", c.Name, err)
	}
	return c, nil
}

// RotateCredential implements store.Credentials: one statement bumps the
// version, so concurrent rotations from several servers each get one.
func (d *DB) RotateCredential(ctx context.Context, c store.Credential) (store.Credential, error) {
	var created int64
	c.UpdatedAt = d.now().UTC()
	err := d.pool.QueryRow(ctx, `UPDATE credentials SET type = $1, sealed = $2, version = version + 1, actor = $3, updated_at = $4
		WHERE name = $5 RETURNING version, created_at`,
		c.Type, nonNilBytes(c.Sealed), c.Actor, unixNano(c.UpdatedAt), c.Name).Scan(&c.Version, &created)
	if err != nil {
		return store.Credential{}, fmt.Errorf("rotate credential %q: %w", c.Name, notFound(err))
	}
	c.CreatedAt = fromNano(created)
	return c, nil
}

// GetCredential implements store.Credentials.
func (d *DB) GetCredential(ctx context.Context, name string) (store.Credential, error) {
	c, err := scanCredential(d.pool.QueryRow(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE name = $1`, name))
	if err != nil {
		return store.Credential{}, fmt.Errorf("get credential %q: %w", name, err)
	}
	return c, nil
}

// ListCredentials implements store.Credentials.
func (d *DB) ListCredentials(ctx context.Context) ([]store.Credential, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+credentialColumns+` FROM credentials ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	out, err := collect(rows, scanCredential)
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	return out, nil
}

// DeleteCredential implements store.Credentials.
func (d *DB) DeleteCredential(ctx context.Context, name string) error {
	tag, err := d.pool.Exec(ctx, `DELETE FROM credentials WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("delete credential %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete credential %q: %w", name, store.ErrNotFound)
	}
	return nil
}

func scanCredential(s pgx.Row) (store.Credential, error) {
	var (
		c                    store.Credential
		createdAt, updatedAt int64
	)
	if err := s.Scan(&c.Name, &c.Type, &c.Sealed, &c.Version, &c.Actor, &createdAt, &updatedAt); err != nil {
		return store.Credential{}, notFound(err)
	}
	c.CreatedAt, c.UpdatedAt = fromNano(createdAt), fromNano(updatedAt)
	return c, nil
}
