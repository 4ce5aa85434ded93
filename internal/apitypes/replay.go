package apitypes

import "time"

// Change categories of a [ReplayReport].
const (
	// ReplayNewlyDenied: recorded as allowed (or held), the candidate
	// denies.
	ReplayNewlyDenied = "newly_denied"
	// ReplayNewlyAllowed: recorded as denied, the candidate allows (or
	// holds).
	ReplayNewlyAllowed = "newly_allowed"
	// ReplayApprovalRequired: recorded as allowed, the candidate holds it
	// for approval.
	ReplayApprovalRequired = "approval_newly_required"
	// ReplayBudgetExceeded: a closed task made more calls than the budget
	// the candidate gives it; the calls beyond it would be refused.
	ReplayBudgetExceeded = "budget_newly_exceeded"
)

// What a replayed record is (ReplayExample.Kind).
const (
	ReplayHTTP  = "http"
	ReplayMCP   = "mcp"
	ReplayToken = "token"
	ReplayTask  = "task"
)

// ReplayExample is one recorded decision that would change.
type ReplayExample struct {
	Index int64  `json:"index"`
	Time  string `json:"time"`
	// Kind is http, mcp, token (a token exchange) or task (a task
	// opening, or for budget_newly_exceeded its whole life).
	Kind    string `json:"kind"`
	Service string `json:"service,omitempty"`
	Method  string `json:"method,omitempty"`
	Path    string `json:"path,omitempty"`
	// Tool, Resource or Prompt is the object of an MCP call.
	Tool     string `json:"tool,omitempty"`
	Resource string `json:"resource,omitempty"`
	Prompt   string `json:"prompt,omitempty"`
	// Audience and Scopes are a token exchange's, or a task's.
	Audience string `json:"audience,omitempty"`
	Scopes   string `json:"scopes,omitempty"`
	// Task is the task id; Purpose its purpose.
	Task    string `json:"task,omitempty"`
	Purpose string `json:"purpose,omitempty"`
	// Calls and Budget are, for budget_newly_exceeded, the calls the task
	// made and the budget the candidate gives it.
	Calls  int64 `json:"calls,omitempty"`
	Budget int64 `json:"budget,omitempty"`
	// Was is the recorded decision and its rule; Now the candidate's.
	Was     string `json:"was"`
	WasRule string `json:"was_rule,omitempty"`
	Now     string `json:"now"`
	Reason  string `json:"reason,omitempty"`
}

// ReplayChange counts the records of one identity whose decision changes
// the same way under the same candidate rule.
type ReplayChange struct {
	Category string `json:"category"`
	SpiffeID string `json:"spiffe_id"`
	// Policy and Rule decide under the candidate ("" and "" for the
	// default deny).
	Policy   string          `json:"policy,omitempty"`
	Rule     string          `json:"rule,omitempty"`
	Count    int64           `json:"count"`
	Examples []ReplayExample `json:"examples"`
}

// ReplayReport is what a candidate policy set would have changed on the
// recorded traffic (`writ policy replay -o json`, and the replay of
// POST /v1/policies/{name}/replay).
type ReplayReport struct {
	// Accesses, Tokens and Tasks are the recorded accesses (HTTP and MCP),
	// token exchanges and task openings re-decided; Skipped those that
	// cannot be (no caller or service, refused before policy decided);
	// Unchanged those decided the same way.
	Accesses  int64          `json:"accesses"`
	Tokens    int64          `json:"tokens"`
	Tasks     int64          `json:"tasks"`
	Skipped   int64          `json:"skipped"`
	Unchanged int64          `json:"unchanged"`
	Changes   []ReplayChange `json:"changes"`
}

// Changed returns the number of records whose decision would change.
func (r *ReplayReport) Changed() int64 {
	var n int64
	for _, c := range r.Changes {
		n += c.Count
	}
	return n
}

// Count returns the records in changes of category cat.
func (r *ReplayReport) Count(cat string) int64 {
	var n int64
	for _, c := range r.Changes {
		if c.Category == cat {
			n += c.Count
		}
	}
	return n
}

// PolicyReplayRequest is the body of POST /v1/policies/{name}/replay and
// of the replay a promotion shows: ExpectDigest, when set, must be the
// digest of the observed version.
type PolicyReplayRequest struct {
	ExpectDigest string `json:"expect_digest,omitempty"`
	// Examples kept per change (default 3).
	Examples int `json:"examples,omitempty"`
}

// PolicyReplay is what promoting an observed policy would have changed on
// the traffic recorded since that version was applied: the set that would
// enforce (the stored policies with it promoted and those it replaces
// deleted) re-decides every recorded access, token exchange and task
// opening of [Since, Until).
type PolicyReplay struct {
	Policy  string       `json:"policy"`
	Version int64        `json:"version"`
	Digest  string       `json:"digest"`
	Since   time.Time    `json:"since"`
	Until   time.Time    `json:"until"`
	Report  ReplayReport `json:"report"`
}
