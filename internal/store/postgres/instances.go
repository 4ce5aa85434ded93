package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/writ-dev/writ/internal/store"
)

const instanceColumns = `id, boot_id, pid, start_ticks, uid, exe, first_seen, last_seen`

// InstanceFor implements store.Instances.
func (d *DB) InstanceFor(ctx context.Context, key store.InstanceKey, fresh store.Instance) (store.Instance, error) {
	now := unixNano(d.now().UTC())
	// One statement: insert if absent, otherwise touch last_seen, and
	// return the row either way.
	inst, err := scanInstance(d.pool.QueryRow(ctx, `INSERT INTO instances (`+instanceColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
		ON CONFLICT (boot_id, pid, start_ticks) DO UPDATE SET last_seen = excluded.last_seen
		RETURNING `+instanceColumns,
		fresh.ID, key.BootID, key.PID, int64(key.StartTicks), fresh.UID, fresh.Exe, now, now))
	if err != nil {
		return store.Instance{}, fmt.Errorf("record instance pid %d: %w", key.PID, err)
	}
	return inst, nil
}

// GetInstance implements store.Instances.
func (d *DB) GetInstance(ctx context.Context, id string) (store.Instance, error) {
	inst, err := scanInstance(d.pool.QueryRow(ctx, `SELECT `+instanceColumns+` FROM instances WHERE id = $1`, id))
	if err != nil {
		return store.Instance{}, fmt.Errorf("get instance %q: %w", id, err)
	}
	return inst, nil
}

// ListInstances implements store.Instances.
func (d *DB) ListInstances(ctx context.Context) ([]store.Instance, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+instanceColumns+` FROM instances ORDER BY first_seen, id`)
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	out, err := collect(rows, scanInstance)
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	return out, nil
}

func scanInstance(s pgx.Row) (store.Instance, error) {
	var (
		inst               store.Instance
		ticks, pid, uid    int64
		firstSeen, lastSee int64
	)
	if err := s.Scan(&inst.ID, &inst.BootID, &pid, &ticks, &uid, &inst.Exe, &firstSeen, &lastSee); err != nil {
		return store.Instance{}, notFound(err)
	}
	inst.PID, inst.UID = int(pid), int(uid)
	inst.StartTick = uint64(ticks)
	inst.FirstSeen, inst.LastSeen = fromNano(firstSeen), fromNano(lastSee)
	return inst, nil
}
