package apitypes

import (
	"encoding/json"
	"time"
)

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

// Apply actions.
const (
	ActionCreated   = "created"
	ActionChanged   = "changed"
	ActionUnchanged = "unchanged"
	ActionValid     = "valid" // dry run
)

// ApplyResult reports what happened to one document.
type ApplyResult struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Action  string `json:"action"` // one of the Action constants
	Version int64  `json:"version,omitempty"`
	// Mode is "observe" for an AccessPolicy applied in observe mode: its
	// decisions are recorded, not enforced.
	Mode string `json:"mode,omitempty"`
}

// ApplyResponse is the answer of POST /v1/apply.
type ApplyResponse struct {
	Results []ApplyResult `json:"results"`
}

// Resource is a stored declarative document: GET /v1/resources/{kind} and
// GET /v1/resources/{kind}/{name}. Spec is the document's spec as JSON.
type Resource struct {
	Kind      string            `json:"kind"`
	Name      string            `json:"name"`
	Version   int64             `json:"version"`
	Labels    map[string]string `json:"labels,omitempty"`
	Spec      json.RawMessage   `json:"spec"`
	Actor     string            `json:"actor,omitempty"`
	UpdatedAt time.Time         `json:"updated_at"`
}
