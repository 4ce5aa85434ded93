package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/approval"
	"github.com/writ-dev/writ/internal/store"
)

// Approvals is the approval service.
type Approvals interface {
	Get(ctx context.Context, id string) (store.Approval, error)
	List(ctx context.Context, state string) ([]store.Approval, error)
	Decide(ctx context.Context, id string, approve bool, actor, comment string) (store.Approval, error)
	// Wait blocks until approval id is decided or ctx ends.
	Wait(ctx context.Context, id string) (store.Approval, error)
}

// ApprovalToAPI maps a stored approval request to its wire form.
func ApprovalToAPI(a store.Approval) apitypes.Approval {
	return apitypes.Approval{ID: a.ID, Kind: a.Kind, SpiffeID: a.SpiffeID, Instance: a.Instance, Task: a.Task,
		OnBehalfOf: a.OnBehalfOf, Target: a.Target, Reason: a.Reason, Policy: a.Policy, Rule: a.Rule, Approvers: a.Approvers,
		State: a.State, CreatedAt: a.CreatedAt, ExpiresAt: a.ExpiresAt, DecidedAt: a.DecidedAt, DecidedBy: a.DecidedBy, Comment: a.Comment,
		Binding: a.Binding, UsedAt: a.UsedAt}
}

func (a *API) listApprovals(w http.ResponseWriter, r *http.Request) {
	list, err := a.c.Approvals.List(r.Context(), r.URL.Query().Get("state"))
	if err != nil {
		WriteError(w, badRequest("%v", err))
		return
	}
	WriteJSON(w, http.StatusOK, mapList(list, ApprovalToAPI))
}

func (a *API) getApproval(w http.ResponseWriter, r *http.Request) {
	ap, err := a.c.Approvals.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		WriteError(w, notFound("no approval request %q", r.PathValue("id")))
		return
	}
	if err != nil {
		a.fail(w, r, "get approval", err)
		return
	}
	WriteJSON(w, http.StatusOK, ApprovalToAPI(ap))
}

// approver authenticates who decides an approval: an operator (the admin
// credential), or a workload by its X.509-SVID or JWT-SVID, which the
// approval service accepts only when the request names it an approver.
func (a *API) approver(w http.ResponseWriter, r *http.Request) (string, bool) {
	if actor, ok := a.c.Admin.ActorOf(r); ok {
		return actor, true
	}
	c, err := a.c.Agents.Request(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="writ"`)
		WriteError(w, errorf(http.StatusUnauthorized, apitypes.CodeUnauthorized, "%v", err))
		return "", false
	}
	return c.ID.String(), true
}

func (a *API) decide(w http.ResponseWriter, r *http.Request, approve bool) {
	var req apitypes.DecideRequest
	if r.ContentLength != 0 {
		if err := DecodeJSON(r, &req); err != nil {
			WriteError(w, err)
			return
		}
	}
	id := r.PathValue("id")
	actor, ok := a.approver(w, r)
	if !ok {
		return
	}
	ap, err := a.c.Approvals.Decide(r.Context(), id, approve, actor, req.Comment)
	switch {
	case errors.Is(err, approval.ErrSelfApproval):
		WriteError(w, errorf(http.StatusForbidden, apitypes.CodeForbidden, "%s asked for approval %s and cannot decide it; another approver must", actor, id))
	case errors.Is(err, approval.ErrNotApprover):
		WriteError(w, errorf(http.StatusForbidden, apitypes.CodeForbidden, "%s is not among the approvers of %s: its %s (group names compare exactly)", actor, id, approval.ApproversText(ap)))
	case errors.Is(err, store.ErrNotFound):
		WriteError(w, notFound("no approval request %q (see writ approval list)", id))
	case errors.Is(err, store.ErrPrecondition):
		WriteError(w, conflict("approval %s is already %s", id, ap.State))
	case err == nil && ap.State == store.ApprovalExpired:
		WriteError(w, conflict("approval %s expired before the decision", id))
	case err != nil:
		a.fail(w, r, "decide approval", err)
	default:
		WriteJSON(w, http.StatusOK, ApprovalToAPI(ap))
	}
}
