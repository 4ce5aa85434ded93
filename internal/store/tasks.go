package store

import (
	"context"
	"errors"
	"time"
)

// ErrPrecondition reports that a conditional change did not apply because
// the record is not in the state the change requires (a task that is no
// longer open, an approval already decided, a used-up call budget).
var ErrPrecondition = errors.New("precondition failed")

// Task states.
const (
	TaskPending = "pending" // waiting for a human approval
	TaskOpen    = "open"
	TaskClosed  = "closed" // closed explicitly, on expiry or on revocation
	TaskDenied  = "denied" // policy or an approver refused it
)

// Task is one unit of agent work that credentials are minted under. The
// granted audiences and scopes bound every token minted for the task.
type Task struct {
	ID         string    `json:"id"`
	SpiffeID   string    `json:"spiffe_id"`
	Instance   string    `json:"instance,omitempty"`
	Purpose    string    `json:"purpose"`
	OnBehalfOf string    `json:"on_behalf_of,omitempty"`
	Audiences  []string  `json:"audiences"`
	Scopes     []string  `json:"scopes,omitempty"`
	State      string    `json:"state"`
	Budget     int64     `json:"budget,omitempty"` // 0: no call budget
	Calls      int64     `json:"calls"`
	Policy     string    `json:"policy,omitempty"` // name@version that allowed it
	Rule       string    `json:"rule,omitempty"`
	Approval   string    `json:"approval,omitempty"` // approval request id, when one was needed
	Reason     string    `json:"reason,omitempty"`   // why it was denied or closed
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	ClosedAt   time.Time `json:"closed_at,omitzero"`
}

// TaskFilter narrows ListTasks; empty fields match everything.
type TaskFilter struct {
	SpiffeID string
	Instance string
	State    string
}

// Tasks stores tasks, keyed by ID.
type Tasks interface {
	// CreateTask stores a new task; ErrExists if the id is taken.
	CreateTask(ctx context.Context, t Task) (Task, error)
	GetTask(ctx context.Context, id string) (Task, error)
	// ListTasks returns matching tasks, newest first.
	ListTasks(ctx context.Context, f TaskFilter) ([]Task, error)
	// TransitionTask moves task id from one of the states in from to the
	// state to, recording reason and, for closed or denied, the time. It
	// returns ErrPrecondition (with the current task) when the task is in
	// another state.
	TransitionTask(ctx context.Context, id string, from []string, to, reason string, at time.Time) (Task, error)
	// ChargeTask counts one call against an open, unexpired task's budget.
	// It returns ErrPrecondition (with the current task) when the task is
	// not open, has expired at now, or its budget is used up.
	ChargeTask(ctx context.Context, id string, now time.Time) (Task, error)
	// RecordTaskCalls raises the stored call count of task id to calls
	// (never lowers it), for counts kept in memory.
	RecordTaskCalls(ctx context.Context, id string, calls int64) error
	// ExpiredTasks returns open or pending tasks whose expiry is not after
	// now.
	ExpiredTasks(ctx context.Context, now time.Time) ([]Task, error)
}

// Revocation kinds: what a revocation names.
const (
	RevokeSpiffeID = "spiffe_id"
	RevokeInstance = "instance"
	RevokeTask     = "task"
	RevokeToken    = "token" // an access token's jti
)

// Revocation is one pull of the kill switch. ExpiresAt, when set, is when
// the revocation stops mattering (everything it names has expired) and
// may be pruned; zero means never.
type Revocation struct {
	Kind      string    `json:"kind"`
	Value     string    `json:"value"`
	Reason    string    `json:"reason,omitempty"`
	Actor     string    `json:"actor,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Revocations stores revocations, keyed by kind and value.
type Revocations interface {
	// PutRevocation records r. Revoking what is already revoked keeps the
	// first record and reports created false.
	PutRevocation(ctx context.Context, r Revocation) (Revocation, bool, error)
	// ListRevocations returns every revocation that has not expired at now
	// (all of them when now is zero), oldest first.
	ListRevocations(ctx context.Context, now time.Time) ([]Revocation, error)
	// PruneRevocations deletes revocations that expired before now and
	// returns how many.
	PruneRevocations(ctx context.Context, now time.Time) (int, error)
}

// Approval states.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalExpired  = "expired"
)

// Approval is a request for a human decision (opening a task, a call the
// proxy escalated).
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
}

// Approvals stores approval requests, keyed by ID.
type Approvals interface {
	// CreateApproval stores a new request; ErrExists if the id is taken.
	CreateApproval(ctx context.Context, a Approval) (Approval, error)
	GetApproval(ctx context.Context, id string) (Approval, error)
	// ListApprovals returns requests in state (all when empty), newest
	// first.
	ListApprovals(ctx context.Context, state string) ([]Approval, error)
	// DecideApproval moves a pending request to state (approved, denied
	// or expired). It returns ErrPrecondition (with the current request)
	// when the request is no longer pending.
	DecideApproval(ctx context.Context, id, state, by, comment string, at time.Time) (Approval, error)
}
