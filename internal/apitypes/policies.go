package apitypes

import "time"

// PolicyStatus is one stored AccessPolicy as it decides: GET /v1/policies
// and GET /v1/policies/{name}.
type PolicyStatus struct {
	Name    string `json:"name"`
	Version int64  `json:"version"`
	// Mode is "enforce" or "observe".
	Mode string `json:"mode"`
	// Digest is "sha256:" and the hex sha256 of the stored spec (the JSON
	// of GET /v1/resources/AccessPolicy/{name}); `writ policy promote
	// --expect-digest` checks it.
	Digest string `json:"digest"`
	Rules  int    `json:"rules"`
	// Replaces are the enforcing policies an observed policy stands in
	// for (deleted when it is promoted).
	Replaces  []string  `json:"replaces,omitempty"`
	Actor     string    `json:"actor,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
	// Observe is what the server observed for a policy in observe mode
	// since Since (the server's start or the version's apply, whichever is
	// later); absent for an enforcing policy.
	Observe *ObserveStats `json:"observe,omitempty"`
}

// ObserveStats counts the decisions a policy in observe mode saw since
// Since: Decisions whose caller (or on-behalf-of user) it names, and those
// where the observed set would have decided otherwise than the enforcing
// one.
type ObserveStats struct {
	Since      time.Time `json:"since"`
	Decisions  int64     `json:"decisions"`
	WouldDeny  int64     `json:"would_deny"`
	WouldHold  int64     `json:"would_hold"`
	WouldAllow int64     `json:"would_allow"`
}

// PromoteRequest is the body of POST /v1/policies/{name}/promote.
// ExpectDigest is required: the digest of the observed version reviewed.
type PromoteRequest struct {
	ExpectDigest string `json:"expect_digest"`
}

// PromoteResponse is the answer of POST /v1/policies/{name}/promote: the
// policy now enforcing, the policies deleted because it replaced them,
// and what was observed until the promotion.
type PromoteResponse struct {
	Policy      PolicyStatus `json:"policy"`
	FromVersion int64        `json:"from_version"`
	Replaced    []string     `json:"replaced"`
	Observed    ObserveStats `json:"observed"`
}
