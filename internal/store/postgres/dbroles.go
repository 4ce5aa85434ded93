package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/rowcodec"
)

const dbRoleColumns = rowcodec.DBRoleColumns

// CreateDBRole implements store.DBRoles.
func (d *DB) CreateDBRole(ctx context.Context, r store.DBRole) (store.DBRole, error) {
	r.State, r.CreatedAt = store.DBRoleCreating, d.now().UTC()
	_, err := d.pool.Exec(ctx, `INSERT INTO db_roles (`+dbRoleColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)`,
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
	tag, err := d.pool.Exec(ctx, `UPDATE db_roles SET state = $1 WHERE role = $2`, store.DBRoleActive, role)
	if err != nil {
		return fmt.Errorf("activate database role %q: %w", role, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("activate database role %q: %w", role, store.ErrNotFound)
	}
	return nil
}

// GetDBRole implements store.DBRoles.
func (d *DB) GetDBRole(ctx context.Context, task, service string) (store.DBRole, error) {
	r, err := scanDBRole(d.pool.QueryRow(ctx, `SELECT `+dbRoleColumns+` FROM db_roles WHERE task = $1 AND service = $2`, task, service))
	if err != nil {
		return store.DBRole{}, fmt.Errorf("get database role of task %s for %s: %w", task, service, err)
	}
	return r, nil
}

// ListDBRoles implements store.DBRoles.
func (d *DB) ListDBRoles(ctx context.Context) ([]store.DBRole, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+dbRoleColumns+` FROM db_roles ORDER BY role`)
	if err != nil {
		return nil, fmt.Errorf("list database roles: %w", err)
	}
	out, err := collect(rows, scanDBRole)
	if err != nil {
		return nil, fmt.Errorf("list database roles: %w", err)
	}
	return out, nil
}

// DeleteDBRole implements store.DBRoles.
func (d *DB) DeleteDBRole(ctx context.Context, role string) error {
	tag, err := d.pool.Exec(ctx, `DELETE FROM db_roles WHERE role = $1`, role)
	if err != nil {
		return fmt.Errorf("delete database role %q: %w", role, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete database role %q: %w", role, store.ErrNotFound)
	}
	return nil
}

func scanDBRole(s pgx.Row) (store.DBRole, error) {
	r, err := rowcodec.ScanDBRole(s.Scan)
	return r, notFound(err)
}
