package apitypes

import "time"

// CredentialRequest is the body of POST /v1/credentials and
// PUT /v1/credentials/{name}. Value is write-only: no answer ever carries
// it, and its String and GoString hide it so it cannot reach a log.
type CredentialRequest struct {
	Name  string `json:"name,omitempty"`
	Type  string `json:"type,omitempty"` // bearer (default), basic, header, query
	Value string `json:"value"`
}

// String hides the value.
func (r CredentialRequest) String() string {
	return "credential " + r.Name + " (" + r.Type + ", value hidden)"
}

// GoString hides the value from %#v.
func (r CredentialRequest) GoString() string { return r.String() }

// Credential describes a sealed upstream credential, never its value:
// GET /v1/credentials and the answer of put and rotate.
type Credential struct {
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	Version   int64     `json:"version"`
	Actor     string    `json:"actor,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}
