package store

import (
	"context"
	"time"
)

// Credential is an upstream secret held by the broker. The value is sealed
// by the caller (AES-256-GCM under the key-encryption key) before it
// reaches the store; the store never sees plaintext.
type Credential struct {
	Name string `json:"name"`
	// Type says how the value is shaped and injected: bearer, basic,
	// header or query.
	Type   string `json:"type"`
	Sealed []byte `json:"-"`
	// Version starts at 1 and grows with every rotation.
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Actor is who last wrote the value.
	Actor string `json:"actor,omitempty"`
}

// Credentials stores sealed upstream credentials, keyed by Name.
type Credentials interface {
	// CreateCredential stores a new credential at version 1; ErrExists if
	// the name is taken.
	CreateCredential(ctx context.Context, c Credential) (Credential, error)
	// RotateCredential replaces the sealed value (and type) of an existing
	// credential and bumps its version; ErrNotFound if there is none.
	RotateCredential(ctx context.Context, c Credential) (Credential, error)
	GetCredential(ctx context.Context, name string) (Credential, error)
	// ListCredentials returns every credential, ordered by name.
	ListCredentials(ctx context.Context) ([]Credential, error)
	DeleteCredential(ctx context.Context, name string) error
}
