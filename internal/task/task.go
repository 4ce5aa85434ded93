// Package task is the lifecycle of agent tasks, the unit that credentials
// are minted under. An authenticated agent opens a task with a purpose, an
// optional on-behalf-of user, the audiences and scopes it needs, a maximum
// duration and a call budget; policy decides whether it may (the task
// purpose and every requested audience with its scopes are policy targets),
// and may require a human approval, in which case the task stays pending
// until an operator decides. A task closes explicitly, at expiry or when
// the kill switch names it, its instance or its SPIFFE ID; closing revokes
// every token minted under it.
//
// Open and pending tasks are kept in memory, so minting checks a task and
// charges its budget without reading the store (budgets are charged in the
// store, atomically, only for tasks that have one).
package task

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/approval"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/revoke"
	"github.com/writ-dev/writ/internal/store"
)

// Limits on an opening request.
const (
	DefaultDuration = time.Hour
	MaxDuration     = 24 * time.Hour
	maxAudiences    = 16
	maxScopes       = 64
	maxText         = 512
)

// Decider answers policy questions. *policy.Engine implements it.
type Decider interface {
	Decide(ctx context.Context, req *policy.Request) policy.Decision
}

// Config configures a [Service].
type Config struct {
	Store     store.Tasks
	Policy    Decider
	Approvals *approval.Service
	Revoke    *revoke.List
	Emitter   audit.Emitter
	Log       *slog.Logger
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
}

// Subject is the agent a task is opened for.
type Subject struct {
	SpiffeID string
	Instance string
	Labels   map[string]string
}

// OpenRequest is what an agent asks for.
type OpenRequest struct {
	Purpose    string        `json:"purpose"`
	OnBehalfOf string        `json:"on_behalf_of,omitempty"`
	Groups     []string      `json:"groups,omitempty"`
	Audiences  []string      `json:"audiences"`
	Scopes     []string      `json:"scopes,omitempty"`
	Duration   time.Duration `json:"-"`
	Budget     int64         `json:"budget,omitempty"`
	// BindInstance restricts the task to the opening instance (the
	// subject's Instance). By default a task is bound to the SPIFFE ID:
	// every instance of the identity may use it (see [Usable]).
	BindInstance bool `json:"bind_instance,omitempty"`
}

// DeniedError reports that policy (or an approver) refused a task.
type DeniedError struct {
	Task   store.Task
	Reason string
}

func (e *DeniedError) Error() string { return "task denied: " + e.Reason }

// ErrInvalid marks a request the agent must fix.
var ErrInvalid = errors.New("invalid task request")

// Service opens, tracks and closes tasks. It is safe for concurrent use.
type Service struct {
	c Config

	mu   sync.RWMutex
	live map[string]*store.Task // open and pending tasks
}

// New loads the open and pending tasks.
func New(ctx context.Context, c Config) (*Service, error) {
	if c.Store == nil || c.Policy == nil || c.Approvals == nil || c.Revoke == nil || c.Emitter == nil {
		return nil, errors.New("task: store, policy, approvals, revocation list and audit emitter are required")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	s := &Service{c: c, live: map[string]*store.Task{}}
	for _, st := range []string{store.TaskOpen, store.TaskPending} {
		ts, err := c.Store.ListTasks(ctx, store.TaskFilter{State: st})
		if err != nil {
			return nil, fmt.Errorf("load %s tasks: %w", st, err)
		}
		for i := range ts {
			s.live[ts[i].ID] = &ts[i]
		}
	}
	c.Approvals.OnDecide(s.onApproval)
	return s, nil
}

func (r *OpenRequest) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	r.Purpose = strings.TrimSpace(r.Purpose)
	switch {
	case r.Purpose == "":
		return bad("purpose is missing; say what the task is for")
	case len(r.Purpose) > maxText || len(r.OnBehalfOf) > maxText:
		return bad("purpose and on_behalf_of are at most %d characters", maxText)
	case len(r.Audiences) == 0:
		return bad("audiences is empty; name the services the task will call")
	case len(r.Audiences) > maxAudiences:
		return bad("%d audiences; at most %d", len(r.Audiences), maxAudiences)
	case len(r.Scopes) > maxScopes:
		return bad("%d scopes; at most %d", len(r.Scopes), maxScopes)
	case r.Duration < 0 || r.Duration > MaxDuration:
		return bad("max_duration %v is outside 0 to %v", r.Duration, MaxDuration)
	case r.Budget < 0:
		return bad("budget must not be negative")
	}
	for _, a := range r.Audiences {
		if a == "" || len(a) > maxText || strings.ContainsAny(a, " \t\n") {
			return bad("audience %q must be non-empty without spaces", a)
		}
	}
	for _, sc := range r.Scopes {
		if sc == "" || len(sc) > 128 || strings.ContainsAny(sc, " \t\n\"\\") {
			return bad("scope %q is not a scope token", sc)
		}
	}
	if r.Duration == 0 {
		r.Duration = DefaultDuration
	}
	r.Audiences, r.Scopes = uniq(r.Audiences), uniq(r.Scopes)
	return nil
}

