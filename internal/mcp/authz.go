package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
)

// Caller is who makes a request to the gateway, as an [Identifier] found
// out from the HTTP request.
type Caller struct {
	// Key identifies the caller stably (SPIFFE ID and instance, say). A
	// session belongs to the caller that opened it: a request on it from
	// another caller is refused.
	Key string
	// Identity is the identity as the Identifier knows it; the gateway
	// only hands it back to the [Authorizer].
	Identity any
	// SpiffeID, Instance and Task name the caller in the audit events
	// the gateway records itself (initialize and the lists).
	SpiffeID, Instance, Task string
}

// Identifier works out who makes an HTTP request to the endpoint of
// server ("" for the aggregate endpoint). It returns [ErrUnauthenticated]
// (possibly wrapped) when the request carries no usable identity; the
// gateway then answers 401 with a WWW-Authenticate header naming its
// protected-resource metadata (RFC 9728). [ErrForbidden] is answered 403.
type Identifier interface {
	Identify(r *http.Request, server string) (Caller, error)
}

var (
	// ErrUnauthenticated reports a request whose caller cannot be identified.
	ErrUnauthenticated = errors.New("the caller is not authenticated")
	// ErrForbidden reports a caller that is identified but may not use
	// the gateway (revoked, or ambiguous).
	ErrForbidden = errors.New("the caller may not use the gateway")
)

// Request is one question to the [Authorizer]: may the caller do this?
type Request struct {
	// Server is the MCPServer's name.
	Server string
	// Method is tools/call, resources/read or prompts/get; tools/list,
	// prompts/list and resources/list ask whether the caller may see the
	// named tool, prompt or resource URI at all (no arguments);
	// sampling/createMessage, elicitation/create and roots/list ask
	// whether the server may have the caller answer that request (its
	// parameters are the arguments) during a call of Name.
	Method string
	// Name is the upstream's name of the tool or prompt, or the URI of
	// the resource.
	Name string
	// Arguments are the call's arguments as the agent sent them (a JSON
	// object), nil for visibility questions.
	Arguments json.RawMessage
	// Labels are the target's flow labels.
	Labels []string
	// RequestID is the JSON-RPC id; Session the MCP session id ("" when
	// stateless).
	RequestID string
	Session   string
	// Approval is the id of an approval the agent presents for this call
	// (the _meta key "writ.dev/approval"), granted after an earlier
	// attempt stopped waiting; it permits this exact call once.
	Approval string
}

// ApprovalMeta is the _meta key of a tools/call, resources/read or
// prompts/get by which an agent presents an approval granted for it.
const ApprovalMeta = "writ.dev/approval"

// Decision is the Authorizer's answer.
type Decision struct {
	Allow bool
	// Unavailable reports that the decision could not be made or put on
	// record, so the request must not go ahead (writ fails closed).
	Unavailable bool
	// Reason says why, in words fit for the agent (no secrets).
	Reason string
	// Rule and Policy (name@version) name what decided.
	Rule, Policy string
	// Approval is the id of the approval the request waited for (or
	// presented), when policy asked for one.
	Approval string
	// Finish, when set, is called once an allowed request was relayed,
	// with how it ended (to record it).
	Finish func(Result)
}

// Result is how a relayed request ended.
type Result struct {
	// Err is the upstream's error, if it failed.
	Err error
	// Bytes is the size of the result as JSON.
	Bytes int64
	// ToolError is a tool result with isError set.
	ToolError bool
	// Redactions name the secrets redacted from the result, as
	// "RULE@POINTER" (never the value).
	Redactions []string
}

// Authorizer decides the requests of a caller.
type Authorizer interface {
	Authorize(ctx context.Context, caller Caller, r Request) (Decision, error)
}

// AuthorizerFunc adapts a function to [Authorizer].
type AuthorizerFunc func(ctx context.Context, caller Caller, r Request) (Decision, error)

// Authorize calls f.
func (f AuthorizerFunc) Authorize(ctx context.Context, caller Caller, r Request) (Decision, error) {
	return f(ctx, caller, r)
}

// IdentifierFunc adapts a function to [Identifier].
type IdentifierFunc func(r *http.Request, server string) (Caller, error)

// Identify calls f.
func (f IdentifierFunc) Identify(r *http.Request, server string) (Caller, error) { return f(r, server) }

// JSON-RPC error codes of the gateway's refusals (in the range JSON-RPC
// leaves to implementations).
const (
	// CodeDenied is a request policy refused; data holds reason, rule and
	// policy.
	CodeDenied = -32050
	// CodeQuarantined is a call to a quarantined tool.
	CodeQuarantined = -32051
	// CodeUnavailable is a request the upstream could not take.
	CodeUnavailable = -32052
)
