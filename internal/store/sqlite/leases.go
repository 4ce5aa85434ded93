package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// AcquireLease implements store.Leases. A SQLite store belongs to one
// process (writ serve locks its data directory), so the leases live in
// memory: they elect among the holders in this process, with the same
// rules as the PostgreSQL store's.
func (d *DB) AcquireLease(_ context.Context, name, holder string, now time.Time, ttl time.Duration) (store.Lease, bool, error) {
	if name == "" || holder == "" || ttl <= 0 {
		return store.Lease{}, false, fmt.Errorf("acquire lease %q: a name, a holder and a positive ttl are required", name)
	}
	d.leaseMu.Lock()
	defer d.leaseMu.Unlock()
	if d.leases == nil {
		d.leases = map[string]store.Lease{}
	}
	l, ok := d.leases[name]
	switch {
	case !ok:
		l = store.Lease{Name: name, Holder: holder, Token: 1}
	case l.Holder == holder:
	case !l.ExpiresAt.After(now):
		l.Holder, l.Token = holder, l.Token+1
	default:
		return l, false, nil
	}
	l.ExpiresAt = now.Add(ttl).UTC()
	d.leases[name] = l
	return l, true, nil
}

// ReleaseLease implements store.Leases.
func (d *DB) ReleaseLease(_ context.Context, name, holder string) error {
	d.leaseMu.Lock()
	defer d.leaseMu.Unlock()
	if l, ok := d.leases[name]; ok && l.Holder == holder {
		l.ExpiresAt = time.Time{}
		d.leases[name] = l
	}
	return nil
}
