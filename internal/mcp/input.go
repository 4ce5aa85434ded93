package mcp

//lint:file-ignore SA1019 the gateway relays sampling, elicitation and roots between MCP servers and agents that still use them; SEP-2577 deprecates them with a window of at least twelve months, and refusing them would break those agents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Requests an MCP server makes of the agent (sampling, elicitation, roots)
// are relayed as multi round-trip requests (SEP-2322): the upstream answers
// the agent's tools/call, prompts/get or resources/read with the input it
// needs, the gateway decides each input request by policy, and the answer
// goes back to the agent whose call it is. The input requests travel in
// the answer to that one call, so they cannot reach another agent even
// though every agent's calls share one upstream session. An agent of
// revision 2026-07-28 or later gets the input-required result and retries
// with its responses; for an older agent the gateway asks it over its own
// session (sampling/createMessage, elicitation/create, roots/list) and
// retries for it. The gateway's own upstream session declares none of
// these capabilities, so a server that sends them outside a call (the
// pre-2026 way, which could not be routed to one agent) is refused.

// Method names of the requests a server may make of the agent; policy
// decides them as tools of these names on the server (see docs/mcp.md).
const (
	MethodSampling    = "sampling/createMessage"
	MethodElicitation = "elicitation/create"
	MethodRoots       = "roots/list"
)

// inputMethod is the method of an input request, or false for a kind the
// gateway does not know (refused).
func inputMethod(ir sdk.InputRequest) (string, bool) {
	switch ir.(type) {
	case *sdk.CreateMessageParams, *sdk.CreateMessageWithToolsParams:
		return MethodSampling, true
	case *sdk.ElicitParams:
		return MethodElicitation, true
	case *sdk.ListRootsParams:
		return MethodRoots, true
	}
	return "", false
}

// decideInputs asks policy about every input request an upstream's answer
// to the call of via (a tool, prompt or resource of b) carries. The first
// refusal refuses the call: the agent gets a JSON-RPC error naming the
// request and why, and nothing is asked of it.
func (g *Gateway) decideInputs(ctx context.Context, caller Caller, session string, b *backend, via string, reqs sdk.InputRequestMap) error {
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for k := range reqs {
			if !yield(k) {
				return
			}
		}
	}) {
		ir := reqs[id]
		method, ok := inputMethod(ir)
		if !ok {
			return rpcError(CodeDenied, fmt.Sprintf("denied: MCP server %s asked the agent for an input of an unknown kind (%T)", b.srv.Name, ir), nil)
		}
		args, err := json.Marshal(ir)
		if err != nil {
			return rpcError(CodeDenied, "denied: the input request of MCP server "+b.srv.Name+" cannot be encoded", nil)
		}
		if string(args) == "null" {
			args = json.RawMessage("{}")
		}
		finish, err := g.authorize(ctx, caller, Request{Server: b.srv.Name, Method: method, Name: via, Arguments: args,
			Labels: b.srv.ToolLabels(via), Session: session})
		if err != nil {
			return withInputContext(err, b.srv.Name, method, via)
		}
		finish(nil, nil, nil)
	}
	return nil
}

// withInputContext says, in a refusal of an input request, which server
// asked what during which call.
func withInputContext(err error, server, method, via string) error {
	var je *jsonrpc.Error
	if !errors.As(err, &je) {
		return err
	}
	msg := strings.Replace(je.Message, ": ", fmt.Sprintf(": MCP server %s may not have the agent answer %s (during %s): ", server, method, via), 1)
	return &jsonrpc.Error{Code: je.Code, Message: msg, Data: je.Data}
}

// supportsInputRequired reports whether the agent on ss takes
// input-required results itself (revision 2026-07-28 and later).
func supportsInputRequired(ss *sdk.ServerSession) bool {
	if ss == nil {
		return false
	}
	ip := ss.InitializeParams()
	return ip == nil || ip.ProtocolVersion >= statelessRevision
}

// fulfill asks an older agent over its own session for what reqs ask.
func fulfill(ctx context.Context, ss *sdk.ServerSession, reqs sdk.InputRequestMap) (sdk.InputResponseMap, error) {
	if ss == nil {
		return nil, rpcError(CodeUnavailable, "the MCP server asked the agent for input, and the agent's session cannot be asked", nil)
	}
	out := sdk.InputResponseMap{}
	for id, ir := range reqs {
		var (
			res sdk.InputResponse
			err error
		)
		switch p := ir.(type) {
		case *sdk.ElicitParams:
			res, err = ss.Elicit(ctx, p)
		case *sdk.CreateMessageParams:
			res, err = ss.CreateMessage(ctx, p)
		case *sdk.CreateMessageWithToolsParams:
			res, err = ss.CreateMessageWithTools(ctx, p)
		case *sdk.ListRootsParams:
			res, err = ss.ListRoots(ctx, p)
		default:
			err = fmt.Errorf("unknown input request %T", ir)
		}
		if err != nil {
			return nil, rpcError(CodeUnavailable, fmt.Sprintf("the agent did not answer input request %q: %v", id, err), nil)
		}
		out[id] = res
	}
	return out, nil
}

// askAgent handles an answer to a prompts/get or resources/read that asks
// the agent for input (for tools/call the SDK's server does the same):
// policy decides every request; an agent of revision 2026-07-28 or later
// then gets the answer as it is (nil answers) and retries itself, an
// older one is asked over its own session and the answers are returned
// for the gateway to retry with.
func (g *Gateway) askAgent(ctx context.Context, caller Caller, ss *sdk.ServerSession, session string, b *backend, via string, reqs sdk.InputRequestMap) (sdk.InputResponseMap, error) {
	if err := g.decideInputs(ctx, caller, session, b, via, reqs); err != nil {
		return nil, err
	}
	if supportsInputRequired(ss) {
		return nil, nil
	}
	return fulfill(ctx, ss, reqs)
}
