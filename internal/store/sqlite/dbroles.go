package sqlite

import (
	"context"
	"fmt"

	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/rowcodec"
)

const dbRoleColumns = rowcodec.DBRoleColumns

// CreateDBRole implements store.DBRoles.
func (d *DB) CreateDBRole(ctx context.Context, r store.DBRole) (store.DBRole, error) {
	r.State, r.CreatedAt = store.DBRoleCreating, d.now().UTC()
	_, err := d.db.ExecContext(ctx, `INSERT INTO db_roles (`+dbRoleColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
		rowcodec.DBRoleArgs(r)...)
	if isUnique(err) {
		return store.DBRole{}, fmt.Errorf("record database role %q: %w", r.Role, store.ErrExists)
	}
	if err != nil {
		return store.DBRole{}, fmt.Errorf("record database role %q: %w", r.Role, err)
	}
	return r, nil
}

// ActivateDBRole implements store.DBRoles.
func (d *DB) ActivateDBRole(ctx context.Context, role string) error {
	res, err := d.db.ExecContext(ctx, `UPDATE db_roles SET state = ? WHERE role = ?`, store.DBRoleActive, role)
	if err != nil {
		return fmt.Errorf("activate database role %q: %w", role, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("activate database role %q: %w", role, store.ErrNotFound)
	}
	return nil
}

// GetDBRole implements store.DBRoles.
func (d *DB) GetDBRole(ctx context.Context, task, service string) (store.DBRole, error) {
	r, err := scanDBRole(d.db.QueryRowContext(ctx, `SELECT `+dbRoleColumns+` FROM db_roles WHERE task = ? AND service = ?`, task, service))
	if err != nil {
		return store.DBRole{}, fmt.Errorf("get database role of task %s for %s: %w", task, service, err)
	}
	return r, nil
}

// ListDBRoles implements store.DBRoles.
func (d *DB) ListDBRoles(ctx context.Context) ([]store.DBRole, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+dbRoleColumns+` FROM db_roles ORDER BY role`)
	if err != nil {
		return nil, fmt.Errorf("list database roles: %w", err)
	}
	defer rows.Close()
	var out []store.DBRole
	for rows.Next() {
		r, err := scanDBRole(rows)
		if err != nil {
			return nil, fmt.Errorf("list database roles: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list database roles: %w", err)
	}
	return out, nil
}

// DeleteDBRole implements store.DBRoles.
func (d *DB) DeleteDBRole(ctx context.Context, role string) error {
	res, err := d.db.ExecContext(ctx, `DELETE FROM db_roles WHERE role = ?`, role)
	if err != nil {
		return fmt.Errorf("delete database role %q: %w", role, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("delete database role %q: %w", role, store.ErrNotFound)
	}
	return nil
}

func scanDBRole(s scanner) (store.DBRole, error) {
	r, err := rowcodec.ScanDBRole(s.Scan)
	return r, notFound(err)
}
