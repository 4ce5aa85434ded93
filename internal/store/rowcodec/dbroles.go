package rowcodec

import "github.com/writ-dev/writ/internal/store"

// DBRoleColumns are the columns of the db_roles table (migration 0012),
// in the order ScanDBRole reads and DBRoleArgs gives them.
const DBRoleColumns = `role, service, task, spiffe_id, instance, upstream, admin_credential, state, sealed, valid_until, created_at`

// ScanDBRole reads one db_roles row with scan (a driver's Row.Scan). A
// scan error is returned as the driver gave it, for the store to map.
func ScanDBRole(scan func(dest ...any) error) (store.DBRole, error) {
	var (
		r                     store.DBRole
		validUntil, createdAt int64
	)
	if err := scan(&r.Role, &r.Service, &r.Task, &r.SpiffeID, &r.Instance, &r.Upstream, &r.AdminCredential, &r.State, &r.Sealed, &validUntil, &createdAt); err != nil {
		return store.DBRole{}, err
	}
	r.ValidUntil, r.CreatedAt = FromNano(validUntil), FromNano(createdAt)
	return r, nil
}

// DBRoleArgs are r's values for an INSERT of DBRoleColumns.
func DBRoleArgs(r store.DBRole) []any {
	sealed := r.Sealed
	if sealed == nil {
		sealed = []byte{} // NOT NULL
	}
	return []any{r.Role, r.Service, r.Task, r.SpiffeID, r.Instance, r.Upstream, r.AdminCredential, r.State, sealed,
		UnixNano(r.ValidUntil), UnixNano(r.CreatedAt)}
}
