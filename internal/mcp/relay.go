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
			}
			switch method {
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
				for _, t := range lr.Tools {
					b, name, ok := resolve(t.Name)
					if !ok {
						continue
					}
					if v, ok := g.verdict(ctx, b, name); !ok || !v.Usable {
						continue
					}
					d, err := g.cfg.Authorizer.Authorize(ctx, caller, Request{Server: b.srv.Name, Method: method, Name: name,
						Labels: b.srv.ToolLabels(name), Session: session})
					if err == nil && d.Allow {
						out.Tools = append(out.Tools, t)
					}
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

			case "prompts/list":
				b, ok := g.single(resolve)
				if !ok {
					return &sdk.ListPromptsResult{Prompts: []*sdk.Prompt{}}, nil
				}
				cs, err := b.up.session(ctx)
				if err != nil {
					return nil, rpcError(CodeUnavailable, err.Error(), nil)
				}
				p, _ := req.GetParams().(*sdk.ListPromptsParams)
				q := &sdk.ListPromptsParams{}
				if p != nil {
					q.Cursor = p.Cursor
				}
				res, err := cs.ListPrompts(ctx, q)
				if err != nil {
					return nil, upstreamError(err)
				}
				out := *res
				out.Prompts = []*sdk.Prompt{}
				for _, pr := range res.Prompts {
					d, err := g.cfg.Authorizer.Authorize(ctx, caller, Request{Server: b.srv.Name, Method: method, Name: pr.Name, Labels: b.srv.Spec.Labels, Session: session})
					if err == nil && d.Allow {
						out.Prompts = append(out.Prompts, pr)
					}
				}
				return &out, nil

			case "prompts/get":
				p, _ := req.GetParams().(*sdk.GetPromptParams)
				b, ok := g.single(resolve)
				if p == nil || !ok {
					return nil, rpcError(jsonrpc.CodeInvalidParams, "prompts are served at /mcp/SERVER", nil)
				}
				args, _ := json.Marshal(p.Arguments)
				if p.Arguments == nil {
					args = json.RawMessage("{}")
				}
				finish, err := g.authorize(ctx, caller, Request{Server: b.srv.Name, Method: method, Name: p.Name, Arguments: args, Labels: b.srv.Spec.Labels, Session: session, Approval: approvalOf(p.Meta)})
				if err != nil {
					return nil, err
				}
				cs, err := b.up.session(ctx)
				if err != nil {
					err = rpcError(CodeUnavailable, err.Error(), nil)
					finish(nil, err, nil)
					return nil, err
				}
				gp, err := cs.GetPrompt(ctx, &sdk.GetPromptParams{Meta: upstreamMeta(p.Meta), Name: p.Name, Arguments: p.Arguments})
				if err != nil {
					err = upstreamError(err)
					finish(nil, err, nil)
					return nil, err
				}
				res, red := g.redact(ctx, b, gp)
				if res == nil {
					finish(nil, withheld, red)
					return nil, withheld
				}
				finish(res, nil, red)
				return res, nil

			case "resources/list", "resources/templates/list", "resources/read":
				b, ok := g.single(resolve)
				if !ok {
					if method == "resources/read" {
						return nil, rpcError(jsonrpc.CodeInvalidParams, "resources are served at /mcp/SERVER", nil)
					}
					if method == "resources/list" {
						return &sdk.ListResourcesResult{Resources: []*sdk.Resource{}}, nil
					}
					return &sdk.ListResourceTemplatesResult{ResourceTemplates: []*sdk.ResourceTemplate{}}, nil
				}
				cs, err := b.up.session(ctx)
				if err != nil {
					return nil, rpcError(CodeUnavailable, err.Error(), nil)
				}
				var res sdk.Result
				switch method {
				case "resources/list":
					p, _ := req.GetParams().(*sdk.ListResourcesParams)
					q := &sdk.ListResourcesParams{}
					if p != nil {
						q.Cursor = p.Cursor
					}
					res, err = cs.ListResources(ctx, q)
				case "resources/templates/list":
					p, _ := req.GetParams().(*sdk.ListResourceTemplatesParams)
					q := &sdk.ListResourceTemplatesParams{}
					if p != nil {
						q.Cursor = p.Cursor
					}
					res, err = cs.ListResourceTemplates(ctx, q)
				default:
					p, _ := req.GetParams().(*sdk.ReadResourceParams)
					if p == nil {
						return nil, rpcError(jsonrpc.CodeInvalidParams, "resources/read needs params", nil)
					}
					finish, aerr := g.authorize(ctx, caller, Request{Server: b.srv.Name, Method: method, Name: p.URI, Labels: b.srv.Spec.Labels, Session: session, Approval: approvalOf(p.Meta)})
					if aerr != nil {
						return nil, aerr
					}
					var rr *sdk.ReadResourceResult
					rr, err = cs.ReadResource(ctx, &sdk.ReadResourceParams{Meta: upstreamMeta(p.Meta), URI: p.URI})
					if err != nil {
						err = upstreamError(err)
						finish(nil, err, nil)
						return nil, err
					}
					var red []string
					if res, red = g.redact(ctx, b, rr); res == nil {
						finish(nil, withheld, red)
						return nil, withheld
					}
					finish(res, nil, red)
				}
				if err != nil {
					return nil, upstreamError(err)
				}
				return res, nil
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
	d, err := g.cfg.Authorizer.Authorize(ctx, caller, r)
	if err != nil {
		g.cfg.Log.ErrorContext(ctx, "MCP authorization failed", "server", r.Server, "method", r.Method, "name", r.Name, "error", err)
		return nil, rpcError(CodeDenied, "denied: the decision could not be made", map[string]string{"reason": "the decision could not be made"})
	}
	if d.Unavailable {
		return nil, rpcError(CodeUnavailable, "not made: "+d.Reason, nil)
	}
	if !d.Allow {
		reason := d.Reason
		if reason == "" {
			reason = "not allowed by policy"
		}
		return nil, rpcError(CodeDenied, "denied: "+reason, map[string]string{"reason": reason, "rule": d.Rule, "policy": d.Policy, "approval": d.Approval})
	}
	return func(res sdk.Result, err error, redactions []string) {
		if d.Finish == nil {
			return
		}
		out := Result{Err: err, Redactions: redactions}
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
