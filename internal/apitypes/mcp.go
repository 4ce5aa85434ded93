package apitypes

import (
	"encoding/json"
	"time"
)

// MCPPin is one tool pin of the MCP gateway (GET /v1/mcp/pins).
type MCPPin struct {
	Server string `json:"server"`
	Tool   string `json:"tool"`
	// State is pinned, quarantined or approved.
	State string `json:"state"`
	// Digest is the trusted descriptor digest; Observed the one announced
	// last (they differ while the tool is quarantined for a change).
	Digest    string    `json:"digest,omitempty"`
	Observed  string    `json:"observed"`
	Reason    string    `json:"reason,omitempty"`
	Actor     string    `json:"actor,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
	UpdatedAt time.Time `json:"updated_at"`
}

// MCPServer is one MCPServer the gateway serves (GET /v1/mcp/servers).
type MCPServer struct {
	Name    string `json:"name"`
	Version int64  `json:"version"`
	// Upstream is the URL, or the command of a stdio server.
	Upstream string `json:"upstream"`
	Pin      string `json:"pin"`
	// Connected reports a live upstream session; Starts counts them.
	Connected bool `json:"connected"`
	Starts    int  `json:"starts"`
	// Tools and Quarantined count the usable and the refused tools.
	Tools       int `json:"tools"`
	Quarantined int `json:"quarantined"`
}

// MCPTools is every tool an MCPServer's upstream announces, quarantined
// ones included, as it announces them (GET /v1/mcp/servers/{name}/tools):
// a tools/list result that `writ mcp lint --server` lints.
type MCPTools struct {
	Server string            `json:"server"`
	Tools  []json.RawMessage `json:"tools"`
}
