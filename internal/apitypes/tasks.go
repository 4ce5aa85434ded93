package apitypes

import "time"

// OpenTaskRequest is the body of POST /v1/tasks.
type OpenTaskRequest struct {
	// SpiffeID and Instance name the agent; only an operator (admin
	// credential) may set them. An agent's own identity is used otherwise.
	SpiffeID    string   `json:"spiffe_id,omitempty"`
	Instance    string   `json:"instance,omitempty"`
	Purpose     string   `json:"purpose"`
	OnBehalfOf  string   `json:"on_behalf_of,omitempty"`
	Groups      []string `json:"groups,omitempty"`
	Audiences   []string `json:"audiences"`
	Scopes      []string `json:"scopes,omitempty"`
	MaxDuration string   `json:"max_duration,omitempty"` // e.g. "30m"; default 1h, at most 24h
	Budget      int64    `json:"budget,omitempty"`
	// BindInstance makes the task usable by the opening instance only;
	// by default every instance of the SPIFFE ID may use it.
	BindInstance bool `json:"bind_instance,omitempty"`
}

// CloseTaskRequest is the optional body of POST /v1/tasks/{id}/close.
type CloseTaskRequest struct {
	Reason string `json:"reason,omitempty"`
}

// Task states.
const (
	TaskPending = "pending" // waiting for a human approval
	TaskOpen    = "open"
	TaskClosed  = "closed" // closed explicitly, on expiry or on revocation
	TaskDenied  = "denied" // policy or an approver refused it
)

// Task is the answer of the /v1/tasks endpoints: one unit of agent work
// that credentials are minted under.
type Task struct {
	ID       string `json:"id"`
	SpiffeID string `json:"spiffe_id"`
	Instance string `json:"instance,omitempty"` // the opening instance
	// BindInstance: only Instance may use the task (else any instance of
	// SpiffeID).
	BindInstance bool      `json:"bind_instance,omitempty"`
	Purpose      string    `json:"purpose"`
	OnBehalfOf   string    `json:"on_behalf_of,omitempty"`
	Audiences    []string  `json:"audiences"`
	Scopes       []string  `json:"scopes,omitempty"`
	State        string    `json:"state"` // one of the Task state constants
	Budget       int64     `json:"budget,omitempty"`
	Calls        int64     `json:"calls"`
	Policy       string    `json:"policy,omitempty"` // name@version that allowed it
	Rule         string    `json:"rule,omitempty"`
	Approval     string    `json:"approval,omitempty"` // approval request id, when one was needed
	Reason       string    `json:"reason,omitempty"`   // why it was denied or closed
	CreatedAt    time.Time `json:"created_at"`
	ExpiresAt    time.Time `json:"expires_at"`
	ClosedAt     time.Time `json:"closed_at,omitzero"`
}

// TaskFilter is the query of GET /v1/tasks; empty fields match all.
type TaskFilter struct {
	SpiffeID string
	Instance string
	State    string
}

// Revocation kinds: what a revocation names.
const (
	RevokeSpiffeID = "spiffe_id"
	RevokeInstance = "instance"
	RevokeTask     = "task"
	RevokeToken    = "token" // an access token's jti
)

// RevokeRequest is the body of POST /v1/revoke. For kind token, Value is
// the token's jti or the access token itself (the server checks that it
// issued it and revokes its jti). A value that names nothing the server
// knows (no such task, instance, entry or recently minted token) is
// refused with 404 unless Force is set, for a pre-emptive revocation.
type RevokeRequest struct {
	Kind   string `json:"kind"` // one of the Revoke constants
	Value  string `json:"value"`
	Reason string `json:"reason,omitempty"`
	Force  bool   `json:"force,omitempty"`
}

// LiftRequest is the body of POST /v1/revocations/lift: take back the
// revocation of Kind and Value (for kind token, a jti or the token). The
// answer is the lifted Revocation; 404 if nothing of that kind and value
// is revoked.
type LiftRequest struct {
	Kind   string `json:"kind"`
	Value  string `json:"value"`
	Reason string `json:"reason,omitempty"`
}

// Revocation is one pull of the kill switch: the answer of POST /v1/revoke
// and the elements of GET /v1/revocations.
type Revocation struct {
	Kind      string    `json:"kind"`
	Value     string    `json:"value"`
	Reason    string    `json:"reason,omitempty"`
	Actor     string    `json:"actor,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Approval states.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalExpired  = "expired"
)

// Approval is a request for a human decision: GET /v1/approvals,
// GET /v1/approvals/{id} and the answer of approve and deny.
type Approval struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"` // what is asked: "task", "http", "mcp", ...
	SpiffeID   string    `json:"spiffe_id"`
	Instance   string    `json:"instance,omitempty"`
	Task       string    `json:"task,omitempty"`
	OnBehalfOf string    `json:"on_behalf_of,omitempty"`
	Target     string    `json:"target"`
	Reason     string    `json:"reason,omitempty"`
	Policy     string    `json:"policy,omitempty"`
	Rule       string    `json:"rule,omitempty"`
	Approvers  []string  `json:"approvers,omitempty"`
	State      string    `json:"state"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	DecidedAt  time.Time `json:"decided_at,omitzero"`
	DecidedBy  string    `json:"decided_by,omitempty"`
	Comment    string    `json:"comment,omitempty"`
	// Binding is the exact call the approval is for, when it is bound to
	// one (an MCP call: "MCPServer/NAME tools/call TOOL sha256:..." of the
	// canonical arguments); such an approval permits that call once.
	Binding string    `json:"binding,omitempty"`
	UsedAt  time.Time `json:"used_at,omitzero"`
}

// DecideRequest is the optional body of POST /v1/approvals/{id}/approve
// and /deny.
type DecideRequest struct {
	Comment string `json:"comment,omitempty"`
}