// Open decides and records a task for sub. An allowed task is open; one
// that needs approval is pending (its Approval names the request); a
// denied one is recorded as denied and returned with a *DeniedError.
func (s *Service) Open(ctx context.Context, sub Subject, req OpenRequest, source string) (store.Task, error) {
	if err := req.validate(); err != nil {
		return store.Task{}, err
	}
	if req.BindInstance && sub.Instance == "" {
		return store.Task{}, fmt.Errorf("%w: bind_instance needs an instance to bind to: open the task as the agent process, or name the instance", ErrInvalid)
	}
	if _, dead := s.c.Revoke.Check(revoke.Target{SpiffeID: sub.SpiffeID, Instance: sub.Instance}); dead {
		return store.Task{}, &DeniedError{Reason: "the agent's identity or instance is revoked"}
	}
	now := s.c.Now()
	t := store.Task{ID: "task_" + rand.Text(), SpiffeID: sub.SpiffeID, Instance: sub.Instance, BindInstance: req.BindInstance, Purpose: req.Purpose,
		OnBehalfOf: req.OnBehalfOf, Audiences: req.Audiences, Scopes: req.Scopes, Budget: req.Budget,
		CreatedAt: now, ExpiresAt: now.Add(req.Duration)}
	d := s.decide(ctx, sub, req, t, now)
	t.Policy, t.Rule = d.Policy, d.Rule
	if d.Obligations.Budget > 0 && (t.Budget == 0 || int64(d.Obligations.Budget) < t.Budget) {
		t.Budget = int64(d.Obligations.Budget)
	}
	switch d.Effect {
	case policy.Allow:
		t.State = store.TaskOpen
	case policy.ApprovalRequired:
		t.State = store.TaskPending
	default:
		t.State, t.Reason = store.TaskDenied, strings.Join(d.Reasons, "; ")
		t.ClosedAt = now
	}
	if t.State == store.TaskPending {
		ob := d.Obligations.Approval
		sp := approval.Spec{Kind: "task", SpiffeID: t.SpiffeID, Instance: t.Instance, Task: t.ID, OnBehalfOf: t.OnBehalfOf,
			Target: fmt.Sprintf("open task %q for %s", t.Purpose, strings.Join(t.Audiences, ", ")),
			Reason: strings.Join(d.Reasons, "; "), Policy: d.Policy, Rule: d.Rule}
		if len(t.Scopes) > 0 {
			sp.Target += " with scopes " + strings.Join(t.Scopes, " ")
		}
		if ob != nil {
			sp.Approvers, sp.Timeout = ob.Approvers, time.Duration(ob.Timeout)
		}
		// The task must exist before the approval can settle it.
		if _, err := s.c.Store.CreateTask(ctx, t); err != nil {
			return store.Task{}, err
		}
		s.put(t)
		a, err := s.c.Approvals.Request(ctx, sp)
		if err != nil {
			s.finish(ctx, t.ID, []string{store.TaskPending}, store.TaskDenied, "the approval request could not be filed", "")
			return store.Task{}, err
		}
		s.mu.Lock()
		if lt := s.live[t.ID]; lt != nil {
			lt.Approval = a.ID
		}
		s.mu.Unlock()
		t.Approval = a.ID
	} else if _, err := s.c.Store.CreateTask(ctx, t); err != nil {
		return store.Task{}, err
	} else if t.State == store.TaskOpen {
		s.put(t)
	}
	ev := audit.Event{Type: audit.TaskOpened, SpiffeID: t.SpiffeID, Instance: t.Instance, Task: t.ID, OnBehalfOf: t.OnBehalfOf,
		Target: strings.Join(t.Audiences, " "), Action: "open_task", Decision: string(d.Effect), Policy: d.Policy, Rule: d.Rule,
		Reason: t.Reason, Source: source, Details: map[string]string{"purpose": t.Purpose, "scope": strings.Join(t.Scopes, " "),
			"expires": t.ExpiresAt.Format(time.RFC3339), "state": t.State, "bound_to": boundTo(t)}}
	// What the decision saw, so that `writ policy replay` can decide the
	// opening again and compare budgets (#16).
	if l := audit.EncodeLabels(sub.Labels); l != "" {
		ev.Details["subject_labels"] = l
	}
	if t.Budget > 0 {
		ev.Details["budget"] = strconv.FormatInt(t.Budget, 10)
	}
	if req.Budget > 0 {
		ev.Details["budget_requested"] = strconv.FormatInt(req.Budget, 10)
	}
	if t.Approval != "" {
		ev.Details["approval"] = t.Approval
	}
	if err := s.c.Emitter.Emit(ctx, ev); err != nil {
		// Fail closed: an unrecorded task is not usable.
		s.finish(ctx, t.ID, []string{store.TaskOpen, store.TaskPending}, store.TaskClosed, "its opening could not be audited", "")
		return store.Task{}, fmt.Errorf("audit task %s: %w", t.ID, err)
	}
	if t.State == store.TaskDenied {
		return t, &DeniedError{Task: t, Reason: t.Reason}
	}
	return t, nil
}

