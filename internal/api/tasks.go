package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/task"
	"github.com/writ-dev/writ/internal/token"
)

// Tasks is the task service.
type Tasks interface {
	Open(ctx context.Context, sub task.Subject, req task.OpenRequest, source string) (store.Task, error)
	Get(ctx context.Context, id string) (store.Task, error)
	List(ctx context.Context, f store.TaskFilter) ([]store.Task, error)
	Close(ctx context.Context, id, actor, reason string) (store.Task, error)
}

// AgentAuthenticator identifies an agent calling the tasks API, and gives
// the labels of an identity an operator opens a task for.
type AgentAuthenticator interface {
	Request(r *http.Request) (token.Caller, error)
	Labels(spiffeID string) map[string]string
}

// TaskToAPI maps a stored task to its wire form.
func TaskToAPI(t store.Task) apitypes.Task {
	return apitypes.Task{ID: t.ID, SpiffeID: t.SpiffeID, Instance: t.Instance, BindInstance: t.BindInstance, Purpose: t.Purpose, OnBehalfOf: t.OnBehalfOf,
		Audiences: t.Audiences, Scopes: t.Scopes, State: t.State, Budget: t.Budget, Calls: t.Calls, Policy: t.Policy,
		Rule: t.Rule, Approval: t.Approval, Reason: t.Reason, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, ClosedAt: t.ClosedAt}
}

// who is the authenticated caller of a tasks route.
type who struct {
	admin string // "admin:ID" for an operator
	agent token.Caller
}

func (w who) actor() string {
	if w.admin != "" {
		return w.admin
	}
	return w.agent.ID.String()
}

// owns reports whether the caller may see and close t.
func (w who) owns(t store.Task) bool {
	return w.admin != "" || task.Usable(t, w.agent.ID.String(), w.agent.Instance) == nil
}

