package access

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/approval"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/task"
)

// Enforce decides req, whose Caller and Target are set: it checks the
// kill switch and the task the call claims, asks policy, holds the call
// for a human decision when policy asks for one, charges the task's
// budget, picks the upstream credential and, on allow, writes the decision
// to the journal before it returns. The Outcome says what to answer; the
// error, when not nil, is an internal failure to log (the Outcome is then
// Internal). Whatever the outcome, hand the access to [Enforcer.Record]
// once it is finished. req must not change until it is recorded.
func (e *Enforcer) Enforce(ctx context.Context, req *Request) (Outcome, error) {
	var out Outcome
	err := e.decide(ctx, req, &out)
	if err != nil {
		o := Refused(err)
		o.Policy, o.Rule, o.Approval, o.Task, o.Reasons = out.Policy, out.Rule, out.Approval, out.Task, out.Reasons
		o.Observed = out.Observed
		var rf *Refusal
		if errors.As(err, &rf) {
			err = nil
		}
		return o, err
	}
	out.Effect = Allow
	if !req.Opaque {
		var cerr error
		if out.Credential, cerr = e.credential(ctx, req, &out); cerr != nil {
			e.c.Log.ErrorContext(ctx, "prepare upstream credential", "request_id", req.ID, "target", req.Target.Ref, "credential", out.Credential.Name, "error", cerr)
			out.Class = NoCredential
			out.Message = fmt.Sprintf("the upstream credential of %s is unavailable: %v", req.Target.Ref, cerr)
			out.Reason = "upstream credential unavailable"
			return out, nil
		}
	}
	if err := e.journalDecision(req, &out); err != nil {
		e.c.Log.ErrorContext(ctx, "record access decision; request not forwarded", "request_id", req.ID, "error", err)
		out.Class = Unavailable
		out.Message = "the audit log could not record this access, so it was not made (writ fails closed); try again"
		return out, nil
	}
	return out, nil
}

// decide runs the checks and the policy decision, filling out; a refusal
// is returned as an error.
func (e *Enforcer) decide(ctx context.Context, req *Request, out *Outcome) error {
	c, t := req.Caller, req.Target
	now := e.c.Now()
	if err := e.Revoked(c); err != nil {
		return err
	}
	taskID := c.Task
	if h := req.Task; h != "" && taskID == "" {
		taskID = h
	} else if h != "" && h != taskID {
		return &Refusal{Class: Invalid, Message: fmt.Sprintf("the Writ-Task header names task %s but the access token is for task %s", h, taskID)}
	}
	var ptask policy.Task
	if taskID != "" {
		tk, err := e.openTask(ctx, c, taskID, now)
		if err != nil {
			return err
		}
		out.Task = tk
		ptask = policy.Task{ID: tk.ID, Purpose: tk.Purpose, OnBehalfOf: tk.OnBehalfOf, Calls: tk.Calls}
	}
	seen, err := e.touched(ctx, req, taskID)
	if err != nil {
		return err
	}
	if len(seen) > 0 {
		ptask.LabelsSeen = make([]string, len(seen))
		for i, f := range seen {
			ptask.LabelsSeen[i] = f.Label
		}
	}
	q := &req.question
	*q = policy.Request{
		Kind:         t.Kind,
		Subject:      policy.Subject{SpiffeID: c.SpiffeID, Labels: c.Labels},
		Instance:     c.Instance,
		Task:         ptask,
		TargetLabels: t.Labels,
		Source:       policy.Source{IP: hostOf(req.Source), Node: e.c.Node},
		Now:          now,
	}
	switch q.Kind {
	case policy.KindMCP:
		q.MCP = policy.MCPRequest{Server: t.Name, Tool: req.Tool, Resource: req.Resource, Prompt: req.Prompt, Args: req.Args}
	default:
		q.Kind = policy.KindHTTP
		q.HTTP = policy.HTTPRequest{Service: t.Name, Method: req.Method, Path: req.Path}
		if !req.Opaque {
			q.HTTP.Headers, q.HTTP.Query = req.Headers, firstValues(req.Query)
		}
	}
	dec := e.c.Policy.Decide(ctx, q)
	out.Policy, out.Rule, out.Reasons, out.Obligations = dec.Policy, dec.Rule, dec.Reasons, dec.Obligations
	out.Observed = dec.Observed
	if len(dec.Flow) > 0 && dec.Effect != policy.Allow {
		// Name the chain: which accesses brought the labels in.
		out.Reasons = append([]string{flowChain(req, taskID, seen, dec.Flow) + " by rule " + dec.Rule}, dec.Reasons...)
	}
	switch dec.Effect {
	case policy.Allow:
	case policy.ApprovalRequired:
		if err := e.awaitApproval(ctx, req, out); err != nil {
			return err
		}
	default:
		reason := strings.Join(out.Reasons, "; ")
		if dec.RetryAfter > 0 {
			return &Refusal{Class: RateLimited, Reason: reason, RetryAfter: time.Duration(dec.RetryAfter)}
		}
		return &Refusal{Class: Forbidden, Reason: reason}
	}
	if taskID != "" {
		if b := dec.Obligations.Budget; b > 0 && out.Task.Calls >= int64(b) {
			return deny(Forbidden, "task %s has made %d calls, the budget of rule %s", taskID, out.Task.Calls, dec.Rule)
		}
		tk, err := e.c.Tasks.Charge(ctx, taskID)
		if errors.Is(err, store.ErrPrecondition) {
			return deny(Forbidden, "task %s cannot make more calls (%s, %d of budget %d used)", taskID, tk.State, tk.Calls, tk.Budget)
		}
		if err != nil {
			return fmt.Errorf("charge task %s: %w", taskID, err)
		}
		out.Task = tk
	}
	// The target's labels count as touched once the access is allowed.
	if err := e.touch(ctx, req, taskID, now); err != nil {
		return err
	}
	return nil
}

