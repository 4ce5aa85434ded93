package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"

	"github.com/writ-dev/writ/internal/store"
)

// PutResource implements store.Resources.
func (d *DB) PutResource(ctx context.Context, r store.Resource) (store.Resource, bool, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return store.Resource{}, false, fmt.Errorf("put %s %q: %w", r.Kind, r.Name, err)
	}
	defer tx.Rollback()
	cur, deleted, err := latestResource(ctx, tx, r.Kind, r.Name)
	switch {
	case err == nil && !deleted && bytes.Equal(cur.Spec, r.Spec):
		return cur, false, nil
	case err == nil:
		r.Version = cur.Version + 1
	case err == store.ErrNotFound:
		r.Version = 1
	default:
		return store.Resource{}, false, fmt.Errorf("put %s %q: %w", r.Kind, r.Name, err)
	}
	r.UpdatedAt = d.now().UTC()
	if _, err := tx.ExecContext(ctx, `INSERT INTO resources (kind, name, version, spec, actor, updated_at, deleted)
		VALUES (?,?,?,?,?,?,0)`, r.Kind, r.Name, r.Version, r.Spec, r.Actor, unixNano(r.UpdatedAt)); err != nil {
		return store.Resource{}, false, fmt.Errorf("put %s %q: %w", r.Kind, r.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return store.Resource{}, false, fmt.Errorf("put %s %q: %w", r.Kind, r.Name, err)
	}
	return r, true, nil
}

// GetResource implements store.Resources.
func (d *DB) GetResource(ctx context.Context, kind, name string) (store.Resource, error) {
	r, deleted, err := latestResource(ctx, d.db, kind, name)
	if err == nil && deleted {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Resource{}, fmt.Errorf("get %s %q: %w", kind, name, err)
	}
	return r, nil
}

// ListResources implements store.Resources. It returns the current version
// of every live resource of kind, ordered by name.
func (d *DB) ListResources(ctx context.Context, kind string) ([]store.Resource, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT r.kind, r.name, r.version, r.spec, r.actor, r.updated_at
		FROM resources r
		JOIN (SELECT kind, name, MAX(version) AS v FROM resources WHERE kind = ? GROUP BY kind, name) m
		  ON r.kind = m.kind AND r.name = m.name AND r.version = m.v
		WHERE r.deleted = 0 ORDER BY r.name`, kind)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	defer rows.Close()
	var out []store.Resource
	for rows.Next() {
		var (
			r  store.Resource
			ua int64
		)
		if err := rows.Scan(&r.Kind, &r.Name, &r.Version, &r.Spec, &r.Actor, &ua); err != nil {
			return nil, fmt.Errorf("list %s: %w", kind, err)
		}
		r.UpdatedAt = fromNano(ua)
		out = append(out, r)
	}
	return out, rows.Err()
}

// ResourceHistory implements store.Resources.
func (d *DB) ResourceHistory(ctx context.Context, kind, name string, limit int) ([]store.Resource, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT kind, name, version, spec, actor, updated_at FROM resources
		WHERE kind = ? AND name = ? AND deleted = 0 ORDER BY version DESC LIMIT ?`, kind, name, limit)
	if err != nil {
		return nil, fmt.Errorf("history of %s %q: %w", kind, name, err)
	}
	defer rows.Close()
	var out []store.Resource
	for rows.Next() {
		var (
			r  store.Resource
			ua int64
		)
		if err := rows.Scan(&r.Kind, &r.Name, &r.Version, &r.Spec, &r.Actor, &ua); err != nil {
			return nil, fmt.Errorf("history of %s %q: %w", kind, name, err)
		}
		r.UpdatedAt = fromNano(ua)
		out = append(out, r)
	}
	return out, rows.Err()
}

// DeleteResource implements store.Resources. The history is kept: a
// tombstone version marks the deletion.
func (d *DB) DeleteResource(ctx context.Context, kind, name string) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete %s %q: %w", kind, name, err)
	}
	defer tx.Rollback()
	cur, deleted, err := latestResource(ctx, tx, kind, name)
	if err == nil && deleted {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete %s %q: %w", kind, name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO resources (kind, name, version, spec, actor, updated_at, deleted)
		VALUES (?,?,?,?,?,?,1)`, kind, name, cur.Version+1, []byte{}, "", unixNano(d.now())); err != nil {
		return fmt.Errorf("delete %s %q: %w", kind, name, err)
	}
	return tx.Commit()
}

// rowQuerier is satisfied by *sql.DB and *sql.Tx.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func latestResource(ctx context.Context, q rowQuerier, kind, name string) (store.Resource, bool, error) {
	var (
		r       store.Resource
		ua      int64
		deleted int
	)
	err := q.QueryRowContext(ctx, `SELECT kind, name, version, spec, actor, updated_at, deleted FROM resources
		WHERE kind = ? AND name = ? ORDER BY version DESC LIMIT 1`, kind, name).
		Scan(&r.Kind, &r.Name, &r.Version, &r.Spec, &r.Actor, &ua, &deleted)
	if err != nil {
		return store.Resource{}, false, notFound(err)
	}
	r.UpdatedAt = fromNano(ua)
	return r, deleted == 1, nil
}