// decide asks policy about the task's purpose and then about each
// audience with the requested scopes: the grant is within policy. The
// strictest answer wins (deny, then approval, then allow).
func (s *Service) decide(ctx context.Context, sub Subject, req OpenRequest, t store.Task, now time.Time) policy.Decision {
	base := policy.Request{Subject: policy.Subject{SpiffeID: sub.SpiffeID, Labels: sub.Labels}, Instance: sub.Instance,
		Task: policy.Task{ID: t.ID, Purpose: t.Purpose, OnBehalfOf: t.OnBehalfOf, Groups: req.Groups}, Now: now}
	return DecideOpen(ctx, s.c.Policy, base, t.Audiences, t.Scopes)
}

// DecideOpen is the decision on opening a task: p decides base (Subject,
// Instance, Task and Now set) as a task request for its purpose, then as a
// token request for each audience with scopes; the strictest answer wins
// (deny, then approval, then allow) and the budget is the smallest any
// answer sets. `writ policy replay` decides recorded openings with it.
func DecideOpen(ctx context.Context, p Decider, base policy.Request, audiences, scopes []string) policy.Decision {
	q := base
	q.Kind = policy.KindTask
	d := p.Decide(ctx, &q)
	if d.Effect == policy.Deny {
		return d
	}
	for _, aud := range audiences {
		q := base
		q.Kind, q.Token = policy.KindToken, policy.TokenRequest{Audience: aud, Scopes: scopes}
		td := p.Decide(ctx, &q)
		switch td.Effect {
		case policy.Deny:
			td.Reasons = append([]string{fmt.Sprintf("audience %s with scopes [%s] is not allowed", aud, strings.Join(scopes, " "))}, td.Reasons...)
			return td
		case policy.ApprovalRequired:
			if d.Effect == policy.Allow {
				d = td
			}
		}
		if td.Obligations.Budget > 0 && (d.Obligations.Budget == 0 || td.Obligations.Budget < d.Obligations.Budget) {
			d.Obligations.Budget = td.Obligations.Budget
		}
	}
	return d
}

