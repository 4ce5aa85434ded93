package sqlite

import (
	"context"
	"fmt"

	"github.com/writ-dev/writ/internal/store"
)

const instanceColumns = `id, boot_id, pid, start_ticks, uid, exe, first_seen, last_seen`

// InstanceFor implements store.Instances.
func (d *DB) InstanceFor(ctx context.Context, key store.InstanceKey, fresh store.Instance) (store.Instance, error) {
	now := d.now().UTC()
	fresh.BootID, fresh.PID, fresh.StartTick = key.BootID, key.PID, key.StartTicks
	fresh.FirstSeen, fresh.LastSeen = now, now
	// One statement: insert if absent, otherwise touch last_seen; then read back.
	_, err := d.db.ExecContext(ctx, `INSERT INTO instances (`+instanceColumns+`) VALUES (?,?,?,?,?,?,?,?)
		ON CONFLICT(boot_id, pid, start_ticks) DO UPDATE SET last_seen = excluded.last_seen`,
		fresh.ID, key.BootID, key.PID, int64(key.StartTicks), fresh.UID, fresh.Exe, unixNano(now), unixNano(now))
	if err != nil {
		return store.Instance{}, fmt.Errorf("record instance pid %d: %w", key.PID, err)
	}
	inst, err := scanInstance(d.db.QueryRowContext(ctx, `SELECT `+instanceColumns+` FROM instances
		WHERE boot_id = ? AND pid = ? AND start_ticks = ?`, key.BootID, key.PID, int64(key.StartTicks)))
	if err != nil {
		return store.Instance{}, fmt.Errorf("read instance pid %d: %w", key.PID, err)
	}
	return inst, nil
}

// GetInstance implements store.Instances.
func (d *DB) GetInstance(ctx context.Context, id string) (store.Instance, error) {
	inst, err := scanInstance(d.db.QueryRowContext(ctx, `SELECT `+instanceColumns+` FROM instances WHERE id = ?`, id))
	if err != nil {
		return store.Instance{}, fmt.Errorf("get instance %q: %w", id, err)
	}
	return inst, nil
}

// ListInstances implements store.Instances.
func (d *DB) ListInstances(ctx context.Context) ([]store.Instance, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+instanceColumns+` FROM instances ORDER BY first_seen, id`)
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	defer rows.Close()
	var out []store.Instance
	for rows.Next() {
		inst, err := scanInstance(rows)
		if err != nil {
			return nil, fmt.Errorf("list instances: %w", err)
		}
		out = append(out, inst)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	return out, nil
}

func scanInstance(s scanner) (store.Instance, error) {
	var (
		inst              store.Instance
		ticks             int64
		firstSeen, lastSe int64
	)
	if err := s.Scan(&inst.ID, &inst.BootID, &inst.PID, &ticks, &inst.UID, &inst.Exe, &firstSeen, &lastSe); err != nil {
		return store.Instance{}, notFound(err)
	}
	inst.StartTick = uint64(ticks)
	inst.FirstSeen, inst.LastSeen = fromNano(firstSeen), fromNano(lastSe)
	return inst, nil
}
