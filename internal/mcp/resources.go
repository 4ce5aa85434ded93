package mcp

import (
	"context"
	"encoding/json"
	"maps"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// served is one backend as a front serves it: on /mcp/NAME with its own
// names, on /mcp with names (and resource URIs) prefixed NAME__.
type served struct {
	b      *backend
	prefix string
}

// fronted returns the backends a front serves, by name.
func (g *Gateway) fronted(resolve resolver) []served {
	if b, ok := g.single(resolve); ok {
		return []served{{b: b}}
	}
	g.mu.Lock()
	names := slices.Sorted(maps.Keys(g.backends))
	out := make([]served, 0, len(names))
	for _, n := range names {
		out = append(out, served{b: g.backends[n], prefix: n + Separator})
	}
	g.mu.Unlock()
	return out
}

// maxListPages bounds the pages the gateway reads of one upstream list.
const maxListPages = 100

// list answers prompts/list, resources/list and resources/templates/list:
// every page of each served upstream's list, items the caller may not see
// left out (prompts by name, resources by URI), names and URIs prefixed on
// the aggregate endpoint. It returns the answer and how many items it
// holds. On /mcp/NAME an unavailable upstream is an error; on /mcp it is
// left out (and logged), so one server down does not hide the others.
func (g *Gateway) list(ctx context.Context, caller Caller, session, method string, resolve resolver) (sdk.Result, int, error) {
	fr := g.fronted(resolve)
	var (
		prompts   = []*sdk.Prompt{}
		resources = []*sdk.Resource{}
		templates = []*sdk.ResourceTemplate{}
	)
	for _, f := range fr {
		b := f.b
		cs, err := b.up.session(ctx)
		if err != nil {
			if f.prefix == "" {
				return nil, 0, rpcError(CodeUnavailable, err.Error(), nil)
			}
			g.cfg.Log.WarnContext(ctx, "MCP server left out of an aggregate list", "server", b.srv.Name, "method", method, "error", err)
			continue
		}
		visible := func(name string) bool {
			d, err := g.cfg.Authorizer.Authorize(ctx, caller, Request{Server: b.srv.Name, Method: method, Name: name, Labels: b.srv.Spec.Labels, Session: session})
			return err == nil && d.Allow
		}
		cursor := ""
		for range maxListPages {
			next := ""
			switch method {
			case "prompts/list":
				res, err := cs.ListPrompts(ctx, &sdk.ListPromptsParams{Cursor: cursor})
				if err != nil {
					return nil, 0, g.listFailed(ctx, f, method, err)
				}
				for _, p := range res.Prompts {
					if p != nil && visible(p.Name) {
						c := *p
						c.Name = f.prefix + p.Name
						prompts = append(prompts, &c)
					}
				}
				next = res.NextCursor
			case "resources/list":
				res, err := cs.ListResources(ctx, &sdk.ListResourcesParams{Cursor: cursor})
				if err != nil {
					return nil, 0, g.listFailed(ctx, f, method, err)
				}
				for _, r := range res.Resources {
					if r != nil && visible(r.URI) {
						c := *r
						c.URI = f.prefix + r.URI
						resources = append(resources, &c)
					}
				}
				next = res.NextCursor
			default:
				res, err := cs.ListResourceTemplates(ctx, &sdk.ListResourceTemplatesParams{Cursor: cursor})
				if err != nil {
					return nil, 0, g.listFailed(ctx, f, method, err)
				}
				// A template is no URI policy can decide; each read of
				// a URI made from it is decided.
				for _, r := range res.ResourceTemplates {
					if r != nil {
						c := *r
						c.URITemplate = f.prefix + r.URITemplate
						templates = append(templates, &c)
					}
				}
				next = res.NextCursor
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	switch method {
	case "prompts/list":
		return &sdk.ListPromptsResult{Prompts: prompts}, len(prompts), nil
	case "resources/list":
		return &sdk.ListResourcesResult{Resources: resources}, len(resources), nil
	}
	return &sdk.ListResourceTemplatesResult{ResourceTemplates: templates}, len(templates), nil
}

// listFailed is the error of a list an upstream failed to answer.
func (g *Gateway) listFailed(ctx context.Context, f served, method string, err error) error {
	g.cfg.Log.WarnContext(ctx, "MCP list failed", "server", f.b.srv.Name, "method", method, "error", err)
	return upstreamError(err)
}

// getPrompt decides and relays a prompts/get.
func (g *Gateway) getPrompt(ctx context.Context, caller Caller, ss *sdk.ServerSession, session string, p *sdk.GetPromptParams, resolve resolver) (sdk.Result, error) {
	b, name, ok := resolve(p.Name)
	if !ok {
		return nil, rpcError(jsonrpc.CodeInvalidParams, "unknown prompt "+quote(p.Name), nil)
	}
	args, _ := json.Marshal(p.Arguments)
	if p.Arguments == nil {
		args = json.RawMessage("{}")
	}
	finish, err := g.authorize(ctx, caller, Request{Server: b.srv.Name, Method: "prompts/get", Name: name, Arguments: args,
		Labels: b.srv.Spec.Labels, Session: session, Approval: approvalOf(p.Meta)})
	if err != nil {
		return nil, err
	}
	cs, done, err := g.upstreamFor(ctx, b, ss, caller, name)
	if err != nil {
		err = rpcError(CodeUnavailable, err.Error(), nil)
		finish(nil, err, nil)
		return nil, err
	}
	defer done()
	up := &sdk.GetPromptParams{Meta: upstreamMeta(p.Meta), Name: name, Arguments: p.Arguments,
		InputResponses: p.InputResponses, RequestState: p.RequestState}
	gp, err := cs.GetPrompt(ctx, up)
	if err == nil && len(gp.InputRequests) > 0 {
		var answers sdk.InputResponseMap
		if answers, err = g.askAgent(ctx, caller, ss, session, b, name, gp.InputRequests); err == nil && answers != nil {
			up.InputResponses, up.RequestState = answers, gp.RequestState
			gp, err = cs.GetPrompt(ctx, up)
		}
	}
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
}

// readResource decides (on the upstream's URI) and relays a
// resources/read; on the aggregate endpoint the URI is NAME__URI and the
// contents come back with their URIs prefixed the same way.
func (g *Gateway) readResource(ctx context.Context, caller Caller, ss *sdk.ServerSession, session string, p *sdk.ReadResourceParams, resolve resolver) (sdk.Result, error) {
	b, uri, ok := resolve(p.URI)
	if !ok {
		return nil, rpcError(jsonrpc.CodeInvalidParams, "unknown resource "+quote(p.URI)+": on /mcp, resource URIs are SERVER__URI", nil)
	}
	prefix := ""
	if _, single := g.single(resolve); !single {
		prefix = b.srv.Name + Separator
	}
	finish, err := g.authorize(ctx, caller, Request{Server: b.srv.Name, Method: "resources/read", Name: uri,
		Labels: b.srv.Spec.Labels, Session: session, Approval: approvalOf(p.Meta)})
	if err != nil {
		return nil, err
	}
	cs, done, err := g.upstreamFor(ctx, b, ss, caller, uri)
	if err != nil {
		err = rpcError(CodeUnavailable, err.Error(), nil)
		finish(nil, err, nil)
		return nil, err
	}
	defer done()
	up := &sdk.ReadResourceParams{Meta: upstreamMeta(p.Meta), URI: uri, InputResponses: p.InputResponses, RequestState: p.RequestState}
	rr, err := cs.ReadResource(ctx, up)
	if err == nil && len(rr.InputRequests) > 0 {
		var answers sdk.InputResponseMap
		if answers, err = g.askAgent(ctx, caller, ss, session, b, uri, rr.InputRequests); err == nil && answers != nil {
			up.InputResponses, up.RequestState = answers, rr.RequestState
			rr, err = cs.ReadResource(ctx, up)
		}
	}
	if err != nil {
		err = upstreamError(err)
		finish(nil, err, nil)
		return nil, err
	}
	res, red := g.redact(ctx, b, rr)
	if res == nil {
		finish(nil, withheld, red)
		return nil, withheld
	}
	if out, ok := res.(*sdk.ReadResourceResult); ok && prefix != "" {
		for _, c := range out.Contents {
			if c != nil {
				c.URI = prefix + c.URI
			}
		}
	}
	finish(res, nil, red)
	return res, nil
}
