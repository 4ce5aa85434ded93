package apitypes

import "time"

// Entry is a registration entry (an Identity resource in its SPIRE-style
// form): GET/POST /v1/entries, GET/DELETE /v1/entries/{name}.
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

// Instance is an attested process instance: GET /v1/instances.
type Instance struct {
	ID        string    `json:"id"`
	PID       int       `json:"pid"`
	UID       int       `json:"uid"`
	Exe       string    `json:"exe"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}
