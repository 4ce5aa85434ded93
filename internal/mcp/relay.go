package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/writ-dev/writ/internal/secrets"
)

// resolver maps a tool or prompt name as an agent sees it on one front
// server to the backend and the upstream's name.
type resolver func(name string) (*backend, string, bool)

func (g *Gateway) resolveAggregate(name string) (*backend, string, bool) {
	server, tool, ok := strings.Cut(name, Separator)
	if !ok {
		return nil, "", false
	}
	b := g.backend(server)
	return b, tool, b != nil
}

// middleware decides every request an agent sends to a front server from
// its JSON-RPC body (as the SDK decoded it), never from headers.
func (g *Gateway) middleware(resolve resolver) sdk.Middleware {
	return func(next sdk.MethodHandler) sdk.MethodHandler {
		return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
			caller, ok := callerOf(req)
			if !ok {
				// Every request comes through ServeHTTP, which identifies
				// the caller; one that did not is refused.
				return nil, rpcError(CodeDenied, "denied: the caller is not identified", nil)
			}
			session := ""
			if s := req.GetSession(); s != nil {
				session = s.ID()
				g.sessions.touch(session, g.cfg.Now())
			}
			server := ""
			if b, ok := g.single(resolve); ok {
				server = b.srv.Name
			}
			switch method {
			case "initialize":
				res, err := next(ctx, method, req)
				if err != nil {
					return res, err
				}
				rev := ""
				if ir, ok := res.(*sdk.InitializeResult); ok {
					rev = ir.ProtocolVersion
				}
				if ss, ok := req.GetSession().(*sdk.ServerSession); ok && session != "" {
					g.sessions.add(&agentSession{key: caller.Key, endpoint: server, rev: rev, ss: ss}, g.cfg.Now())
				}
				pins := g.pinsOf(server)
				if err := g.record(ctx, caller, req, rev, listing{method: method, server: server, pins: pins, shown: len(pins)}); err != nil {
					return nil, err
				}
				return res, nil

			case "tools/list":
				res, err := next(ctx, method, req)
				if err != nil {
					return res, err
				}
				lr, ok := res.(*sdk.ListToolsResult)
				if !ok {
					return res, nil
				}
				out := *lr
				out.Tools = []*sdk.Tool{}
				pins := map[string]string{}
				for _, t := range lr.Tools {
					b, name, ok := resolve(t.Name)
					if !ok {
						continue
					}
					v, ok := g.verdict(ctx, b, name)
					if !ok || !v.Usable {
						continue
					}
					d, err := g.cfg.Authorizer.Authorize(ctx, caller, Request{Server: b.srv.Name, Method: method, Name: name,
						Labels: b.srv.ToolLabels(name), Session: session})
					if err == nil && d.Allow {
						out.Tools = append(out.Tools, t)
						pins[t.Name] = v.Digest
					}
				}
				if err := g.record(ctx, caller, req, "", listing{method: method, server: server, pins: pins, shown: len(out.Tools)}); err != nil {
					return nil, err
				}
				return &out, nil

			case "tools/call":
				p, _ := req.GetParams().(*sdk.CallToolParamsRaw)
				if p == nil {
					return nil, rpcError(jsonrpc.CodeInvalidParams, "tools/call needs params", nil)
				}
				b, name, ok := resolve(p.Name)
				if !ok {
					return nil, rpcError(jsonrpc.CodeInvalidParams, "unknown tool "+quote(p.Name), nil)
				}
				v, known := g.verdict(ctx, b, name)
				switch {
				case !known:
					return nil, rpcError(jsonrpc.CodeInvalidParams, "unknown tool "+quote(p.Name), nil)
				case !v.Usable:
					return nil, rpcError(CodeQuarantined, "tool "+quote(p.Name)+" is quarantined: "+v.Reason+"; an administrator can approve it with `writ mcp approve "+b.srv.Name+" "+name+"`", nil)
				}
				args := p.Arguments
				if len(args) == 0 || string(args) == "null" {
					args = json.RawMessage("{}")
				}
				finish, err := g.authorize(ctx, caller, Request{Server: b.srv.Name, Method: method, Name: name, Arguments: args,
					Labels: b.srv.ToolLabels(name), Session: session, Approval: approvalOf(p.Meta)})
				if err != nil {
					return nil, err
				}
				res, err := next(ctx, method, req)
				res, red := g.redact(ctx, b, res)
				if res == nil && err == nil {
					err = withheld
				}
				finish(res, err, red)
				return res, err

			case "prompts/list", "resources/list", "resources/templates/list":
				res, shown, err := g.list(ctx, caller, session, method, resolve)
				if err != nil {
					return nil, err
				}
				if err := g.record(ctx, caller, req, "", listing{method: method, server: server, pins: g.pinsOf(server), shown: shown}); err != nil {
					return nil, err
				}
				return res, nil

			case "prompts/get":
				p, _ := req.GetParams().(*sdk.GetPromptParams)
				if p == nil {
					return nil, rpcError(jsonrpc.CodeInvalidParams, "prompts/get needs params", nil)
				}
				ss, _ := req.GetSession().(*sdk.ServerSession)
				return g.getPrompt(ctx, caller, ss, session, p, resolve)

			case "resources/read":
				p, _ := req.GetParams().(*sdk.ReadResourceParams)
				if p == nil {
					return nil, rpcError(jsonrpc.CodeInvalidParams, "resources/read needs params", nil)
				}
				ss, _ := req.GetSession().(*sdk.ServerSession)
				return g.readResource(ctx, caller, ss, session, p, resolve)
			}
			return next(ctx, method, req)
		}
	}
}