func (s *Service) put(t store.Task) {
	s.mu.Lock()
	s.live[t.ID] = &t
	s.mu.Unlock()
}

// Get returns a task, from memory when it is open or pending.
func (s *Service) Get(ctx context.Context, id string) (store.Task, error) {
	s.mu.RLock()
	lt := s.live[id]
	var t store.Task
	if lt != nil {
		t = *lt
	}
	s.mu.RUnlock()
	if lt != nil {
		return t, nil
	}
	return s.c.Store.GetTask(ctx, id)
}

// List returns tasks matching f, newest first.
func (s *Service) List(ctx context.Context, f store.TaskFilter) ([]store.Task, error) {
	ts, err := s.c.Store.ListTasks(ctx, f)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i := range ts {
		if lt := s.live[ts[i].ID]; lt != nil && lt.Calls > ts[i].Calls {
			ts[i].Calls = lt.Calls
		}
	}
	return ts, nil
}

// Charge counts one mint against an open task. Tasks without a budget are
// counted in memory; budgets are charged in the store atomically.
func (s *Service) Charge(ctx context.Context, id string) (store.Task, error) {
	now := s.c.Now()
	s.mu.Lock()
	lt := s.live[id]
	if lt != nil && lt.Budget == 0 {
		defer s.mu.Unlock()
		if lt.State != store.TaskOpen || !now.Before(lt.ExpiresAt) {
			return *lt, fmt.Errorf("charge task %s: %w", id, store.ErrPrecondition)
		}
		lt.Calls++
		return *lt, nil
	}
	s.mu.Unlock()
	if lt == nil {
		t, err := s.c.Store.GetTask(ctx, id)
		if err != nil {
			return t, err
		}
		return t, fmt.Errorf("charge task %s: it is %s: %w", id, t.State, store.ErrPrecondition)
	}
	t, err := s.c.Store.ChargeTask(ctx, id, now)
	if err == nil {
		s.mu.Lock()
		if lt := s.live[id]; lt != nil {
			lt.Calls = t.Calls
		}
		s.mu.Unlock()
	}
	return t, err
}

// Close closes an open or pending task and revokes everything minted
// under it. actor is who closed it (the agent or an operator).
func (s *Service) Close(ctx context.Context, id, actor, reason string) (store.Task, error) {
	if reason == "" {
		reason = "closed by " + actor
	}
	return s.finish(ctx, id, []string{store.TaskOpen, store.TaskPending}, store.TaskClosed, reason, actor)
}

// finish moves a task out of the live set, revokes it and audits the
// close.
func (s *Service) finish(ctx context.Context, id string, from []string, to, reason, actor string) (store.Task, error) {
	t, err := s.c.Store.TransitionTask(ctx, id, from, to, reason, s.c.Now())
	if err != nil {
		return t, err
	}
	s.mu.Lock()
	var counted int64
	if lt := s.live[id]; lt != nil && lt.Calls > t.Calls {
		counted = lt.Calls
	}
	delete(s.live, id)
	s.mu.Unlock()
	if counted > 0 {
		// Calls of tasks without a budget are counted in memory; keep the
		// final count with the closed task.
		t.Calls = counted
		if err := s.c.Store.RecordTaskCalls(ctx, id, counted); err != nil {
			s.c.Log.WarnContext(ctx, "record task calls", "task", id, "error", err)
		}
	}
	// Tokens carry the task id: revoking it kills every one at once.
	exp := t.ExpiresAt.Add(time.Hour)
	if _, _, err := s.c.Revoke.Revoke(ctx, store.Revocation{Kind: store.RevokeTask, Value: id, Actor: actor,
		Reason: "task " + to + ": " + reason, ExpiresAt: exp}); err != nil && !errors.Is(err, revoke.ErrNotAudited) {
		return t, fmt.Errorf("revoke tokens of task %s: %w", id, err)
	}
	if err := s.c.Emitter.Emit(ctx, audit.Event{Type: audit.TaskClosed, SpiffeID: t.SpiffeID, Instance: t.Instance, Task: t.ID,
		OnBehalfOf: t.OnBehalfOf, Actor: actor, Action: "close_task", Decision: to, Reason: reason,
		Details: map[string]string{"calls": fmt.Sprint(t.Calls)}}); err != nil {
		return t, fmt.Errorf("audit close of task %s: %w", id, err)
	}
	return t, nil
}

