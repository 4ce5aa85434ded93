package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/store"
)

// MCP is the MCP gateway's administration: its pins, approvals of
// quarantined tools, and the servers it serves.
type MCP interface {
	Pins(ctx context.Context, server string) ([]store.Pin, error)
	Approve(ctx context.Context, server, tool, actor string) (store.Pin, error)
	Servers() []apitypes.MCPServer
	// Tools lists a server's tools afresh from its upstream, as announced;
	// an unknown server is store.ErrNotFound.
	Tools(ctx context.Context, server string) (apitypes.MCPTools, error)
}

// PinToAPI maps a pin to its wire form.
func PinToAPI(p store.Pin) apitypes.MCPPin {
	return apitypes.MCPPin{Server: p.Server, Tool: p.Tool, State: p.State, Digest: p.Digest, Observed: p.Observed,
		Reason: p.Reason, Actor: p.Actor, FirstSeen: p.FirstSeen, UpdatedAt: p.UpdatedAt}
}

func (a *API) listPins(w http.ResponseWriter, r *http.Request) {
	list, err := a.c.MCP.Pins(r.Context(), r.URL.Query().Get("server"))
	if err != nil {
		a.fail(w, r, "list MCP pins", err)
		return
	}
	WriteJSON(w, http.StatusOK, mapList(list, PinToAPI))
}

func (a *API) approvePin(w http.ResponseWriter, r *http.Request) {
	server, tool := r.PathValue("server"), r.PathValue("tool")
	p, err := a.c.MCP.Approve(r.Context(), server, tool, Actor(r.Context()))
	switch {
	case errors.Is(err, store.ErrNotFound):
		err = notFound("tool %s of MCP server %s: no pin; see `writ mcp pins %s`", tool, server, server)
	case errors.Is(err, store.ErrPrecondition):
		err = conflict("tool %s of MCP server %s is %s, not quarantined: nothing to approve", tool, server, p.State)
	}
	if err != nil {
		a.fail(w, r, "approve MCP tool", err)
		return
	}
	WriteJSON(w, http.StatusOK, PinToAPI(p))
}

func (a *API) listMCPServers(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, a.c.MCP.Servers())
}

func (a *API) listMCPTools(w http.ResponseWriter, r *http.Request) {
	server := r.PathValue("server")
	list, err := a.c.MCP.Tools(r.Context(), server)
	if errors.Is(err, store.ErrNotFound) {
		err = notFound("MCP server %q: not served; see `writ mcp servers`", server)
	}
	if err != nil {
		a.fail(w, r, "list MCP tools", err)
		return
	}
	WriteJSON(w, http.StatusOK, list)
}
