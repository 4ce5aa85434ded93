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
	ID       string
	SpiffeID string
	// Instance is the instance that opened the task ("" when an operator
	// opened it without naming one).
	Instance string
	// BindInstance restricts the task to Instance; otherwise every
	// instance of SpiffeID may use it.
	BindInstance bool
	Purpose      string
	OnBehalfOf   string
	Audiences    []string
	Scopes       []string
	State        string
	Budget       int64 // 0: no call budget
	Calls        int64
	Policy       string // name@version that allowed it
	Rule         string
	Approval     string // approval request id, when one was needed
	Reason       string // why it was denied or closed
	CreatedAt    time.Time
	ExpiresAt    time.Time
	ClosedAt     time.Time
}

// FlowLabel is a flow label a task touched, with the access that touched
// it first ("MCPServer/files tools/call read_text_file").
type FlowLabel struct {
	Label string
	Via   string
	At    time.Time
}

// TaskFlows stores the flow labels each task has touched, so that flow
// rules hold across a restart.
type TaskFlows interface {
	// TouchTask records that task touched labels through via at at. A
	// label already recorded keeps its first via and time.
	TouchTask(ctx context.Context, task string, labels []string, via string, at time.Time) error
	// TaskFlows returns the labels task touched, in the order first
	// touched.
	TaskFlows(ctx context.Context, task string) ([]FlowLabel, error)
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
	Kind      string
	Value     string
	Reason    string
	Actor     string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Revocations stores revocations, keyed by kind and value.
type Revocations interface {
	// PutRevocation records r. Revoking what is already revoked keeps the
	// first record and reports created false.
	PutRevocation(ctx context.Context, r Revocation) (Revocation, bool, error)
	// ListRevocations returns every revocation that has not expired at now
	// (all of them when now is zero), oldest first.
	ListRevocations(ctx context.Context, now time.Time) ([]Revocation, error)
	// DeleteRevocation lifts the revocation of kind and value and returns
	// it; ErrNotFound if there is none.
	DeleteRevocation(ctx context.Context, kind, value string) (Revocation, error)
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
	ID         string
	Kind       string // what is asked: "task", "http", "mcp", ...
	SpiffeID   string
	Instance   string
	Task       string
	OnBehalfOf string
	Target     string
	Reason     string
	Policy     string
	Rule       string
	Approvers  []string
	State      string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	DecidedAt  time.Time
	DecidedBy  string
	Comment    string
	// Binding is the exact call an approval is for, when it is bound to
	// one (an MCP call: "MCPServer/NAME tools/call TOOL sha256:DIGEST of
	// the canonical arguments"). An approved request with a binding is
	// used once, by a call with the same binding, before ExpiresAt.
	Binding string
	// UsedAt is when an approved request was used by its call.
	UsedAt time.Time
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
	// UseApproval marks an approved request as used at at, once: it
	// returns ErrPrecondition (with the current request) when the request
	// is not approved, was used already, or its binding is not binding.
	UseApproval(ctx context.Context, id, binding string, at time.Time) (Approval, error)
}
