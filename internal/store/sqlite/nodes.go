package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

var _ store.NodeStore = (*DB)(nil)

const nodeColumns = `name, id, attestor, selectors, attested_at, last_seen, acked_seq, evicted_at`

// PutNode implements store.Nodes.
func (d *DB) PutNode(ctx context.Context, n store.Node) error {
	sel, err := json.Marshal(n.Selectors)
	if err != nil {
		return fmt.Errorf("encode selectors of node %q: %w", n.Name, err)
	}
	if n.Selectors == nil {
		sel = []byte("[]")
	}
	_, err = d.db.ExecContext(ctx, `INSERT INTO nodes (`+nodeColumns+`) VALUES (?,?,?,?,?,?,?,0)
		ON CONFLICT(name) DO UPDATE SET id=excluded.id, attestor=excluded.attestor, selectors=excluded.selectors,
		attested_at=excluded.attested_at, last_seen=excluded.last_seen, acked_seq=excluded.acked_seq, evicted_at=0`,
		n.Name, n.ID, n.Attestor, string(sel), unixNano(n.AttestedAt), unixNano(n.LastSeen), n.AckedSeq)
	if isUnique(err) {
		return fmt.Errorf("put node %q: attestation id %q: %w", n.Name, n.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("put node %q: %w", n.Name, err)
	}
	return nil
}

func scanNode(sc interface{ Scan(...any) error }) (store.Node, error) {
	var (
		n                    store.Node
		sel                  string
		att, seen, evictedAt int64
	)
	if err := sc.Scan(&n.Name, &n.ID, &n.Attestor, &sel, &att, &seen, &n.AckedSeq, &evictedAt); err != nil {
		return n, err
	}
	if err := json.Unmarshal([]byte(sel), &n.Selectors); err != nil {
		return n, fmt.Errorf("decode selectors of node %q: %w", n.Name, err)
	}
	n.AttestedAt, n.LastSeen, n.EvictedAt = fromNano(att), fromNano(seen), fromNano(evictedAt)
	return n, nil
}

// GetNode implements store.Nodes.
func (d *DB) GetNode(ctx context.Context, name string) (store.Node, error) {
	n, err := scanNode(d.db.QueryRowContext(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return n, fmt.Errorf("node %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return n, fmt.Errorf("get node %q: %w", name, err)
	}
	return n, nil
}

// ListNodes implements store.Nodes.
func (d *DB) ListNodes(ctx context.Context) ([]store.Node, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+nodeColumns+` FROM nodes ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	defer rows.Close()
	var out []store.Node
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// TouchNode implements store.Nodes.
func (d *DB) TouchNode(ctx context.Context, id string, at time.Time, seq int64) error {
	res, err := d.db.ExecContext(ctx, `UPDATE nodes SET last_seen = MAX(last_seen, ?), acked_seq = MAX(acked_seq, ?) WHERE id = ?`,
		unixNano(at), seq, id)
	if err != nil {
		return fmt.Errorf("touch node %q: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("node attestation %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// EvictNode implements store.Nodes.
func (d *DB) EvictNode(ctx context.Context, name string, at time.Time) (store.Node, error) {
	if _, err := d.db.ExecContext(ctx, `UPDATE nodes SET evicted_at = ? WHERE name = ? AND evicted_at = 0`, unixNano(at), name); err != nil {
		return store.Node{}, fmt.Errorf("evict node %q: %w", name, err)
	}
	return d.GetNode(ctx, name)
}

const joinTokenColumns = `id, hash, node, created_at, expires_at, used_at, used_by`

func scanJoinToken(sc interface{ Scan(...any) error }) (store.JoinToken, error) {
	var (
		t          store.JoinToken
		ca, ea, ua int64
	)
	if err := sc.Scan(&t.ID, &t.Hash, &t.Node, &ca, &ea, &ua, &t.UsedBy); err != nil {
		return t, err
	}
	t.CreatedAt, t.ExpiresAt, t.UsedAt = fromNano(ca), fromNano(ea), fromNano(ua)
	return t, nil
}

// CreateJoinToken implements store.JoinTokens.
func (d *DB) CreateJoinToken(ctx context.Context, t store.JoinToken) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = d.now().UTC()
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO join_tokens (`+joinTokenColumns+`) VALUES (?,?,?,?,?,0,'')`,
		t.ID, t.Hash, t.Node, unixNano(t.CreatedAt), unixNano(t.ExpiresAt))
	if isUnique(err) {
		return fmt.Errorf("join token %q: %w", t.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create join token %q: %w", t.ID, err)
	}
	return nil
}

// UseJoinToken implements store.JoinTokens.
func (d *DB) UseJoinToken(ctx context.Context, hash []byte, node string, now time.Time) (store.JoinToken, error) {
	t, err := scanJoinToken(d.db.QueryRowContext(ctx, `UPDATE join_tokens SET used_at = ?, used_by = ?
		WHERE hash = ? AND used_at = 0 AND expires_at > ? RETURNING `+joinTokenColumns,
		unixNano(now), node, hash, unixNano(now)))
	if errors.Is(err, sql.ErrNoRows) {
		return t, store.ErrTokenUnusable
	}
	if err != nil {
		return t, fmt.Errorf("use join token: %w", err)
	}
	return t, nil
}

// ListJoinTokens implements store.JoinTokens.
func (d *DB) ListJoinTokens(ctx context.Context) ([]store.JoinToken, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+joinTokenColumns+` FROM join_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list join tokens: %w", err)
	}
	defer rows.Close()
	var out []store.JoinToken
	for rows.Next() {
		t, err := scanJoinToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list join tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// DeleteJoinToken implements store.JoinTokens.
func (d *DB) DeleteJoinToken(ctx context.Context, id string) error {
	res, err := d.db.ExecContext(ctx, `DELETE FROM join_tokens WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete join token %q: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("join token %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// AppendChange implements store.Changes. SQLite serialises writers, so
// AUTOINCREMENT sequences grow in commit order.
func (d *DB) AppendChange(ctx context.Context, c store.Change) (int64, error) {
	if c.At.IsZero() {
		c.At = d.now().UTC()
	}
	body := c.Body
	if body == nil {
		body = []byte{}
	}
	var seq int64
	err := d.db.QueryRowContext(ctx, `INSERT INTO changes (kind, key, op, body, at) VALUES (?,?,?,?,?) RETURNING seq`,
		c.Kind, c.Key, c.Op, body, unixNano(c.At)).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("append change %s/%s: %w", c.Kind, c.Key, err)
	}
	return seq, nil
}

// ChangesSince implements store.Changes.
func (d *DB) ChangesSince(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT seq, kind, key, op, body, at FROM changes WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read changes after %d: %w", after, err)
	}
	defer rows.Close()
	var out []store.Change
	for rows.Next() {
		var (
			c  store.Change
			at int64
		)
		if err := rows.Scan(&c.Seq, &c.Kind, &c.Key, &c.Op, &c.Body, &at); err != nil {
			return nil, fmt.Errorf("read changes after %d: %w", after, err)
		}
		if len(c.Body) == 0 {
			c.Body = nil
		}
		c.At = fromNano(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// LastChange implements store.Changes.
func (d *DB) LastChange(ctx context.Context) (int64, error) {
	var seq int64
	// sqlite_sequence keeps the highest seq even when the feed was pruned
	// empty.
	err := d.db.QueryRowContext(ctx, `SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)`).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("read last change: %w", err)
	}
	return seq, nil
}

// OldestChange implements store.Changes.
func (d *DB) OldestChange(ctx context.Context) (int64, error) {
	var seq int64
	if err := d.db.QueryRowContext(ctx, `SELECT COALESCE(MIN(seq), 0) FROM changes`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("read oldest change: %w", err)
	}
	return seq, nil
}

// PruneChanges implements store.Changes.
func (d *DB) PruneChanges(ctx context.Context, upTo int64) (int, error) {
	res, err := d.db.ExecContext(ctx, `DELETE FROM changes WHERE seq <= ?`, upTo)
	if err != nil {
		return 0, fmt.Errorf("prune changes up to %d: %w", upTo, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
