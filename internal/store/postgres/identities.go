package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/writ-dev/writ/internal/store"
)

const identityColumns = `name, spiffe_id, selectors, x509_ttl, jwt_ttl, labels, revision, created_at, updated_at`

// CreateEntry implements store.Entries.
func (d *DB) CreateEntry(ctx context.Context, id store.Entry) (store.Entry, error) {
	now := d.now().UTC()
	id.Revision, id.CreatedAt, id.UpdatedAt = 1, now, now
	sel, labels, err := encodeIdentity(id)
	if err != nil {
		return store.Entry{}, err
	}
	_, err = d.pool.Exec(ctx, `INSERT INTO identities (`+identityColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`,
		id.Name, id.SpiffeID, sel, int64(id.X509TTL), int64(id.JWTTTL), labels, id.Revision, unixNano(now), unixNano(now))
	if isUnique(err) {
		return store.Entry{}, fmt.Errorf("create identity %q: %w", id.Name, store.ErrExists)
	}
	if err != nil {
		return store.Entry{}, fmt.Errorf("create identity %q: %w", id.Name, err)
	}
	return id, nil
}

// UpsertEntry implements store.Entries. The current row is locked, so
// that concurrent upserts from several servers bump the revision once
// each.
func (d *DB) UpsertEntry(ctx context.Context, id store.Entry) (store.Entry, bool, error) {
	var (
		out     store.Entry
		changed bool
	)
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		cur, err := scanIdentity(tx.QueryRow(ctx, `SELECT `+identityColumns+` FROM identities WHERE name = $1 FOR UPDATE`, id.Name))
		now := d.now().UTC()
		e := id
		switch {
		case err == nil:
			if sameIdentity(cur, id) {
				out, changed = cur, false
				return nil
			}
			e.Revision, e.CreatedAt, e.UpdatedAt = cur.Revision+1, cur.CreatedAt, now
		case errors.Is(err, store.ErrNotFound):
			e.Revision, e.CreatedAt, e.UpdatedAt = 1, now, now
		default:
			return err
		}
		sel, labels, err := encodeIdentity(e)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO identities (`+identityColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
			ON CONFLICT (name) DO UPDATE SET spiffe_id = excluded.spiffe_id, selectors = excluded.selectors,
			x509_ttl = excluded.x509_ttl, jwt_ttl = excluded.jwt_ttl, labels = excluded.labels,
			revision = excluded.revision, updated_at = excluded.updated_at`,
			e.Name, e.SpiffeID, sel, int64(e.X509TTL), int64(e.JWTTTL), labels, e.Revision, unixNano(e.CreatedAt), unixNano(e.UpdatedAt)); err != nil {
			return err
		}
		out, changed = e, true
		return nil
	})
	if err != nil {
		return store.Entry{}, false, fmt.Errorf("upsert identity %q: %w", id.Name, err)
	}
	return out, changed, nil
}

// GetEntry implements store.Entries.
func (d *DB) GetEntry(ctx context.Context, name string) (store.Entry, error) {
	id, err := scanIdentity(d.pool.QueryRow(ctx, `SELECT `+identityColumns+` FROM identities WHERE name = $1`, name))
	if err != nil {
		return store.Entry{}, fmt.Errorf("get identity %q: %w", name, err)
	}
	return id, nil
}

// ListEntries implements store.Entries.
func (d *DB) ListEntries(ctx context.Context) ([]store.Entry, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+identityColumns+` FROM identities ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list identities: %w", err)
	}
	out, err := collect(rows, scanIdentity)
	if err != nil {
		return nil, fmt.Errorf("list identities: %w", err)
	}
	return out, nil
}

// DeleteEntry implements store.Entries.
func (d *DB) DeleteEntry(ctx context.Context, name string) error {
	tag, err := d.pool.Exec(ctx, `DELETE FROM identities WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("delete identity %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete identity %q: %w", name, store.ErrNotFound)
	}
	return nil
}

func scanIdentity(s pgx.Row) (store.Entry, error) {
	var (
		id                   store.Entry
		sel, labels          string
		x509TTL, jwtTTL      int64
		createdAt, updatedAt int64
	)
	err := s.Scan(&id.Name, &id.SpiffeID, &sel, &x509TTL, &jwtTTL, &labels, &id.Revision, &createdAt, &updatedAt)
	if err != nil {
		return store.Entry{}, notFound(err)
	}
	if err := json.Unmarshal([]byte(sel), &id.Selectors); err != nil {
		return store.Entry{}, fmt.Errorf("decode selectors of %q: %w", id.Name, err)
	}
	if err := json.Unmarshal([]byte(labels), &id.Labels); err != nil {
		return store.Entry{}, fmt.Errorf("decode labels of %q: %w", id.Name, err)
	}
	if len(id.Labels) == 0 {
		id.Labels = nil
	}
	id.X509TTL, id.JWTTTL = time.Duration(x509TTL), time.Duration(jwtTTL)
	id.CreatedAt, id.UpdatedAt = fromNano(createdAt), fromNano(updatedAt)
	return id, nil
}

func encodeIdentity(id store.Entry) (sel, labels string, err error) {
	s := id.Selectors
	if s == nil {
		s = []store.Selector{}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return "", "", fmt.Errorf("encode selectors of %q: %w", id.Name, err)
	}
	l := id.Labels
	if l == nil {
		l = map[string]string{}
	}
	lb, err := json.Marshal(l)
	if err != nil {
		return "", "", fmt.Errorf("encode labels of %q: %w", id.Name, err)
	}
	return string(b), string(lb), nil
}

func sameIdentity(a, b store.Entry) bool {
	return a.SpiffeID == b.SpiffeID && slices.Equal(a.Selectors, b.Selectors) &&
		a.X509TTL == b.X509TTL && a.JWTTTL == b.JWTTTL && maps.Equal(a.Labels, b.Labels)
}
