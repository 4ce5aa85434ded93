package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/httpapi"
	"github.com/writ-dev/writ/internal/revoke"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/task"
	"github.com/writ-dev/writ/internal/token"
)

// tokenRoutes registers the OAuth endpoints, the agent-facing tasks API
// (agent authentication: X.509-SVID over mTLS or a JWT-SVID bearer; an
// operator's admin credential is accepted too) and the admin-only kill
// switch and approval queue.
func (s *Server) tokenRoutes(mux *http.ServeMux, admin func(string, http.HandlerFunc)) {
	s.tok.issuer.Register(mux, s.adminActor)
	mux.HandleFunc("POST /v1/tasks", s.handleOpenTask)
	mux.HandleFunc("GET /v1/tasks", s.handleListTasks)
	mux.HandleFunc("GET /v1/tasks/{id}", s.handleGetTask)
	mux.HandleFunc("POST /v1/tasks/{id}/close", s.handleCloseTask)
	admin("POST /v1/revoke", s.handleRevoke)
	admin("GET /v1/revocations", s.handleListRevocations)
	admin("GET /v1/approvals", s.handleListApprovals)
	admin("GET /v1/approvals/{id}", s.handleGetApproval)
	admin("POST /v1/approvals/{id}/approve", func(w http.ResponseWriter, r *http.Request) { s.handleDecide(w, r, true) })
	admin("POST /v1/approvals/{id}/deny", func(w http.ResponseWriter, r *http.Request) { s.handleDecide(w, r, false) })
}

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
	return w.admin != "" || (t.SpiffeID == w.agent.ID.String() && (t.Instance == "" || t.Instance == w.agent.Instance))
}

