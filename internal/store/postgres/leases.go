package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// AcquireLease implements store.Leases in one statement: the row is
// inserted, or taken over if it expired, or renewed if holder holds it;
// otherwise it is left alone and read back. The database decides, so of
// several servers asking at once exactly one holds the lease.
func (d *DB) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (store.Lease, bool, error) {
	if name == "" || holder == "" || ttl <= 0 {
		return store.Lease{}, false, fmt.Errorf("acquire lease %q: a name, a holder and a positive ttl are required", name)
	}
	var (
		l   store.Lease
		exp int64
	)
	err := d.pool.QueryRow(ctx, `INSERT INTO leases AS l (name, holder, token, expires_at) VALUES ($1, $2, 1, $3)
		ON CONFLICT (name) DO UPDATE SET
			holder = excluded.holder,
			token = CASE WHEN l.holder = excluded.holder THEN l.token ELSE l.token + 1 END,
			expires_at = excluded.expires_at
		WHERE l.holder = excluded.holder OR l.expires_at <= $4
		RETURNING name, holder, token, expires_at`,
		name, holder, now.Add(ttl).UnixNano(), now.UnixNano()).Scan(&l.Name, &l.Holder, &l.Token, &exp)
	if err == nil {
		l.ExpiresAt = fromNano(exp)
		return l, true, nil
	}
	if err = notFound(err); err != store.ErrNotFound {
		return store.Lease{}, false, fmt.Errorf("acquire lease %q: %w", name, err)
	}
	// Held by someone else.
	if err := d.pool.QueryRow(ctx, `SELECT name, holder, token, expires_at FROM leases WHERE name = $1`, name).
		Scan(&l.Name, &l.Holder, &l.Token, &exp); err != nil {
		return store.Lease{}, false, fmt.Errorf("acquire lease %q: %w", name, notFound(err))
	}
	l.ExpiresAt = fromNano(exp)
	return l, false, nil
}

// ReleaseLease implements store.Leases: the lease expires at once if
// holder holds it.
func (d *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := d.pool.Exec(ctx, `UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return fmt.Errorf("release lease %q: %w", name, err)
	}
	return nil
}
