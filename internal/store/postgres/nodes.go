package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/writ-dev/writ/internal/store"
)

var _ store.NodeStore = (*DB)(nil)

// ChangesChannel is the LISTEN/NOTIFY channel on which every append to
// the change feed is announced, with the new sequence number as payload,
// when its transaction commits (see store.Changes and [DB.Listen]).
const ChangesChannel = "writ_changes"

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
	_, err = d.pool.Exec(ctx, `INSERT INTO nodes (`+nodeColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,0)
		ON CONFLICT (name) DO UPDATE SET id = excluded.id, attestor = excluded.attestor, selectors = excluded.selectors,
		attested_at = excluded.attested_at, last_seen = excluded.last_seen, acked_seq = excluded.acked_seq, evicted_at = 0`,
		n.Name, n.ID, n.Attestor, string(sel), unixNano(n.AttestedAt), unixNano(n.LastSeen), n.AckedSeq)
	if isUnique(err) {
		return fmt.Errorf("put node %q: attestation id %q: %w", n.Name, n.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("put node %q: %w", n.Name, err)
	}
	return nil
}

func scanNode(sc pgx.Row) (store.Node, error) {
	var (
		n                    store.Node
		sel                  string
		att, seen, evictedAt int64
	)
	if err := sc.Scan(&n.Name, &n.ID, &n.Attestor, &sel, &att, &seen, &n.AckedSeq, &evictedAt); err != nil {
		return n, notFound(err)
	}
	if err := json.Unmarshal([]byte(sel), &n.Selectors); err != nil {
		return n, fmt.Errorf("decode selectors of node %q: %w", n.Name, err)
	}
	n.AttestedAt, n.LastSeen, n.EvictedAt = fromNano(att), fromNano(seen), fromNano(evictedAt)
	return n, nil
}

// GetNode implements store.Nodes.
func (d *DB) GetNode(ctx context.Context, name string) (store.Node, error) {
	n, err := scanNode(d.pool.QueryRow(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE name = $1`, name))
	if err != nil {
		return n, fmt.Errorf("node %q: %w", name, err)
	}
	return n, nil
}

// ListNodes implements store.Nodes.
func (d *DB) ListNodes(ctx context.Context) ([]store.Node, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+nodeColumns+` FROM nodes ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out, err := collect(rows, scanNode)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

// TouchNode implements store.Nodes.
func (d *DB) TouchNode(ctx context.Context, id string, at time.Time, seq int64) error {
	tag, err := d.pool.Exec(ctx, `UPDATE nodes SET last_seen = GREATEST(last_seen, $1), acked_seq = GREATEST(acked_seq, $2) WHERE id = $3`,
		unixNano(at), seq, id)
	if err != nil {
		return fmt.Errorf("touch node %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("node attestation %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// EvictNode implements store.Nodes.
func (d *DB) EvictNode(ctx context.Context, name string, at time.Time) (store.Node, error) {
	if _, err := d.pool.Exec(ctx, `UPDATE nodes SET evicted_at = $1 WHERE name = $2 AND evicted_at = 0`, unixNano(at), name); err != nil {
		return store.Node{}, fmt.Errorf("evict node %q: %w", name, err)
	}
	return d.GetNode(ctx, name)
}

const joinTokenColumns = `id, hash, node, created_at, expires_at, used_at, used_by`

func scanJoinToken(sc pgx.Row) (store.JoinToken, error) {
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
	_, err := d.pool.Exec(ctx, `INSERT INTO join_tokens (`+joinTokenColumns+`) VALUES ($1,$2,$3,$4,$5,0,'')`,
		t.ID, nonNilBytes(t.Hash), t.Node, unixNano(t.CreatedAt), unixNano(t.ExpiresAt))
	if isUnique(err) {
		return fmt.Errorf("join token %q: %w", t.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create join token %q: %w", t.ID, err)
	}
	return nil
}

// UseJoinToken implements store.JoinTokens: one conditional UPDATE, so of
// concurrent uses from any number of servers exactly one matches.
func (d *DB) UseJoinToken(ctx context.Context, hash []byte, node string, now time.Time) (store.JoinToken, error) {
	t, err := scanJoinToken(d.pool.QueryRow(ctx, `UPDATE join_tokens SET used_at = $1, used_by = $2
		WHERE hash = $3 AND used_at = 0 AND expires_at > $1 RETURNING `+joinTokenColumns,
		unixNano(now), node, nonNilBytes(hash)))
	if err != nil {
		if notFound(err) == store.ErrNotFound {
			return t, store.ErrTokenUnusable
		}
		return t, fmt.Errorf("use join token: %w", err)
	}
	return t, nil
}

// ListJoinTokens implements store.JoinTokens.
func (d *DB) ListJoinTokens(ctx context.Context) ([]store.JoinToken, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+joinTokenColumns+` FROM join_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list join tokens: %w", err)
	}
	out, err := collect(rows, scanJoinToken)
	if err != nil {
		return nil, fmt.Errorf("list join tokens: %w", err)
	}
	return out, nil
}

