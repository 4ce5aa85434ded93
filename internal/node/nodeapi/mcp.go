package nodeapi

import (
	"encoding/json"
	"time"
)

// Paths of a node's MCP gateway: the server checks the tools a node's
// upstreams announce against the deployment's pins (so that a rug pull
// seen on one node quarantines the tool everywhere), hands out the
// upstream credentials MCPServers name, and files, waits for and spends
// the human approvals a node's held calls ask for (decided on the server,
// in its console or API).
const (
	PathMCPCheck       = "/node/v1/mcp/check"
	PathMCPCredential  = "/node/v1/mcp/credential"
	PathApprovalCreate = "/node/v1/approvals/request"
	PathApprovalWait   = "/node/v1/approvals/wait"
	PathApprovalUse    = "/node/v1/approvals/use"
)

// KindPin is the change kind of an MCP tool pin (Body: store.Pin, Key
// SERVER/TOOL; delete = the pin was removed).
const KindPin = "pin"

// PinKey is the change key of the pin of tool of MCP server server.
func PinKey(server, tool string) string { return server + "/" + tool }

// MCPCheckRequest is the body of PathMCPCheck: the tools the upstream of
// MCPServer Server announced to the node, as the node's gateway decoded
// them (mcp.Descriptor, JSON).
type MCPCheckRequest struct {
	Server string            `json:"server"`
	Tools  []json.RawMessage `json:"tools"`
}

// MaxMCPCheckTools bounds one check.
const MaxMCPCheckTools = 10_000

// MCPVerdict is the server's verdict on one tool (mcp.Verdict).
type MCPVerdict struct {
	Usable bool   `json:"usable"`
	State  string `json:"state,omitempty"`
	Reason string `json:"reason,omitempty"`
	Digest string `json:"digest,omitempty"`
}

// MCPCheckAnswer is the answer of PathMCPCheck, by tool name.
type MCPCheckAnswer struct {
	Verdicts map[string]MCPVerdict `json:"verdicts"`
}

// MCPCredentialRequest asks for the value of a broker credential that an
// MCPServer or Service document names (spec.credential.name), for the
// node's gateway or proxy; the server refuses any other.
type MCPCredentialRequest struct {
	Name string `json:"name"`
}

// MCPCredentialAnswer carries a credential's value. It travels only over
// the node's mTLS link and is never written to disk on the node.
type MCPCredentialAnswer struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Version int64  `json:"version"`
	Value   string `json:"value"`
}

// ApprovalRequest is the body of PathApprovalCreate (approval.Spec).
type ApprovalRequest struct {
	Kind       string        `json:"kind"`
	SpiffeID   string        `json:"spiffe_id"`
	Instance   string        `json:"instance,omitempty"`
	Task       string        `json:"task,omitempty"`
	OnBehalfOf string        `json:"on_behalf_of,omitempty"`
	Target     string        `json:"target"`
	Reason     string        `json:"reason,omitempty"`
	Policy     string        `json:"policy,omitempty"`
	Rule       string        `json:"rule,omitempty"`
	Approvers  []string      `json:"approvers,omitempty"`
	Timeout    time.Duration `json:"timeout,omitempty"`
	Binding    string        `json:"binding,omitempty"`
}

// ApprovalWaitRequest is the body of PathApprovalWait: the server answers
// when the approval is decided or expired, or after at most
// MaxApprovalWait with the approval as the store has it (decided through
// another server, or still pending: the node asks again).
type ApprovalWaitRequest struct {
	ID string `json:"id"`
}

// MaxApprovalWait bounds one wait call (well inside the node's call
// timeout).
const MaxApprovalWait = 10 * time.Second

// ApprovalUseRequest is the body of PathApprovalUse.
type ApprovalUseRequest struct {
	ID      string `json:"id"`
	Binding string `json:"binding"`
	Caller  string `json:"caller"`
}
