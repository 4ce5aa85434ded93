package store

import (
	"context"
	"time"
)

// Human roles, weakest first. A viewer reads the console; an approver
// also decides approval requests and acknowledges alerts; an admin also
// changes state (applies policy, approves MCP tools, revokes) and manages
// accounts.
const (
	RoleViewer   = "viewer"
	RoleApprover = "approver"
	RoleAdmin    = "admin"
)

// User sources: a local account has a password hash; an OIDC account is
// recorded at its first login through the identity provider and has none.
const (
	UserLocal = "local"
	UserOIDC  = "oidc"
)

// User is a named human account of the console.
type User struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// Source is UserLocal or UserOIDC.
	Source string `json:"source"`
	// PasswordHash is the PHC-encoded argon2id hash of a local account's
	// password; empty for OIDC accounts.
	PasswordHash string `json:"-"`
	// Groups are the groups the human is a member of, in byte order:
	// set by an admin for a local account, from the provider's groups
	// claim at every login for an OIDC one. Names compare exactly
	// (case-sensitive).
	Groups    []string  `json:"groups,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	LastLogin time.Time `json:"last_login"`
}

// Users stores human accounts, keyed by Name.
type Users interface {
	// CreateUser stores a new account; ErrExists if the name is taken.
	CreateUser(ctx context.Context, u User) (User, error)
	// UpdateUser replaces the role, source and password hash of the
	// account u.Name (and LastLogin when u's is later); ErrNotFound if
	// there is none.
	UpdateUser(ctx context.Context, u User) (User, error)
	GetUser(ctx context.Context, name string) (User, error)
	// ListUsers returns every account ordered by name.
	ListUsers(ctx context.Context) ([]User, error)
	// DeleteUser removes the account and every session of it.
	DeleteUser(ctx context.Context, name string) error
	// ChangeUserGroups changes the groups of account name in one
	// transaction (see [GroupChange]) and returns the account;
	// ErrNotFound if there is none. CreateUser stores u.Groups;
	// UpdateUser leaves the groups alone.
	ChangeUserGroups(ctx context.Context, name string, c GroupChange) (User, error)
}

// GroupChange edits an account's groups: with Replace its groups become
// Set, then Add are added (those it has already are kept once) and Remove
// removed (those it lacks are ignored).
type GroupChange struct {
	Replace          bool
	Set, Add, Remove []string
}

// Session is a logged-in console session. Only a hash of the session
// secret (the cookie value) is stored.
type Session struct {
	// Hash is the SHA-256 of the cookie value.
	Hash []byte `json:"-"`
	User string `json:"user"`
	// CSRF is the per-session token every state-changing form carries.
	CSRF      string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Sessions stores console sessions, keyed by Hash.
type Sessions interface {
	// CreateSession stores a new session; ErrExists if the hash is taken.
	CreateSession(ctx context.Context, s Session) error
	// GetSession returns the session with hash; ErrNotFound if there is
	// none or it expired before now.
	GetSession(ctx context.Context, hash []byte, now time.Time) (Session, error)
	DeleteSession(ctx context.Context, hash []byte) error
	// DeleteUserSessions ends every session of user (a password change,
	// a role change, removal).
	DeleteUserSessions(ctx context.Context, user string) error
	// DeleteExpiredSessions removes sessions that expired before now.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)
}