// DeleteJoinToken implements store.JoinTokens.
func (d *DB) DeleteJoinToken(ctx context.Context, id string) error {
	tag, err := d.pool.Exec(ctx, `DELETE FROM join_tokens WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete join token %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("join token %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// AppendChange implements store.Changes. The feed's head row is locked
// for the transaction, so sequence numbers are given out and committed in
// one order across every server; the NOTIFY is delivered to listeners
// when the transaction commits.
func (d *DB) AppendChange(ctx context.Context, c store.Change) (int64, error) {
	if c.At.IsZero() {
		c.At = d.now().UTC()
	}
	var seq int64
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `UPDATE changes_head SET seq = seq + 1 WHERE one RETURNING seq`).Scan(&seq); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO changes (seq, kind, key, op, body, at) VALUES ($1,$2,$3,$4,$5,$6)`,
			seq, c.Kind, c.Key, c.Op, nonNilBytes(c.Body), unixNano(c.At)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, ChangesChannel, strconv.FormatInt(seq, 10))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("append change %s/%s: %w", c.Kind, c.Key, err)
	}
	return seq, nil
}

// ChangesSince implements store.Changes.
func (d *DB) ChangesSince(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	rows, err := d.pool.Query(ctx, `SELECT seq, kind, key, op, body, at FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read changes after %d: %w", after, err)
	}
	out, err := collect(rows, func(r pgx.Row) (store.Change, error) {
		var (
			c  store.Change
			at int64
		)
		err := r.Scan(&c.Seq, &c.Kind, &c.Key, &c.Op, &c.Body, &at)
		if len(c.Body) == 0 {
			c.Body = nil
		}
		c.At = fromNano(at)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("read changes after %d: %w", after, err)
	}
	return out, nil
}

// LastChange implements store.Changes: the head keeps the highest number
// even when the feed was pruned empty.
func (d *DB) LastChange(ctx context.Context) (int64, error) {
	var seq int64
	if err := d.pool.QueryRow(ctx, `SELECT seq FROM changes_head WHERE one`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("read last change: %w", err)
	}
	return seq, nil
}

// OldestChange implements store.Changes.
func (d *DB) OldestChange(ctx context.Context) (int64, error) {
	var seq int64
	if err := d.pool.QueryRow(ctx, `SELECT COALESCE(MIN(seq), 0) FROM changes`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("read oldest change: %w", err)
	}
	return seq, nil
}

// PruneChanges implements store.Changes.
func (d *DB) PruneChanges(ctx context.Context, upTo int64) (int, error) {
	tag, err := d.pool.Exec(ctx, `DELETE FROM changes WHERE seq <= $1`, upTo)
	if err != nil {
		return 0, fmt.Errorf("prune changes up to %d: %w", upTo, err)
	}
	return int(tag.RowsAffected()), nil
}
