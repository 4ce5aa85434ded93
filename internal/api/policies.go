package api

import (
	"context"
	"net/http"

	"github.com/writ-dev/writ/internal/apitypes"
)

// Policies reports the stored AccessPolicies as they decide (mode, digest,
// observe-mode counts) and promotes observed ones.
type Policies interface {
	ListPolicies(ctx context.Context) ([]apitypes.PolicyStatus, error)
	// GetPolicy returns store.ErrNotFound for an unknown name.
	GetPolicy(ctx context.Context, name string) (apitypes.PolicyStatus, error)
	// Promote makes the observed policy name enforcing when its digest is
	// expect; errors are apitypes.Error for what the caller must fix.
	Promote(ctx context.Context, actor, name, expect string) (apitypes.PromoteResponse, error)
	// Replay re-decides the traffic recorded since the observed version of
	// name was applied with the set its promotion would leave.
	Replay(ctx context.Context, name string, req apitypes.PolicyReplayRequest) (apitypes.PolicyReplay, error)
}

func (a *API) replayPolicy(w http.ResponseWriter, r *http.Request) {
	var req apitypes.PolicyReplayRequest
	if err := DecodeJSON(r, &req); err != nil {
		WriteError(w, err)
		return
	}
	name := r.PathValue("name")
	resp, err := a.c.Policies.Replay(r.Context(), name, req)
	if err != nil {
		a.fail(w, r, "replay policy", storeError("AccessPolicy/"+name, err))
		return
	}
	WriteJSON(w, http.StatusOK, resp)
}

func (a *API) listPolicies(w http.ResponseWriter, r *http.Request) {
	list, err := a.c.Policies.ListPolicies(r.Context())
	writeList(a, w, r, "list policies", list, err)
}

func (a *API) getPolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	p, err := a.c.Policies.GetPolicy(r.Context(), name)
	if err != nil {
		a.fail(w, r, "get policy", storeError("AccessPolicy/"+name, err))
		return
	}
	WriteJSON(w, http.StatusOK, p)
}

func (a *API) promotePolicy(w http.ResponseWriter, r *http.Request) {
	var req apitypes.PromoteRequest
	if err := DecodeJSON(r, &req); err != nil {
		WriteError(w, err)
		return
	}
	name := r.PathValue("name")
	resp, err := a.c.Policies.Promote(r.Context(), Actor(r.Context()), name, req.ExpectDigest)
	if err != nil {
		a.fail(w, r, "promote policy", storeError("AccessPolicy/"+name, err))
		return
	}
	WriteJSON(w, http.StatusOK, resp)
}
