package httpapi

import (
	"encoding/json"
	"time"
)

// Entry is a registration entry on the wire.
type Entry struct {
	Name      string            `json:"name"`
	SpiffeID  string            `json:"spiffe_id"`
	Selectors []string          `json:"selectors"`
	X509TTL   string            `json:"x509_ttl,omitempty"` // Go duration, e.g. "30m"
	JWTTTL    string            `json:"jwt_ttl,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Revision  int64             `json:"revision,omitempty"`
	CreatedAt *time.Time        `json:"created_at,omitempty"`
	UpdatedAt *time.Time        `json:"updated_at,omitempty"`
}

// ApplyFile is one YAML file sent to POST /v1/apply. Name is used in error
// messages (file:line:column).
type ApplyFile struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

// ApplyRequest is the body of POST /v1/apply.
type ApplyRequest struct {
	Files []ApplyFile `json:"files"`
	// DryRun validates without storing.
	DryRun bool `json:"dry_run,omitempty"`
}

// ApplyResult reports what happened to one document.
type ApplyResult struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Action  string `json:"action"` // created, changed, unchanged, valid (dry run)
	Version int64  `json:"version,omitempty"`
}

// ApplyResponse is the answer of POST /v1/apply.
type ApplyResponse struct {
	Results []ApplyResult `json:"results"`
}

// Resource is a stored declarative document on the wire.
type Resource struct {
	Kind      string            `json:"kind"`
	Name      string            `json:"name"`
	Version   int64             `json:"version"`
	Labels    map[string]string `json:"labels,omitempty"`
	Spec      json.RawMessage   `json:"spec"`
	Actor     string            `json:"actor,omitempty"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// Instance is an attested process instance on the wire.
type Instance struct {
	ID        string    `json:"id"`
	PID       int       `json:"pid"`
	UID       int       `json:"uid"`
	Exe       string    `json:"exe"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}