// Revoked refuses a caller that the kill switch names: its SPIFFE ID,
// instance, token or task.
func (e *Enforcer) Revoked(c *Caller) error {
	rv := e.c.Revocations
	if rv == nil {
		return nil
	}
	for _, k := range [...]struct{ kind, val string }{
		{store.RevokeSpiffeID, c.SpiffeID}, {store.RevokeInstance, c.Instance},
		{store.RevokeToken, c.TokenID}, {store.RevokeTask, c.Task},
	} {
		if k.val != "" && rv.Revoked(k.kind, k.val) {
			return deny(Forbidden, "%s %s is revoked", strings.ReplaceAll(k.kind, "_", " "), k.val)
		}
	}
	return nil
}

// openTask returns the task a call claims to belong to, if it is open and
// belongs to the caller.
func (e *Enforcer) openTask(ctx context.Context, c *Caller, id string, now time.Time) (store.Task, error) {
	if e.c.Tasks == nil {
		return store.Task{}, deny(Forbidden, "this proxy has no task service; remove the Writ-Task header")
	}
	if e.c.Revocations != nil && e.c.Revocations.Revoked(store.RevokeTask, id) {
		return store.Task{}, deny(Forbidden, "task %s is revoked", id)
	}
	t, err := e.c.Tasks.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Task{}, deny(Forbidden, "task %s does not exist; open one with `writ task open`", id)
	}
	if err != nil {
		return store.Task{}, fmt.Errorf("get task %s: %w", id, err)
	}
	if err := task.Usable(t, c.SpiffeID, c.Instance); err != nil {
		return store.Task{}, deny(Forbidden, "%v", err)
	}
	switch {
	case t.State != store.TaskOpen:
		return store.Task{}, deny(Forbidden, "task %s is %s, not open", id, t.State)
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return store.Task{}, deny(Forbidden, "task %s expired at %s", id, t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return t, nil
}

// awaitApproval asks for a human decision and holds the access until it
// comes or the wait ends. The approval is bound to the exact call
// (Request.Binding) and used once, by this call. A caller that presents an
// approval granted for this call after an earlier attempt stopped waiting
// uses that one instead of asking again.
func (e *Enforcer) awaitApproval(ctx context.Context, req *Request, out *Outcome) error {
	ob := out.Obligations.Approval
	reason := strings.Join(out.Reasons, "; ")
	if e.c.Approvals == nil || ob == nil {
		return deny(Forbidden, "approval required (%s) but this proxy has no approval service", reason)
	}
	c := req.Caller
	binding := req.Binding()
	if req.Approval != "" {
		out.Approval = req.Approval
		return e.useApproval(ctx, req.Approval, binding, c.SpiffeID)
	}
	wait := e.c.ApprovalWait
	if t := time.Duration(ob.Timeout); t > 0 && t < wait {
		wait = t
	}
	a, err := e.c.Approvals.Request(ctx, approval.Spec{
		Kind: string(req.Target.Kind), SpiffeID: c.SpiffeID, Instance: c.Instance, Task: out.Task.ID, OnBehalfOf: out.Task.OnBehalfOf,
		Target: req.Target.Ref + " " + req.Method + " " + req.object(), Reason: reason, Policy: ob.Policy, Rule: ob.Rule,
		Approvers: ob.Approvers, Timeout: wait, Binding: binding,
	})
	if err != nil {
		return fmt.Errorf("request approval: %w", err)
	}
	out.Approval = a.ID
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	res, err := e.c.Approvals.Wait(wctx, a.ID)
	if err == nil && res.State == store.ApprovalApproved {
		return e.useApproval(ctx, a.ID, binding, c.SpiffeID)
	}
	state := res.State
	if err != nil {
		state = "not decided within " + wait.String()
	}
	return deny(Forbidden, "approval %s: %s", a.ID, state)
}

// useApproval spends approval id on the call bound as binding.
func (e *Enforcer) useApproval(ctx context.Context, id, binding, caller string) error {
	_, err := e.c.Approvals.Use(ctx, id, binding, caller)
	if errors.Is(err, approval.ErrNotUsable) {
		return deny(Forbidden, "%v", err)
	}
	if err != nil {
		return fmt.Errorf("use approval %s: %w", id, err)
	}
	return nil
}

func firstValues(q map[string][]string) map[string]string {
	if len(q) == 0 {
		return nil
	}
	out := make(map[string]string, len(q))
	for k, v := range q {
		if len(v) > 0 {
			out[k] = v[0]
		}
	}
	return out
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
