// Package approval is writ's escalation queue: when policy says a human
// must approve (opening a task, a call the proxy escalated), the caller
// files a request with [Service.Request], waits for it with [Service.Wait],
// and an operator decides it through the admin API (`writ approval
// approve|deny`). Requests are stored, so a pending one survives a restart,
// and expire at their deadline. Waiters are woken by in-process
// notification, not by polling the store.
//
// Every request, decision and expiry is an audit event.
package approval

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/store"
)

// Config configures a [Service].
type Config struct {
	Store   store.Approvals
	Emitter audit.Emitter
	Log     *slog.Logger
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// DefaultTimeout is how long a request waits for a decision when its
	// Spec names no timeout; default 15m.
	DefaultTimeout time.Duration
	// Groups returns the groups the human NAME (who acts as "user:NAME")
	// is a member of now: [Service.Decide] asks at every decision by a
	// human of a request whose approvers name a group. Without it no human
	// is in any group, so a rule naming only groups is decided by the
	// admin credential alone (fail closed).
	Groups func(ctx context.Context, name string) ([]string, error)
}

// Spec describes what needs approving.
type Spec struct {
	Kind       string // "task", "http", "mcp", ...
	SpiffeID   string
	Instance   string
	Task       string
	OnBehalfOf string
	Target     string // what is asked for, in words an approver understands
	Reason     string
	Policy     string
	Rule       string
	Approvers  []string
	Timeout    time.Duration
	// Binding, when set, binds the approval to one exact call (see
	// store.Approval.Binding): once approved it is used by [Service.Use]
	// exactly once, by a call with the same binding, before it expires.
	Binding string
}

var (
	// ErrSelfApproval is returned by [Service.Decide] when the actor is
	// the identity that asked: the requesting workload, or the user on
	// whose behalf it acts.
	ErrSelfApproval = errors.New("the identity that asked for an approval cannot decide it")
	// ErrNotApprover is returned by [Service.Decide] when a workload that
	// the request does not name among its approvers tries to decide it,
	// or a human the request's human approvers (user:NAME, group:NAME) do
	// not include.
	ErrNotApprover = errors.New("not among the approvers of this request")
	// ErrNotUsable is returned by [Service.Use] for an approval that does
	// not permit the call: not approved, for another caller or another
	// call, used already, or expired.
	ErrNotUsable = errors.New("the approval does not permit this call")
)

// Service files, decides and expires approval requests. It is safe for
// concurrent use.
type Service struct {
	c Config

	mu      sync.Mutex
	pending map[string]time.Time     // id -> expiry, for requests still pending
	waiters map[string]chan struct{} // closed when the request is decided
	hooks   []func(context.Context, store.Approval)
	wake    chan struct{}
	changed chan struct{} // closed and replaced at every request and decision
}