// single returns the backend of a per-server front (the resolver of a
// per-server front resolves every name to its backend).
func (g *Gateway) single(resolve resolver) (*backend, bool) {
	b, _, ok := resolve("")
	return b, ok
}

// authorize asks the Authorizer and turns a refusal into the JSON-RPC
// error the agent receives. On allow it returns the function to call with
// the relayed request's result and the secrets redacted from it.
func (g *Gateway) authorize(ctx context.Context, caller Caller, r Request) (func(sdk.Result, error, []string), error) {
	d, err := g.decide(ctx, caller, r)
	if err != nil {
		return nil, err
	}
	return func(res sdk.Result, err error, redactions []string) {
		if d.Finish == nil {
			return
		}
		out := Result{Err: err, Redactions: redactions}
		if res != nil && reflect.ValueOf(res).IsNil() {
			res = nil // a handler's typed nil, beside its error
		}
		if res != nil {
			if b, jerr := json.Marshal(res); jerr == nil {
				out.Bytes = int64(len(b))
			}
			if tr, ok := res.(*sdk.CallToolResult); ok && tr.IsError {
				out.ToolError = true
			}
		}
		d.Finish(out)
	}, nil
}

// decide asks the Authorizer about r and returns its decision when it
// allows r, else the JSON-RPC error the agent gets.
func (g *Gateway) decide(ctx context.Context, caller Caller, r Request) (Decision, error) {
	d, err := g.cfg.Authorizer.Authorize(ctx, caller, r)
	if err != nil {
		g.cfg.Log.ErrorContext(ctx, "MCP authorization failed", "server", r.Server, "method", r.Method, "name", r.Name, "error", err)
		return d, rpcError(CodeDenied, "denied: the decision could not be made", map[string]string{"reason": "the decision could not be made"})
	}
	if d.Unavailable {
		return d, rpcError(CodeUnavailable, "not made: "+d.Reason, nil)
	}
	if !d.Allow {
		reason := d.Reason
		if reason == "" {
			reason = "not allowed by policy"
		}
		return d, rpcError(CodeDenied, "denied: "+reason, map[string]string{"reason": reason, "rule": d.Rule, "policy": d.Policy, "approval": d.Approval})
	}
	return d, nil
}

func rpcError(code int64, msg string, data map[string]string) error {
	e := &jsonrpc.Error{Code: code, Message: msg}
	if data != nil {
		for k, v := range data {
			if v == "" {
				delete(data, k)
			}
		}
		e.Data, _ = json.Marshal(data)
	}
	return e
}

// upstreamError passes a JSON-RPC error from the upstream through and
// reports anything else as the upstream being unavailable.
func upstreamError(err error) error {
	var je *jsonrpc.Error
	if errors.As(err, &je) {
		return je
	}
	return rpcError(CodeUnavailable, "the MCP server did not answer: "+err.Error(), nil)
}

// approvalOf is the approval id an agent presents in a request's _meta;
// anything but a string is ignored (the call then asks afresh).
func approvalOf(m sdk.Meta) string {
	s, _ := m[ApprovalMeta].(string)
	return s
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// redact removes the secrets from a result before it reaches the agent
// and returns the result with what was redacted ("RULE@POINTER"). A
// result that cannot be redacted is withheld: the agent gets an error
// result instead (fail closed).
func (g *Gateway) redact(ctx context.Context, b *backend, res sdk.Result) (sdk.Result, []string) {
	if g.cfg.Redactor == nil || res == nil || reflect.ValueOf(res).IsNil() {
		return res, nil
	}
	raw, err := json.Marshal(res)
	if err == nil {
		var out []byte
		var fs []secrets.Finding
		if out, fs, err = g.cfg.Redactor.RedactJSON(raw); err == nil {
			if len(fs) == 0 {
				return res, nil
			}
			red := make([]string, 0, len(fs))
			for _, f := range fs {
				red = append(red, f.RuleID+"@"+f.Pointer)
			}
			fresh := reflect.New(reflect.TypeOf(res).Elem()).Interface().(sdk.Result)
			if err = json.Unmarshal(out, fresh); err == nil {
				g.cfg.Log.InfoContext(ctx, "secrets redacted from an MCP result", "server", b.srv.Name, "redactions", strings.Join(red, ","))
				return fresh, red
			}
		}
	}
	g.cfg.Log.ErrorContext(ctx, "MCP result withheld: it could not be scanned for secrets", "server", b.srv.Name, "error", err)
	return nil, []string{"withheld@"}
}

// withheld is the error an agent gets for a result redact withheld.
var withheld = rpcError(CodeUnavailable, "writ withheld the result: it could not be scanned for secrets", nil)
