package nodeserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/writ-dev/writ/internal/approval"
	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/store"
)

// MCP is what the node API needs of the server's MCP side for the
// gateways on nodes.
type MCP interface {
	// CheckTools checks the tools the upstream of MCPServer server
	// announced to node against the deployment's pins, as the server's
	// own gateway would (pinning, quarantining, linting, recording the
	// events with the node's name). An error wrapping store.ErrNotFound
	// names a server that is not stored.
	CheckTools(ctx context.Context, node, server string, tools []json.RawMessage) (map[string]nodeapi.MCPVerdict, error)
	// Credential returns the credential name, if an MCPServer or Service
	// document names it; an error wrapping ErrNotNamed otherwise.
	Credential(ctx context.Context, node, name string) (nodeapi.MCPCredentialAnswer, error)
}

// ErrNotNamed refuses a node a credential no MCPServer or Service names.
var ErrNotNamed = errors.New("no MCPServer or Service document names this credential")

// Approvals is the server's approval service as nodes use it
// (approval.Service).
type Approvals interface {
	Request(ctx context.Context, sp approval.Spec) (store.Approval, error)
	Get(ctx context.Context, id string) (store.Approval, error)
	Wait(ctx context.Context, id string) (store.Approval, error)
	Use(ctx context.Context, id, binding, caller string) (store.Approval, error)
}

func (a *API) registerMCP(mux *http.ServeMux) {
	mux.HandleFunc("POST "+nodeapi.PathMCPCheck, a.node(a.mcpCheck))
	mux.HandleFunc("POST "+nodeapi.PathMCPCredential, a.node(a.mcpCredential))
	mux.HandleFunc("POST "+nodeapi.PathApprovalCreate, a.node(a.approvalCreate))
	mux.HandleFunc("POST "+nodeapi.PathApprovalWait, a.node(a.approvalWait))
	mux.HandleFunc("POST "+nodeapi.PathApprovalUse, a.node(a.approvalUse))
}

func (a *API) mcpCheck(w http.ResponseWriter, r *http.Request, n nodeID) {
	if a.c.MCP == nil {
		fail(w, http.StatusNotImplemented, "this server does not check MCP tools for nodes")
		return
	}
	var req nodeapi.MCPCheckRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 32<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, "request body: %v", err)
		return
	}
	if req.Server == "" || strings.ContainsAny(req.Server, "/\x00") {
		fail(w, http.StatusBadRequest, "server %q: not an MCPServer name", req.Server)
		return
	}
	if len(req.Tools) > nodeapi.MaxMCPCheckTools {
		fail(w, http.StatusRequestEntityTooLarge, "%d tools: at most %d per check", len(req.Tools), nodeapi.MaxMCPCheckTools)
		return
	}
	vs, err := a.c.MCP.CheckTools(r.Context(), n.name, req.Server, req.Tools)
	switch {
	case errors.Is(err, store.ErrNotFound):
		fail(w, http.StatusNotFound, "%v", err)
		return
	case err != nil:
		a.c.Log.Error("check a node's MCP tools", "node", n.name, "server", req.Server, "error", err)
		fail(w, http.StatusServiceUnavailable, "MCP tools of %s not checked; retry", req.Server)
		return
	}
	reply(w, nodeapi.MCPCheckAnswer{Verdicts: vs})
}

func (a *API) mcpCredential(w http.ResponseWriter, r *http.Request, n nodeID) {
	if a.c.MCP == nil {
		fail(w, http.StatusNotImplemented, "this server does not hand MCP credentials to nodes")
		return
	}
	var req nodeapi.MCPCredentialRequest
	if !decode(w, r, &req) {
		return
	}
	ans, err := a.c.MCP.Credential(r.Context(), n.name, req.Name)
	switch {
	case errors.Is(err, ErrNotNamed):
		fail(w, http.StatusForbidden, "credential %q: %v", req.Name, err)
		return
	case errors.Is(err, store.ErrNotFound):
		fail(w, http.StatusNotFound, "credential %q: not in the broker (writ credential set)", req.Name)
		return
	case err != nil:
		a.c.Log.Error("hand a node an MCP credential", "node", n.name, "credential", req.Name, "error", err)
		fail(w, http.StatusServiceUnavailable, "credential %q: not available; retry", req.Name)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	reply(w, ans)
}

func (a *API) approvals(w http.ResponseWriter) bool {
	if a.c.Approvals == nil {
		fail(w, http.StatusNotImplemented, "this server has no approval service for nodes")
		return false
	}
	return true
}

func (a *API) approvalCreate(w http.ResponseWriter, r *http.Request, n nodeID) {
	var req nodeapi.ApprovalRequest
	if !a.approvals(w) || !decode(w, r, &req) {
		return
	}
	ap, err := a.c.Approvals.Request(r.Context(), approval.Spec{Kind: req.Kind, SpiffeID: req.SpiffeID, Instance: req.Instance,
		Task: req.Task, OnBehalfOf: req.OnBehalfOf, Target: req.Target + " (node " + n.name + ")", Reason: req.Reason, Policy: req.Policy,
		Rule: req.Rule, Approvers: req.Approvers, Timeout: req.Timeout, Binding: req.Binding})
	if err != nil {
		a.c.Log.Error("file a node's approval request", "node", n.name, "error", err)
		fail(w, http.StatusServiceUnavailable, "approval request not filed: %v", err)
		return
	}
	reply(w, ap)
}

func (a *API) approvalWait(w http.ResponseWriter, r *http.Request, n nodeID) {
	var req nodeapi.ApprovalWaitRequest
	if !a.approvals(w) || !decode(w, r, &req) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), nodeapi.MaxApprovalWait)
	defer cancel()
	ap, err := a.c.Approvals.Wait(ctx, req.ID)
	if err != nil && ctx.Err() != nil && r.Context().Err() == nil {
		// Not decided through this server within MaxApprovalWait: as the
		// store has it (decided through another server on the same store,
		// or still pending, and the node asks again).
		ap, err = a.c.Approvals.Get(r.Context(), req.ID)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		fail(w, http.StatusNotFound, "approval %q: no such approval", req.ID)
		return
	case err != nil:
		fail(w, http.StatusServiceUnavailable, "approval %q: %v", req.ID, err)
		return
	}
	reply(w, ap)
}

func (a *API) approvalUse(w http.ResponseWriter, r *http.Request, n nodeID) {
	var req nodeapi.ApprovalUseRequest
	if !a.approvals(w) || !decode(w, r, &req) {
		return
	}
	ap, err := a.c.Approvals.Use(r.Context(), req.ID, req.Binding, req.Caller)
	switch {
	case errors.Is(err, approval.ErrNotUsable):
		fail(w, http.StatusConflict, "%v", err)
		return
	case err != nil:
		fail(w, http.StatusServiceUnavailable, "use approval %q: %v", req.ID, err)
		return
	}
	reply(w, ap)
}
