package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/writ-dev/writ/internal/store"
)

const inventoryColumns = `kind, key, host, name, identity, shadow, data, first_seen, last_seen`

// RecordInventory implements store.Inventory: every item in one
// transaction, sent as one batch.
func (d *DB) RecordInventory(ctx context.Context, seen time.Time, items []store.InventoryItem) error {
	at := unixNano(seen)
	b := &pgx.Batch{}
	for _, it := range items {
		if it.Kind == "" || it.Key == "" {
			return fmt.Errorf("record inventory: an item without kind or key (%q, %q)", it.Kind, it.Key)
		}
		b.Queue(`INSERT INTO inventory (`+inventoryColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
			ON CONFLICT (kind, key) DO UPDATE SET host = excluded.host, name = excluded.name, identity = excluded.identity,
				shadow = excluded.shadow, data = excluded.data, last_seen = GREATEST(inventory.last_seen, excluded.last_seen)`,
			it.Kind, it.Key, it.Host, it.Name, it.Identity, it.Shadow, nonNilBytes(it.Data), at, at)
	}
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("record inventory: %w", err)
	}
	return nil
}

// ListInventory implements store.Inventory.
func (d *DB) ListInventory(ctx context.Context, f store.InventoryFilter) ([]store.InventoryItem, error) {
	var shadow *bool = f.Shadow
	rows, err := d.pool.Query(ctx, `SELECT `+inventoryColumns+` FROM inventory
		WHERE ($1 = '' OR kind = $1) AND ($2 = '' OR host = $2) AND ($3 = '' OR identity = $3)
		AND ($4::boolean IS NULL OR shadow = $4) AND last_seen >= $5
		ORDER BY kind, host, name, key`+limitClause(f.Limit),
		f.Kind, f.Host, f.Identity, shadow, unixNano(f.SeenSince))
	if err != nil {
		return nil, fmt.Errorf("list inventory: %w", err)
	}
	out, err := collect(rows, func(r pgx.Row) (store.InventoryItem, error) {
		var (
			it          store.InventoryItem
			data        []byte
			first, last int64
		)
		if err := r.Scan(&it.Kind, &it.Key, &it.Host, &it.Name, &it.Identity, &it.Shadow, &data, &first, &last); err != nil {
			return it, err
		}
		if len(data) > 0 {
			it.Data = data
		}
		it.FirstSeen, it.LastSeen = fromNano(first), fromNano(last)
		return it, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list inventory: %w", err)
	}
	return out, nil
}
