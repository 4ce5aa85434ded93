package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

const inventoryColumns = `kind, key, host, name, identity, shadow, data, first_seen, last_seen`

// RecordInventory implements store.Inventory.
func (d *DB) RecordInventory(ctx context.Context, seen time.Time, items []store.InventoryItem) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record inventory: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO inventory (`+inventoryColumns+`) VALUES (?,?,?,?,?,?,?,?,?)
		ON CONFLICT (kind, key) DO UPDATE SET host = excluded.host, name = excluded.name, identity = excluded.identity,
			shadow = excluded.shadow, data = excluded.data, last_seen = max(last_seen, excluded.last_seen)`)
	if err != nil {
		return fmt.Errorf("record inventory: %w", err)
	}
	defer stmt.Close()
	at := unixNano(seen)
	for _, it := range items {
		if it.Kind == "" || it.Key == "" {
			return fmt.Errorf("record inventory: an item without kind or key (%q, %q)", it.Kind, it.Key)
		}
		data := []byte(it.Data)
		if data == nil {
			data = []byte{}
		}
		if _, err := stmt.ExecContext(ctx, it.Kind, it.Key, it.Host, it.Name, it.Identity, it.Shadow, data, at, at); err != nil {
			return fmt.Errorf("record inventory item %s %s: %w", it.Kind, it.Key, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record inventory: %w", err)
	}
	return nil
}

// ListInventory implements store.Inventory.
func (d *DB) ListInventory(ctx context.Context, f store.InventoryFilter) ([]store.InventoryItem, error) {
	var where []string
	var args []any
	add := func(cond string, arg any) { where = append(where, cond); args = append(args, arg) }
	if f.Kind != "" {
		add("kind = ?", f.Kind)
	}
	if f.Host != "" {
		add("host = ?", f.Host)
	}
	if f.Identity != "" {
		add("identity = ?", f.Identity)
	}
	if f.Shadow != nil {
		add("shadow = ?", *f.Shadow)
	}
	if !f.SeenSince.IsZero() {
		add("last_seen >= ?", unixNano(f.SeenSince))
	}
	q := `SELECT ` + inventoryColumns + ` FROM inventory`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY kind, host, name, key`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list inventory: %w", err)
	}
	defer rows.Close()
	var out []store.InventoryItem
	for rows.Next() {
		var (
			it          store.InventoryItem
			data        []byte
			first, last int64
		)
		if err := rows.Scan(&it.Kind, &it.Key, &it.Host, &it.Name, &it.Identity, &it.Shadow, &data, &first, &last); err != nil {
			return nil, fmt.Errorf("list inventory: %w", err)
		}
		if len(data) > 0 {
			it.Data = data
		}
		it.FirstSeen, it.LastSeen = fromNano(first), fromNano(last)
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list inventory: %w", err)
	}
	return out, nil
}
