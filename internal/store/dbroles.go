package store

import (
	"context"
	"time"
)

// Dynamic database role states.
const (
	// DBRoleCreating: recorded before CREATE ROLE is sent, so that a crash
	// between the two leaves a row the reaper finds.
	DBRoleCreating = "creating"
	// DBRoleActive: the role exists and may be handed out.
	DBRoleActive = "active"
)

// DBRole is a PostgreSQL login role writ created for one task's access to
// one Service (package dbcreds). The password is sealed by the caller
// under the key-encryption key before it reaches the store; the store
// never sees it. Upstream and AdminCredential are what a later drop needs
// even when the Service has changed or gone since.
type DBRole struct {
	// Role is the PostgreSQL role name (writ_...), unique.
	Role     string `json:"role"`
	Service  string `json:"service"`
	Task     string `json:"task"`
	SpiffeID string `json:"spiffe_id"`
	Instance string `json:"instance,omitempty"`
	// Upstream is the server and database the role lives in (a
	// postgres:// URL without user information).
	Upstream string `json:"upstream"`
	// AdminCredential names the broker credential writ logs in with to
	// create and drop the role.
	AdminCredential string `json:"admin_credential"`
	State           string `json:"state"`
	Sealed          []byte `json:"-"`
	// ValidUntil is the role's VALID UNTIL: the task's end.
	ValidUntil time.Time `json:"valid_until"`
	CreatedAt  time.Time `json:"created_at"`
}

// DBRoles records the dynamic database roles writ has issued and not yet
// dropped.
type DBRoles interface {
	// CreateDBRole records a role about to be created, in state
	// DBRoleCreating; ErrExists when the role name is taken or the task
	// already has a role for the service.
	CreateDBRole(ctx context.Context, r DBRole) (DBRole, error)
	// ActivateDBRole moves a recorded role to DBRoleActive; ErrNotFound
	// when there is no such role.
	ActivateDBRole(ctx context.Context, role string) error
	// GetDBRole returns the role of task for service; ErrNotFound.
	GetDBRole(ctx context.Context, task, service string) (DBRole, error)
	// ListDBRoles returns every recorded role, ordered by role name.
	ListDBRoles(ctx context.Context) ([]DBRole, error)
	// DeleteDBRole forgets a dropped role; ErrNotFound when there is none.
	DeleteDBRole(ctx context.Context, role string) error
}
