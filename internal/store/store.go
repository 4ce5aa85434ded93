// Package store defines writ's persistent state as one small interface per
// aggregate: identities (registration entries), signing keys, attested
// instances, admin credentials, declarative resources, MCP tool pins, ...
// Consumers depend on the narrowest interface they need; backends
// (store/sqlite, embedded; store/postgres, shared by several servers)
// implement all of them and must pass the shared conformance suite in
// store/storetest.
//
// Every method takes a context and is safe for concurrent use. Methods return
// [ErrNotFound] when the named record does not exist and [ErrExists] when a
// create would overwrite one; callers test for them with errors.Is.
package store

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrNotFound reports that the named record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists reports that a record with the same key already exists.
	ErrExists = errors.New("already exists")
)

// Selector is one attested property of a workload, such as unix:uid:1000.
type Selector struct {
	Type  string `json:"type"`  // e.g. "unix"
	Value string `json:"value"` // e.g. "uid:1000"
}

// String returns the selector as "type:value".
func (s Selector) String() string { return s.Type + ":" + s.Value }

// Entry is a registration entry: the workloads whose attested selectors
// include all of Selectors receive SpiffeID. Its declarative form is a
// document of kind Identity (see docs/identity.md, "Which name is which").
type Entry struct {
	Name      string            `json:"name"`
	SpiffeID  string            `json:"spiffe_id"`
	Selectors []Selector        `json:"selectors"`
	X509TTL   time.Duration     `json:"x509_ttl,omitempty"`
	JWTTTL    time.Duration     `json:"jwt_ttl,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Revision  int64             `json:"revision"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// Entries stores registration entries, keyed by Name.
type Entries interface {
	// CreateEntry stores a new entry; ErrExists if the name is taken.
	CreateEntry(ctx context.Context, e Entry) (Entry, error)
	// UpsertEntry creates or replaces the entry with e.Name, bumping
	// its revision. It reports whether anything changed.
	UpsertEntry(ctx context.Context, e Entry) (Entry, bool, error)
	GetEntry(ctx context.Context, name string) (Entry, error)
	ListEntries(ctx context.Context) ([]Entry, error)
	DeleteEntry(ctx context.Context, name string) error
}

// Key kinds.
const (
	KeyX509CA = "x509-ca"
	KeyJWT    = "jwt"
	KeyAudit  = "audit"
)

// Key states in a rotation: a prepared key is published but does not sign
// yet; the active key signs; a retired key is still published until
// everything it signed has expired.
const (
	KeyPrepared = "prepared"
	KeyActive   = "active"
	KeyRetired  = "retired"
)

// Key is a signing key. The private half is sealed by the caller before it
// reaches the store; the store never sees plaintext key material.
type Key struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	State     string    `json:"state"`
	Sealed    []byte    `json:"-"`
	Public    []byte    `json:"public"`         // PKIX DER
	Cert      []byte    `json:"cert,omitempty"` // DER, for X.509 authorities
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	CreatedAt time.Time `json:"created_at"`
}

// Keys stores signing keys of every kind.
type Keys interface {
	// PutKey creates or replaces the key with k.ID.
	PutKey(ctx context.Context, k Key) error
	// ListKeys returns the keys of one kind, oldest first.
	ListKeys(ctx context.Context, kind string) ([]Key, error)
	DeleteKey(ctx context.Context, id string) error
}

// InstanceKey names one running process across writ restarts: a pid is only
// unique together with its start time and the kernel's boot id.
type InstanceKey struct {
	BootID     string
	PID        int
	StartTicks uint64
}

// Instance is one attested running copy of a workload.
type Instance struct {
	ID        string    `json:"id"`
	BootID    string    `json:"boot_id"`
	PID       int       `json:"pid"`
	StartTick uint64    `json:"start_ticks"`
	UID       int       `json:"uid"`
	Exe       string    `json:"exe"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// Instances stores attested process instances so that an instance ID stays
// stable for the life of its process, even across a writ restart.
type Instances interface {
	// InstanceFor returns the instance for key, creating it from fresh if
	// there is none. fresh.ID must be set by the caller.
	InstanceFor(ctx context.Context, key InstanceKey, fresh Instance) (Instance, error)
	GetInstance(ctx context.Context, id string) (Instance, error)
	ListInstances(ctx context.Context) ([]Instance, error)
}

// AdminToken is a stored admin credential. Only a hash of the secret is kept.
type AdminToken struct {
	ID        string    `json:"id"`
	Hash      []byte    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
}

// AdminTokens stores hashed admin credentials.
type AdminTokens interface {
	PutAdminToken(ctx context.Context, t AdminToken) error
	ListAdminTokens(ctx context.Context) ([]AdminToken, error)
}

// Resource is one stored declarative document (AccessPolicy, Service, ...).
// Every change creates a new version; Spec is the document's spec as JSON.
type Resource struct {
	Kind      string    `json:"kind"`
	Name      string    `json:"name"`
	Version   int64     `json:"version"`
	Spec      []byte    `json:"spec"`
	Actor     string    `json:"actor"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Resources stores versioned declarative documents keyed by kind and name.
type Resources interface {
	// PutResource stores r as the next version of kind/name. If the spec
	// is unchanged it stores nothing and returns the current version with
	// changed false.
	PutResource(ctx context.Context, r Resource) (Resource, bool, error)
	GetResource(ctx context.Context, kind, name string) (Resource, error)
	ListResources(ctx context.Context, kind string) ([]Resource, error)
	DeleteResource(ctx context.Context, kind, name string) error
	// ResourceHistory returns up to limit stored versions of kind/name,
	// newest first, without deletion markers; none for an unknown name.
	ResourceHistory(ctx context.Context, kind, name string, limit int) ([]Resource, error)
}

// Store is every aggregate of one backend.
type Store interface {
	Entries
	Keys
	Instances
	AdminTokens
	Resources
	Credentials
	Tasks
	Revocations
	Approvals
	TaskFlows
	Pins
	Inventory
	Lineage
	Alerts
	Leases
	Users
	Sessions
	DBRoles
	Close() error
}
