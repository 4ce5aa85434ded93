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

// ProcessExplanation says which registration entries a running process
// matches and which identity the most-specific rule gives it:
// GET /v1/processes/{pid} (`writ entry explain --pid N`).
type ProcessExplanation struct {
	PID       int      `json:"pid"`
	UID       int      `json:"uid"`
	Exe       string   `json:"exe"`
	Instance  string   `json:"instance"`
	Selectors []string `json:"selectors"`
	// Entries are the entries sharing at least one selector with the
	// process: the matches first, most specific first, then near misses.
	Entries []EntryMatch `json:"entries"`
	// Chosen names the entry the process's calls through the access
	// proxy are attributed to; empty when none matches or the match is
	// ambiguous.
	Chosen         string `json:"chosen,omitempty"`
	ChosenSpiffeID string `json:"chosen_spiffe_id,omitempty"`
	// Reason explains the outcome in a sentence.
	Reason string `json:"reason"`
}

// EntryMatch is one entry in a [ProcessExplanation].
type EntryMatch struct {
	Name      string   `json:"name"`
	SpiffeID  string   `json:"spiffe_id"`
	Selectors []string `json:"selectors"`
	Matched   bool     `json:"matched"`
	// Missing are the entry's selectors the process lacks.
	Missing []string `json:"missing,omitempty"`
	// Outranks names the matching entries this one is more specific
	// than (its selectors include theirs and more).
	Outranks []string `json:"outranks,omitempty"`
}
