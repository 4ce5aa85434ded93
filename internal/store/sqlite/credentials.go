package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/writ-dev/writ/internal/store"
)

const credentialColumns = `name, type, sealed, version, actor, created_at, updated_at`

// CreateCredential implements store.Credentials.
func (d *DB) CreateCredential(ctx context.Context, c store.Credential) (store.Credential, error) {
	now := d.now().UTC()
	c.Version, c.CreatedAt, c.UpdatedAt = 1, now, now
	_, err := d.db.ExecContext(ctx, `INSERT INTO credentials (`+credentialColumns+`) VALUES (?,?,?,?,?,?,?)`,
		c.Name, c.Type, c.Sealed, c.Version, c.Actor, unixNano(now), unixNano(now))
	if isUnique(err) {
		return store.Credential{}, fmt.Errorf("create credential %q: %w", c.Name, store.ErrExists)
	}
	if err != nil {
		return store.Credential{}, fmt.Errorf("create credential %q: %w", c.Name, err)
	}
	return c, nil
}

// RotateCredential implements store.Credentials.
func (d *DB) RotateCredential(ctx context.Context, c store.Credential) (store.Credential, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return store.Credential{}, fmt.Errorf("rotate credential %q: %w", c.Name, err)
	}
	defer tx.Rollback()
	cur, err := scanCredential(tx.QueryRowContext(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE name = ?`, c.Name))
	if err != nil {
		return store.Credential{}, fmt.Errorf("rotate credential %q: %w", c.Name, err)
	}
	c.Version, c.CreatedAt, c.UpdatedAt = cur.Version+1, cur.CreatedAt, d.now().UTC()
	if _, err := tx.ExecContext(ctx, `UPDATE credentials SET type = ?, sealed = ?, version = ?, actor = ?, updated_at = ? WHERE name = ?`,
		c.Type, c.Sealed, c.Version, c.Actor, unixNano(c.UpdatedAt), c.Name); err != nil {
		return store.Credential{}, fmt.Errorf("rotate credential %q: %w", c.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return store.Credential{}, fmt.Errorf("rotate credential %q: %w", c.Name, err)
	}
	return c, nil
}

// GetCredential implements store.Credentials.
func (d *DB) GetCredential(ctx context.Context, name string) (store.Credential, error) {
	c, err := scanCredential(d.db.QueryRowContext(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE name = ?`, name))
	if err != nil {
		return store.Credential{}, fmt.Errorf("get credential %q: %w", name, err)
	}
	return c, nil
}

// ListCredentials implements store.Credentials.
func (d *DB) ListCredentials(ctx context.Context) ([]store.Credential, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+credentialColumns+` FROM credentials ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	defer rows.Close()
	var out []store.Credential
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, fmt.Errorf("list credentials: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	return out, nil
}

// DeleteCredential implements store.Credentials.
func (d *DB) DeleteCredential(ctx context.Context, name string) error {
	res, err := d.db.ExecContext(ctx, `DELETE FROM credentials WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete credential %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("delete credential %q: %w", name, store.ErrNotFound)
	}
	return nil
}

func scanCredential(s scanner) (store.Credential, error) {
	var (
		c                    store.Credential
		createdAt, updatedAt int64
	)
	err := s.Scan(&c.Name, &c.Type, &c.Sealed, &c.Version, &c.Actor, &createdAt, &updatedAt)
	if err == sql.ErrNoRows {
		return store.Credential{}, store.ErrNotFound
	}
	if err != nil {
		return store.Credential{}, err
	}
	c.CreatedAt, c.UpdatedAt = fromNano(createdAt), fromNano(updatedAt)
	return c, nil
}
