package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

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
	_, err = d.db.ExecContext(ctx, `INSERT INTO identities (`+identityColumns+`) VALUES (?,?,?,?,?,?,?,?,?)`,
		id.Name, id.SpiffeID, sel, int64(id.X509TTL), int64(id.JWTTTL), labels, id.Revision, unixNano(now), unixNano(now))
	if isUnique(err) {
		return store.Entry{}, fmt.Errorf("create identity %q: %w", id.Name, store.ErrExists)
	}
	if err != nil {
		return store.Entry{}, fmt.Errorf("create identity %q: %w", id.Name, err)
	}
	return id, nil
}

// UpsertEntry implements store.Entries.
func (d *DB) UpsertEntry(ctx context.Context, id store.Entry) (store.Entry, bool, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return store.Entry{}, false, fmt.Errorf("upsert identity %q: %w", id.Name, err)
	}
	defer tx.Rollback()
	cur, err := scanIdentity(tx.QueryRowContext(ctx, `SELECT `+identityColumns+` FROM identities WHERE name = ?`, id.Name))
	now := d.now().UTC()
	switch {
	case err == nil:
		if sameIdentity(cur, id) {
			return cur, false, nil
		}
		id.Revision, id.CreatedAt, id.UpdatedAt = cur.Revision+1, cur.CreatedAt, now
	case err == store.ErrNotFound:
		id.Revision, id.CreatedAt, id.UpdatedAt = 1, now, now
	default:
		return store.Entry{}, false, fmt.Errorf("upsert identity %q: %w", id.Name, err)
	}
	sel, labels, err := encodeIdentity(id)
	if err != nil {
		return store.Entry{}, false, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO identities (`+identityColumns+`) VALUES (?,?,?,?,?,?,?,?,?)
		ON CONFLICT(name) DO UPDATE SET spiffe_id=excluded.spiffe_id, selectors=excluded.selectors,
		x509_ttl=excluded.x509_ttl, jwt_ttl=excluded.jwt_ttl, labels=excluded.labels,
		revision=excluded.revision, updated_at=excluded.updated_at`,
		id.Name, id.SpiffeID, sel, int64(id.X509TTL), int64(id.JWTTTL), labels, id.Revision, unixNano(id.CreatedAt), unixNano(id.UpdatedAt))
	if err != nil {
		return store.Entry{}, false, fmt.Errorf("upsert identity %q: %w", id.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return store.Entry{}, false, fmt.Errorf("upsert identity %q: %w", id.Name, err)
	}
	return id, true, nil
}

// GetEntry implements store.Entries.
func (d *DB) GetEntry(ctx context.Context, name string) (store.Entry, error) {
	id, err := scanIdentity(d.db.QueryRowContext(ctx, `SELECT `+identityColumns+` FROM identities WHERE name = ?`, name))
	if err != nil {
		return store.Entry{}, fmt.Errorf("get identity %q: %w", name, err)
	}
	return id, nil
}

// ListEntries implements store.Entries.
func (d *DB) ListEntries(ctx context.Context) ([]store.Entry, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+identityColumns+` FROM identities ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list identities: %w", err)
	}
	defer rows.Close()
	var out []store.Entry
	for rows.Next() {
		id, err := scanIdentity(rows)
		if err != nil {
			return nil, fmt.Errorf("list identities: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list identities: %w", err)
	}
	return out, nil
}

// DeleteEntry implements store.Entries.
func (d *DB) DeleteEntry(ctx context.Context, name string) error {
	res, err := d.db.ExecContext(ctx, `DELETE FROM identities WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete identity %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete identity %q: %w", name, store.ErrNotFound)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanIdentity(s scanner) (store.Entry, error) {
	var (
		id                   store.Entry
		sel, labels          string
		x509TTL, jwtTTL      int64
		createdAt, updatedAt int64
	)
	err := s.Scan(&id.Name, &id.SpiffeID, &sel, &x509TTL, &jwtTTL, &labels, &id.Revision, &createdAt, &updatedAt)
	if err == sql.ErrNoRows {
		return store.Entry{}, store.ErrNotFound
	}
	if err != nil {
		return store.Entry{}, err
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
