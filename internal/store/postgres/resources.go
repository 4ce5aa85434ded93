package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/writ-dev/writ/internal/store"
)

// PutResource implements store.Resources. The latest version of kind/name
// is locked, and a first version is guarded by the primary key (two
// servers creating the same resource: one wins, the other retries and sees
// it).
func (d *DB) PutResource(ctx context.Context, r store.Resource) (store.Resource, bool, error) {
	for attempt := 0; ; attempt++ {
		out, changed, err := d.putResource(ctx, r)
		if isUnique(err) && attempt < 3 {
			continue
		}
		if err != nil {
			return store.Resource{}, false, fmt.Errorf("put %s %q: %w", r.Kind, r.Name, err)
		}
		return out, changed, nil
	}
}

func (d *DB) putResource(ctx context.Context, r store.Resource) (out store.Resource, changed bool, err error) {
	err = pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		cur, deleted, err := latestResource(ctx, tx, r.Kind, r.Name, true)
		switch {
		case err == nil && !deleted && bytes.Equal(cur.Spec, r.Spec):
			out, changed = cur, false
			return nil
		case err == nil:
			r.Version = cur.Version + 1
		case errors.Is(err, store.ErrNotFound):
			r.Version = 1
		default:
			return err
		}
		r.UpdatedAt = d.now().UTC()
		if _, err := tx.Exec(ctx, `INSERT INTO resources (kind, name, version, spec, actor, updated_at, deleted)
			VALUES ($1,$2,$3,$4,$5,$6,false)`, r.Kind, r.Name, r.Version, nonNilBytes(r.Spec), r.Actor, unixNano(r.UpdatedAt)); err != nil {
			return err
		}
		out, changed = r, true
		return nil
	})
	return out, changed, err
}

// GetResource implements store.Resources.
func (d *DB) GetResource(ctx context.Context, kind, name string) (store.Resource, error) {
	r, deleted, err := latestResource(ctx, d.pool, kind, name, false)
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
	rows, err := d.pool.Query(ctx, `SELECT kind, name, version, spec, actor, updated_at FROM (
			SELECT DISTINCT ON (name) kind, name, version, spec, actor, updated_at, deleted
			FROM resources WHERE kind = $1 ORDER BY name, version DESC) latest
		WHERE NOT deleted ORDER BY name`, kind)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	out, err := collect(rows, func(row pgx.Row) (store.Resource, error) {
		var (
			r  store.Resource
			ua int64
		)
		err := row.Scan(&r.Kind, &r.Name, &r.Version, &r.Spec, &r.Actor, &ua)
		r.UpdatedAt = fromNano(ua)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	return out, nil
}

// ResourceHistory implements store.Resources.
func (d *DB) ResourceHistory(ctx context.Context, kind, name string, limit int) ([]store.Resource, error) {
	rows, err := d.pool.Query(ctx, `SELECT kind, name, version, spec, actor, updated_at FROM resources
		WHERE kind = $1 AND name = $2 AND NOT deleted ORDER BY version DESC LIMIT $3`, kind, name, limit)
	if err != nil {
		return nil, fmt.Errorf("history of %s %q: %w", kind, name, err)
	}
	out, err := collect(rows, func(row pgx.Row) (store.Resource, error) {
		var (
			r  store.Resource
			ua int64
		)
		err := row.Scan(&r.Kind, &r.Name, &r.Version, &r.Spec, &r.Actor, &ua)
		r.UpdatedAt = fromNano(ua)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("history of %s %q: %w", kind, name, err)
	}
	return out, nil
}

// DeleteResource implements store.Resources. The history is kept: a
// tombstone version marks the deletion.
func (d *DB) DeleteResource(ctx context.Context, kind, name string) error {
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		cur, deleted, err := latestResource(ctx, tx, kind, name, true)
		if err == nil && deleted {
			err = store.ErrNotFound
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO resources (kind, name, version, spec, actor, updated_at, deleted)
			VALUES ($1,$2,$3,$4,$5,$6,true)`, kind, name, cur.Version+1, []byte{}, "", unixNano(d.now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("delete %s %q: %w", kind, name, err)
	}
	return nil
}

func latestResource(ctx context.Context, q querier, kind, name string, lock bool) (store.Resource, bool, error) {
	var (
		r       store.Resource
		ua      int64
		deleted bool
	)
	query := `SELECT kind, name, version, spec, actor, updated_at, deleted FROM resources
		WHERE kind = $1 AND name = $2 ORDER BY version DESC LIMIT 1`
	if lock {
		query += ` FOR UPDATE`
	}
	err := q.QueryRow(ctx, query, kind, name).Scan(&r.Kind, &r.Name, &r.Version, &r.Spec, &r.Actor, &ua, &deleted)
	if err != nil {
		return store.Resource{}, false, notFound(err)
	}
	r.UpdatedAt = fromNano(ua)
	return r, deleted, nil
}