func (a *API) taskCaller(w http.ResponseWriter, r *http.Request) (who, bool) {
	if ac, ok := a.c.Admin.ActorOf(r); ok {
		return who{admin: ac}, true
	}
	c, err := a.c.Agents.Request(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="writ"`)
		WriteError(w, errorf(http.StatusUnauthorized, apitypes.CodeUnauthorized, "%v", err))
		return who{}, false
	}
	return who{agent: c}, true
}

func (a *API) openTask(w http.ResponseWriter, r *http.Request) {
	caller, ok := a.taskCaller(w, r)
	if !ok {
		return
	}
	var req apitypes.OpenTaskRequest
	if err := DecodeJSON(r, &req); err != nil {
		WriteError(w, err)
		return
	}
	sub := task.Subject{SpiffeID: caller.agent.ID.String(), Instance: caller.agent.Instance, Labels: caller.agent.Labels}
	if caller.admin != "" {
		id, err := spiffeid.FromString(req.SpiffeID)
		if err != nil {
			WriteError(w, badRequest("spiffe_id %q: %v; an operator opening a task names the agent", req.SpiffeID, err))
			return
		}
		sub = task.Subject{SpiffeID: id.String(), Instance: req.Instance, Labels: a.c.Agents.Labels(id.String())}
	} else if req.SpiffeID != "" && req.SpiffeID != sub.SpiffeID || req.Instance != "" && req.Instance != sub.Instance {
		WriteError(w, errorf(http.StatusForbidden, apitypes.CodeForbidden,
			"an agent opens tasks for itself (%s); leave spiffe_id and instance out", sub.SpiffeID))
		return
	}
	var dur time.Duration
	if req.MaxDuration != "" {
		var err error
		if dur, err = time.ParseDuration(req.MaxDuration); err != nil || dur <= 0 {
			WriteError(w, badRequest("max_duration %q is not a positive duration such as 30m", req.MaxDuration))
			return
		}
	}
	t, err := a.c.Tasks.Open(r.Context(), sub, task.OpenRequest{Purpose: req.Purpose, OnBehalfOf: req.OnBehalfOf, Groups: req.Groups,
		Audiences: req.Audiences, Scopes: req.Scopes, Duration: dur, Budget: req.Budget, BindInstance: req.BindInstance}, r.RemoteAddr)
	var de *task.DeniedError
	switch {
	case errors.As(err, &de):
		WriteError(w, errorf(http.StatusForbidden, apitypes.CodeForbidden, "task %s denied: %s", de.Task.ID, de.Reason))
	case errors.Is(err, task.ErrInvalid):
		WriteError(w, badRequest("%v", err))
	case err != nil:
		a.fail(w, r, "open task", err)
	case t.State == store.TaskPending:
		WriteJSON(w, http.StatusAccepted, TaskToAPI(t))
	default:
		WriteJSON(w, http.StatusCreated, TaskToAPI(t))
	}
}

func (a *API) listTasks(w http.ResponseWriter, r *http.Request) {
	caller, ok := a.taskCaller(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := store.TaskFilter{SpiffeID: q.Get("spiffe_id"), Instance: q.Get("instance"), State: q.Get("state")}
	if caller.admin == "" {
		f.SpiffeID = caller.agent.ID.String()
	}
	list, err := a.c.Tasks.List(r.Context(), f)
	writeList(a, w, r, "list tasks", mapList(list, TaskToAPI), err)
}

// getTask returns a task; with ?wait=DURATION (at most 5m) it first waits
// for a pending task's approval to be decided.
func (a *API) getTask(w http.ResponseWriter, r *http.Request) {
	caller, ok := a.taskCaller(w, r)
	if !ok {
		return
	}
	t, ok := a.getOwnedTask(w, r, caller)
	if !ok {
		return
	}
	if ws := r.URL.Query().Get("wait"); ws != "" && t.State == store.TaskPending && t.Approval != "" {
		d, err := time.ParseDuration(ws)
		if err != nil || d <= 0 || d > 5*time.Minute {
			WriteError(w, badRequest("wait %q must be a duration up to 5m", ws))
			return
		}
		sctx, end := a.streams.begin(r)
		ctx, cancel := context.WithTimeout(sctx, d)
		_, err = a.c.Approvals.Wait(ctx, t.Approval)
		cancel()
		shutdown := sctx.Err() != nil && r.Context().Err() == nil
		end()
		// At shutdown, answer with the task as it is now.
		if err == nil || errors.Is(err, context.DeadlineExceeded) || shutdown {
			if t, ok = a.getOwnedTask(w, r, caller); !ok {
				return
			}
		}
	}
	WriteJSON(w, http.StatusOK, TaskToAPI(t))
}

func (a *API) getOwnedTask(w http.ResponseWriter, r *http.Request, caller who) (store.Task, bool) {
	id := r.PathValue("id")
	t, err := a.c.Tasks.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !caller.owns(t)) {
		WriteError(w, notFound("no task %q (list yours with GET /v1/tasks)", id))
		return store.Task{}, false
	}
	if err != nil {
		a.fail(w, r, "get task", err)
		return store.Task{}, false
	}
	return t, true
}

func (a *API) closeTask(w http.ResponseWriter, r *http.Request) {
	caller, ok := a.taskCaller(w, r)
	if !ok {
		return
	}
	t, ok := a.getOwnedTask(w, r, caller)
	if !ok {
		return
	}
	var req apitypes.CloseTaskRequest
	if r.ContentLength != 0 {
		if err := DecodeJSON(r, &req); err != nil {
			WriteError(w, err)
			return
		}
	}
	t, err := a.c.Tasks.Close(r.Context(), t.ID, caller.actor(), req.Reason)
	if errors.Is(err, store.ErrPrecondition) {
		WriteError(w, conflict("task %s is already %s", t.ID, t.State))
		return
	}
	if err != nil {
		a.fail(w, r, "close task", err)
		return
	}
	WriteJSON(w, http.StatusOK, TaskToAPI(t))
}