// onApproval opens or denies a pending task when its approval settles.
func (s *Service) onApproval(ctx context.Context, a store.Approval) {
	if a.Kind != "task" || a.Task == "" {
		return
	}
	switch a.State {
	case store.ApprovalApproved:
		t, err := s.c.Store.TransitionTask(ctx, a.Task, []string{store.TaskPending}, store.TaskOpen, "approved by "+a.DecidedBy, time.Time{})
		if err != nil {
			s.c.Log.WarnContext(ctx, "open approved task", "task", a.Task, "error", err)
			return
		}
		s.put(t)
		if err := s.c.Emitter.Emit(ctx, audit.Event{Type: audit.TaskOpened, SpiffeID: t.SpiffeID, Instance: t.Instance, Task: t.ID,
			OnBehalfOf: t.OnBehalfOf, Actor: a.DecidedBy, Action: "open_task", Decision: "allow", Policy: t.Policy, Rule: t.Rule,
			Reason: "approved", Details: map[string]string{"approval": a.ID, "state": t.State}}); err != nil {
			s.c.Log.ErrorContext(ctx, "audit approved task", "task", t.ID, "error", err)
		}
	default:
		if _, err := s.finish(ctx, a.Task, []string{store.TaskPending}, store.TaskDenied, "approval "+a.State, a.DecidedBy); err != nil &&
			!errors.Is(err, store.ErrPrecondition) {
			s.c.Log.WarnContext(ctx, "deny task after approval", "task", a.Task, "error", err)
		}
	}
}

// Run closes tasks at expiry and when the kill switch names them, their
// instance or their SPIFFE ID, until ctx ends. It reads memory, not the
// store, to find them.
func (s *Service) Run(ctx context.Context) error {
	revCh, stop := s.c.Revoke.Watch()
	defer stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-revCh:
		case <-timer.C:
		}
		next := s.sweep(ctx)
		timer.Reset(next)
	}
}

// sweep closes what is expired or revoked and returns how long until the
// next expiry (at most a minute).
func (s *Service) sweep(ctx context.Context) time.Duration {
	now := s.c.Now()
	wait := time.Minute
	type due struct{ id, reason string }
	var dues []due
	s.mu.RLock()
	for id, t := range s.live {
		if r, dead := s.c.Revoke.Check(revoke.Target{SpiffeID: t.SpiffeID, Instance: t.Instance}); dead {
			dues = append(dues, due{id, "revoked: " + r.Kind + " " + r.Value})
		} else if s.c.Revoke.Revoked(store.RevokeTask, id) {
			dues = append(dues, due{id, "revoked"})
		} else if !now.Before(t.ExpiresAt) {
			dues = append(dues, due{id, "expired"})
		} else if d := t.ExpiresAt.Sub(now); d < wait {
			wait = d
		}
	}
	s.mu.RUnlock()
	for _, d := range dues {
		if _, err := s.finish(ctx, d.id, []string{store.TaskOpen, store.TaskPending}, store.TaskClosed, d.reason, ""); err != nil &&
			!errors.Is(err, store.ErrPrecondition) {
			s.c.Log.WarnContext(ctx, "close task", "task", d.id, "error", err)
		}
	}
	return max(wait, 10*time.Millisecond)
}

func uniq(s []string) []string {
	out := make([]string, 0, len(s))
	for _, x := range s {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}