// New loads pending requests so that they expire on time after a restart.
func New(ctx context.Context, c Config) (*Service, error) {
	if c.Store == nil || c.Emitter == nil {
		return nil, errors.New("approval: store and audit emitter are required")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.DefaultTimeout <= 0 {
		c.DefaultTimeout = 15 * time.Minute
	}
	s := &Service{c: c, pending: map[string]time.Time{}, waiters: map[string]chan struct{}{}, wake: make(chan struct{}, 1),
		changed: make(chan struct{})}
	ps, err := c.Store.ListApprovals(ctx, store.ApprovalPending)
	if err != nil {
		return nil, fmt.Errorf("load pending approvals: %w", err)
	}
	for _, a := range ps {
		s.pending[a.ID] = a.ExpiresAt
	}
	return s, nil
}

// OnDecide registers fn to run (synchronously, in the deciding goroutine)
// after a request is approved, denied or expired. Register hooks before
// serving.
func (s *Service) OnDecide(fn func(context.Context, store.Approval)) {
	s.mu.Lock()
	s.hooks = append(s.hooks, fn)
	s.mu.Unlock()
}

// Request files a pending request.
func (s *Service) Request(ctx context.Context, sp Spec) (store.Approval, error) {
	if sp.Kind == "" || sp.SpiffeID == "" || sp.Target == "" {
		return store.Approval{}, errors.New("request approval: kind, spiffe_id and target are required")
	}
	timeout := sp.Timeout
	if timeout <= 0 {
		timeout = s.c.DefaultTimeout
	}
	now := s.c.Now()
	a := store.Approval{ID: "apr_" + rand.Text(), Kind: sp.Kind, SpiffeID: sp.SpiffeID, Instance: sp.Instance, Task: sp.Task,
		OnBehalfOf: sp.OnBehalfOf, Target: sp.Target, Reason: sp.Reason, Policy: sp.Policy, Rule: sp.Rule,
		Approvers: sp.Approvers, State: store.ApprovalPending, CreatedAt: now, ExpiresAt: now.Add(timeout), Binding: sp.Binding}
	a, err := s.c.Store.CreateApproval(ctx, a)
	if err != nil {
		return store.Approval{}, fmt.Errorf("request approval: %w", err)
	}
	s.mu.Lock()
	s.pending[a.ID] = a.ExpiresAt
	s.notifyLocked()
	s.mu.Unlock()
	s.poke()
	if err := s.c.Emitter.Emit(ctx, s.event(audit.ApprovalRequested, a)); err != nil {
		return a, fmt.Errorf("audit approval request %s: %w", a.ID, err)
	}
	return a, nil
}

// Get returns a request.
func (s *Service) Get(ctx context.Context, id string) (store.Approval, error) {
	return s.c.Store.GetApproval(ctx, id)
}

// List returns requests in state (all when empty), newest first.
func (s *Service) List(ctx context.Context, state string) ([]store.Approval, error) {
	switch state {
	case "", store.ApprovalPending, store.ApprovalApproved, store.ApprovalDenied, store.ApprovalExpired:
	default:
		return nil, fmt.Errorf("list approvals: state %q is not pending, approved, denied or expired", state)
	}
	return s.c.Store.ListApprovals(ctx, state)
}

// Decide approves or denies a pending request on behalf of actor: an
// operator ("admin:ID"), a human ("user:NAME") or a workload (its SPIFFE
// ID), as [MayDecide] allows; a human's groups are those Config.Groups
// returns at this moment. A refusal wraps [ErrSelfApproval] or
// [ErrNotApprover] and names the request's approvers. A request that is no
// longer pending (decided, expired) is an error wrapping
// store.ErrPrecondition; an expired one cannot be approved late.
func (s *Service) Decide(ctx context.Context, id string, approve bool, actor, comment string) (store.Approval, error) {
	state := store.ApprovalDenied
	if approve {
		state = store.ApprovalApproved
	}
	a, err := s.c.Store.GetApproval(ctx, id)
	if err != nil {
		return a, err
	}
	var groups []string
	if name, ok := strings.CutPrefix(actor, "user:"); ok && namesGroups(a.Approvers) && !slices.Contains(a.Approvers, actor) {
		if s.c.Groups != nil {
			if groups, err = s.c.Groups(ctx, name); err != nil {
				return a, fmt.Errorf("decide approval %s as %s: read the groups of %s: %w", id, actor, name, err)
			}
		}
	}
	if err := MayDecide(a, actor, groups); err != nil {
		s.c.Log.WarnContext(ctx, "approval decision refused", "approval", id, "actor", actor, "error", err)
		return a, fmt.Errorf("decide approval %s as %s: %w (%s)", id, actor, err, ApproversText(a))
	}
	s.mu.Lock()
	exp, ok := s.pending[id]
	s.mu.Unlock()
	if ok && !s.c.Now().Before(exp) {
		// Too late: expire it (unless the deadline's own expiry is
		// under way) and refuse the decision, as the store does once
		// it is expired.
		s.expire(ctx, id)
		a, err := s.c.Store.GetApproval(ctx, id)
		if err != nil {
			return a, err
		}
		return a, fmt.Errorf("decide approval %s: it expired at %s: %w", id, exp.UTC().Format(time.RFC3339), store.ErrPrecondition)
	}
	return s.settle(ctx, id, state, actor, comment)
}

// MayDecide is the one rule of who may decide request a, with groups the
// groups of a human actor at this moment. It returns nil, or an error
// wrapping [ErrSelfApproval] or [ErrNotApprover]:
//
//   - nobody decides a request they asked for ([SelfApproval]);
//   - the admin credential ("admin:ID") may decide any other request;
//   - a workload (a SPIFFE ID) only one that names it among its approvers;
//   - a human ("user:NAME") any request whose approvers name no human;
//     when they name humans (user:NAME, group:NAME), only a human named
//     so or a member of a named group. Group names compare exactly
//     (case-sensitive, no normalisation): group:Leads is not group:leads;
//   - any other actor nothing (fail closed).
//
// The console greys out Approve and Deny with it; [Service.Decide]
// enforces it.
func MayDecide(a store.Approval, actor string, groups []string) error {
	switch {
	case actor == "":
		return ErrNotApprover
	case SelfApproval(a, actor):
		return ErrSelfApproval
	case strings.HasPrefix(actor, "admin:") && len(actor) > len("admin:"):
		return nil
	case strings.HasPrefix(actor, "spiffe://"):
		if slices.Contains(a.Approvers, actor) {
			return nil
		}
		return ErrNotApprover
	case strings.HasPrefix(actor, "user:") && len(actor) > len("user:"):
		if !namesUsers(a.Approvers) && !namesGroups(a.Approvers) || slices.Contains(a.Approvers, actor) {
			return nil
		}
		for _, ap := range a.Approvers {
			if g, ok := strings.CutPrefix(ap, "group:"); ok && g != "" && slices.Contains(groups, g) {
				return nil
			}
		}
		return ErrNotApprover
	}
	return ErrNotApprover
}

// ApproversText says who a's rule lets decide, for a refusal: "rule
// send of mail@2 names approvers user:bob, group:leads".
func ApproversText(a store.Approval) string {
	who := "rule " + a.Rule + " of " + a.Policy
	if a.Rule == "" {
		who = "the request"
	}
	if len(a.Approvers) == 0 {
		return who + " names no approvers"
	}
	return who + " names approvers " + strings.Join(a.Approvers, ", ")
}

// SelfApproval reports whether actor is the identity that asked for a:
// the requesting workload (its SPIFFE ID), or the human its task acts for
// ("user:NAME", or the admin credential of that name). Such an actor may
// not decide the request at all.
func SelfApproval(a store.Approval, actor string) bool {
	return actor != "" && (actor == a.SpiffeID ||
		a.OnBehalfOf != "" && (actor == "user:"+a.OnBehalfOf || actor == "admin:"+a.OnBehalfOf))
}

func namesUsers(approvers []string) bool { return namesKind(approvers, "user:") }

func namesGroups(approvers []string) bool { return namesKind(approvers, "group:") }

func namesKind(approvers []string, prefix string) bool {
	for _, a := range approvers {
		if strings.HasPrefix(a, prefix) {
			return true
		}
	}
	return false
}

// Use spends an approved request on the call it was granted for: binding
// must be the request's, caller the SPIFFE ID that asked, and the request
// approved, unused and not expired. It succeeds once; any other call,
// caller or second use is refused with an error wrapping [ErrNotUsable]
// that says why.
func (s *Service) Use(ctx context.Context, id, binding, caller string) (store.Approval, error) {
	a, err := s.c.Store.GetApproval(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return a, fmt.Errorf("%w: approval %s does not exist", ErrNotUsable, id)
	}
	if err != nil {
		return a, err
	}
	now := s.c.Now()
	switch {
	case a.SpiffeID != caller:
		return a, fmt.Errorf("%w: approval %s was asked for by another identity", ErrNotUsable, id)
	case a.State != store.ApprovalApproved:
		return a, fmt.Errorf("%w: approval %s is %s", ErrNotUsable, id, a.State)
	case !a.UsedAt.IsZero():
		return a, fmt.Errorf("%w: approval %s was used already, at %s; it permits one call", ErrNotUsable, id, a.UsedAt.Format(time.RFC3339))
	case a.Binding == "" || a.Binding != binding:
		return a, fmt.Errorf("%w: approval %s was granted for %s, not for %s", ErrNotUsable, id, orNone(a.Binding), binding)
	case !now.Before(a.ExpiresAt):
		return a, fmt.Errorf("%w: approval %s expired at %s", ErrNotUsable, id, a.ExpiresAt.Format(time.RFC3339))
	}
	a, err = s.c.Store.UseApproval(ctx, id, binding, now)
	if errors.Is(err, store.ErrPrecondition) {
		// Another call used it between the check and now.
		return a, fmt.Errorf("%w: approval %s was used already; it permits one call", ErrNotUsable, id)
	}
	if err != nil {
		return a, fmt.Errorf("use approval %s: %w", id, err)
	}
	ev := s.event(audit.ApprovalUsed, a)
	ev.Details["binding"] = a.Binding
	if err := s.c.Emitter.Emit(ctx, ev); err != nil {
		return a, fmt.Errorf("audit use of approval %s: %w", id, err)
	}
	return a, nil
}

func orNone(s string) string {
	if s == "" {
		return "no particular call"
	}
	return s
}

func (s *Service) settle(ctx context.Context, id, state, actor, comment string) (store.Approval, error) {
	a, err := s.c.Store.DecideApproval(ctx, id, state, actor, comment, s.c.Now())
	if err != nil {
		return a, err
	}
	s.mu.Lock()
	delete(s.pending, id)
	hooks := s.hooks
	s.notifyLocked()
	s.mu.Unlock()
	typ := map[string]audit.Type{store.ApprovalApproved: audit.ApprovalGranted, store.ApprovalDenied: audit.ApprovalDenied,
		store.ApprovalExpired: audit.ApprovalExpired}[state]
	var auditErr error
	if err := s.c.Emitter.Emit(ctx, s.event(typ, a)); err != nil {
		s.c.Log.ErrorContext(ctx, "audit approval decision", "approval", id, "error", err)
		auditErr = fmt.Errorf("approval %s is %s but its audit event was not recorded: %w", id, state, err)
	}
	// Hooks run before waiters wake, so a waiter sees their effect (an
	// approved task already open).
	for _, h := range hooks {
		h(ctx, a)
	}
	s.mu.Lock()
	if ch, ok := s.waiters[id]; ok {
		close(ch)
		delete(s.waiters, id)
	}
	s.mu.Unlock()
	return a, auditErr
}

func (s *Service) expire(ctx context.Context, id string) {
	if _, err := s.settle(ctx, id, store.ApprovalExpired, "", "no decision before the deadline"); err != nil &&
		!errors.Is(err, store.ErrPrecondition) {
		s.c.Log.WarnContext(ctx, "expire approval", "approval", id, "error", err)
	}
}

// Wait blocks until request id is decided or expires, or ctx ends, and
// returns the request as it then is.
func (s *Service) Wait(ctx context.Context, id string) (store.Approval, error) {
	s.mu.Lock()
	exp, pending := s.pending[id]
	var ch chan struct{}
	if pending {
		ch = s.waiters[id]
		if ch == nil {
			ch = make(chan struct{})
			s.waiters[id] = ch
		}
	}
	s.mu.Unlock()
	if !pending {
		return s.c.Store.GetApproval(ctx, id)
	}
	timer := time.NewTimer(time.Until(exp) + 10*time.Millisecond)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		s.expire(ctx, id)
	case <-ctx.Done():
		return store.Approval{}, fmt.Errorf("wait for approval %s: %w", id, ctx.Err())
	}
	return s.c.Store.GetApproval(ctx, id)
}

// Run expires pending requests at their deadlines until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := s.c.Now()
		next := now.Add(time.Minute)
		var due []string
		s.mu.Lock()
		for id, exp := range s.pending {
			if !now.Before(exp) {
				due = append(due, id)
			} else if exp.Before(next) {
				next = exp
			}
		}
		s.mu.Unlock()
		for _, id := range due {
			s.expire(ctx, id)
		}
		timer.Reset(next.Sub(now))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		case <-s.wake:
		}
	}
}

// Changed returns a channel closed at the next request filed or decided
// (the console's live approvals list waits on it).
func (s *Service) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Service) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Service) event(t audit.Type, a store.Approval) audit.Event {
	e := audit.Event{Type: t, SpiffeID: a.SpiffeID, Instance: a.Instance, Task: a.Task, OnBehalfOf: a.OnBehalfOf,
		Target: a.Target, Action: a.Kind, Policy: a.Policy, Rule: a.Rule, Reason: a.Reason, Actor: a.DecidedBy,
		Details: map[string]string{"approval": a.ID}}
	if a.State != store.ApprovalPending {
		e.Decision = a.State
		if a.Comment != "" {
			e.Details["comment"] = a.Comment
		}
	}
	return e
}