func (s *Server) taskCaller(w http.ResponseWriter, r *http.Request) (who, bool) {
	if a, ok := s.adminActor(r); ok {
		return who{admin: a}, true
	}
	c, err := s.tok.auth.Request(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="writ"`)
		httpapi.WriteError(w, httpapi.Errorf(http.StatusUnauthorized, httpapi.CodeUnauthorized, "%v", err))
		return who{}, false
	}
	return who{agent: c}, true
}

func (s *Server) handleOpenTask(w http.ResponseWriter, r *http.Request) {
	caller, ok := s.taskCaller(w, r)
	if !ok {
		return
	}
	var req OpenTaskRequest
	if err := httpapi.DecodeJSON(r, &req); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	sub := task.Subject{SpiffeID: caller.agent.ID.String(), Instance: caller.agent.Instance, Labels: caller.agent.Labels}
	if caller.admin != "" {
		id, err := spiffeid.FromString(req.SpiffeID)
		if err != nil {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"spiffe_id %q: %v; an operator opening a task names the agent", req.SpiffeID, err))
			return
		}
		sub = task.Subject{SpiffeID: id.String(), Instance: req.Instance, Labels: s.identityLabels(id.String())}
	} else if req.SpiffeID != "" && req.SpiffeID != sub.SpiffeID || req.Instance != "" && req.Instance != sub.Instance {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden,
			"an agent opens tasks for itself (%s); leave spiffe_id and instance out", sub.SpiffeID))
		return
	}
	var dur time.Duration
	if req.MaxDuration != "" {
		var err error
		if dur, err = time.ParseDuration(req.MaxDuration); err != nil || dur <= 0 {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
				"max_duration %q is not a positive duration such as 30m", req.MaxDuration))
			return
		}
	}
	t, err := s.tok.tasks.Open(r.Context(), sub, task.OpenRequest{Purpose: req.Purpose, OnBehalfOf: req.OnBehalfOf, Groups: req.Groups,
		Audiences: req.Audiences, Scopes: req.Scopes, Duration: dur, Budget: req.Budget}, r.RemoteAddr)
	var de *task.DeniedError
	switch {
	case errors.As(err, &de):
		httpapi.WriteError(w, httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "task %s denied: %s", de.Task.ID, de.Reason))
	case errors.Is(err, task.ErrInvalid):
		httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "%v", err))
	case err != nil:
		s.logInternal(r, "open task", err)
		httpapi.WriteError(w, err)
	case t.State == store.TaskPending:
		httpapi.WriteJSON(w, http.StatusAccepted, t)
	default:
		httpapi.WriteJSON(w, http.StatusCreated, t)
	}
}

func (s *Server) handleListTasks(w http.ResponseWriter, r *http.Request) {
	caller, ok := s.taskCaller(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := store.TaskFilter{SpiffeID: q.Get("spiffe_id"), Instance: q.Get("instance"), State: q.Get("state")}
	if caller.admin == "" {
		f.SpiffeID = caller.agent.ID.String()
	}
	list, err := s.tok.tasks.List(r.Context(), f)
	writeList(s, w, r, "list tasks", list, err)
}

// handleGetTask returns a task; with ?wait=DURATION (at most 5m) it first
// waits for a pending task's approval to be decided.
func (s *Server) handleGetTask(w http.ResponseWriter, r *http.Request) {
	caller, ok := s.taskCaller(w, r)
	if !ok {
		return
	}
	t, ok := s.getOwnedTask(w, r, caller)
	if !ok {
		return
	}
	if ws := r.URL.Query().Get("wait"); ws != "" && t.State == store.TaskPending && t.Approval != "" {
		d, err := time.ParseDuration(ws)
		if err != nil || d <= 0 || d > 5*time.Minute {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "wait %q must be a duration up to 5m", ws))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		_, err = s.tok.approvals.Wait(ctx, t.Approval)
		cancel()
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			if t, ok = s.getOwnedTask(w, r, caller); !ok {
				return
			}
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, t)
}

func (s *Server) getOwnedTask(w http.ResponseWriter, r *http.Request, caller who) (store.Task, bool) {
	id := r.PathValue("id")
	t, err := s.tok.tasks.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !caller.owns(t)) {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "no task %q (list yours with GET /v1/tasks)", id))
		return store.Task{}, false
	}
	if err != nil {
		s.logInternal(r, "get task", err)
		httpapi.WriteError(w, err)
		return store.Task{}, false
	}
	return t, true
}

// CloseTaskRequest is the optional body of POST /v1/tasks/{id}/close.
type CloseTaskRequest struct {
	Reason string `json:"reason,omitempty"`
}

func (s *Server) handleCloseTask(w http.ResponseWriter, r *http.Request) {
	caller, ok := s.taskCaller(w, r)
	if !ok {
		return
	}
	t, ok := s.getOwnedTask(w, r, caller)
	if !ok {
		return
	}
	var req CloseTaskRequest
	if r.ContentLength != 0 {
		if err := httpapi.DecodeJSON(r, &req); err != nil {
			httpapi.WriteError(w, err)
			return
		}
	}
	t, err := s.tok.tasks.Close(r.Context(), t.ID, caller.actor(), req.Reason)
	if errors.Is(err, store.ErrPrecondition) {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusConflict, httpapi.CodeConflict, "task %s is already %s", t.ID, t.State))
		return
	}
	if err != nil {
		s.logInternal(r, "close task", err)
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, t)
}

// RevokeRequest is the body of POST /v1/revoke.
type RevokeRequest struct {
	Kind   string `json:"kind"` // spiffe_id, instance, task or token
	Value  string `json:"value"`
	Reason string `json:"reason,omitempty"`
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	var req RevokeRequest
	if err := httpapi.DecodeJSON(r, &req); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	if !revoke.ValidKind(req.Kind) {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest,
			"kind %q is not one of spiffe_id, instance, task, token", req.Kind))
		return
	}
	if req.Kind == store.RevokeSpiffeID {
		if _, err := spiffeid.FromString(req.Value); err != nil {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "value %q is not a SPIFFE ID: %v", req.Value, err))
			return
		}
	}
	rv, created, err := s.tok.revoke.Revoke(r.Context(), store.Revocation{Kind: req.Kind, Value: req.Value, Reason: req.Reason, Actor: actor(r.Context())})
	if err != nil && !errors.Is(err, revoke.ErrNotAudited) {
		if rv.Kind == "" {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "%v", err))
			return
		}
		s.logInternal(r, "revoke", err)
		httpapi.WriteError(w, err)
		return
	}
	if err != nil {
		s.logInternal(r, "audit revocation", err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpapi.WriteJSON(w, status, rv)
}

func (s *Server) handleListRevocations(w http.ResponseWriter, r *http.Request) {
	list, err := s.db.ListRevocations(r.Context(), s.now())
	writeList(s, w, r, "list revocations", list, err)
}

func (s *Server) handleListApprovals(w http.ResponseWriter, r *http.Request) {
	list, err := s.tok.approvals.List(r.Context(), r.URL.Query().Get("state"))
	if err != nil {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "%v", err))
		return
	}
	if list == nil {
		list = []store.Approval{}
	}
	httpapi.WriteJSON(w, http.StatusOK, list)
}

func (s *Server) handleGetApproval(w http.ResponseWriter, r *http.Request) {
	a, err := s.tok.approvals.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "no approval request %q", r.PathValue("id")))
		return
	}
	if err != nil {
		s.logInternal(r, "get approval", err)
		httpapi.WriteError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, a)
}

// DecideRequest is the optional body of POST /v1/approvals/{id}/approve|deny.
type DecideRequest struct {
	Comment string `json:"comment,omitempty"`
}

func (s *Server) handleDecide(w http.ResponseWriter, r *http.Request, approve bool) {
	var req DecideRequest
	if r.ContentLength != 0 {
		if err := httpapi.DecodeJSON(r, &req); err != nil {
			httpapi.WriteError(w, err)
			return
		}
	}
	id := r.PathValue("id")
	a, err := s.tok.approvals.Decide(r.Context(), id, approve, actor(r.Context()), req.Comment)
	switch {
	case errors.Is(err, store.ErrNotFound):
		httpapi.WriteError(w, httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "no approval request %q (see writ approval list)", id))
	case errors.Is(err, store.ErrPrecondition):
		httpapi.WriteError(w, httpapi.Errorf(http.StatusConflict, httpapi.CodeConflict, "approval %s is already %s", id, a.State))
	case err == nil && a.State == store.ApprovalExpired:
		httpapi.WriteError(w, httpapi.Errorf(http.StatusConflict, httpapi.CodeConflict, "approval %s expired before the decision", id))
	case err != nil:
		s.logInternal(r, "decide approval", err)
		httpapi.WriteError(w, err)
	default:
		httpapi.WriteJSON(w, http.StatusOK, a)
	}
}
