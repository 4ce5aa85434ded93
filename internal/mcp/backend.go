package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// backend is one MCPServer behind the gateway: its upstream session, the
// tools pinning allows, and the front server agents talk to at /mcp/NAME.
type backend struct {
	srv     *Server
	up      *upstream
	front   *sdk.Server
	handler http.Handler

	refreshMu sync.Mutex // one refresh at a time

	mu       sync.Mutex
	tools    map[string]*sdk.Tool                  // usable tools, by upstream name
	verdicts map[string]Verdict                    // every announced tool, by upstream name
	digests  map[string]string                     // mirrored tools' digests
	expires  time.Time                             // the upstream's tools/list ttlMs ran out
	listed   []*sdk.Tool                           // every tool the upstream listed last, as it listed it
	agents   map[*sdk.ServerSession]*agentUpstream // sessions: per_agent
}

func (g *Gateway) newBackend(s *Server) *backend {
	b := &backend{srv: s, tools: map[string]*sdk.Tool{}, verdicts: map[string]Verdict{}, digests: map[string]string{}}
	b.up = newUpstream(s, g.cfg.Credentials, g.cfg.Log, g.cfg.Now, g.cfg.After)
	b.up.onSession = func(ctx context.Context, cs *sdk.ClientSession) { g.refresh(ctx, b, cs) }
	b.up.onToolsChanged = func(ctx context.Context) {
		// Not on the SDK's notification goroutine: refreshing calls the
		// upstream, whose answer that goroutine delivers.
		go func() {
			if cs, err := b.up.session(ctx); err == nil {
				g.refresh(context.WithoutCancel(ctx), b, cs)
			}
		}()
	}
	b.front = g.newFront("writ/"+s.Name, func(name string) (*backend, string, bool) { return b, name, true })
	b.handler = g.newHandler(b.front)
	return b
}

// close stops the upstream, drops the tools from the aggregate and closes
// the agents' sessions.
func (b *backend) close(g *Gateway) {
	b.up.stop()
	b.closeAgents()
	b.mu.Lock()
	names := slices.Collect(maps.Keys(b.digests))
	b.tools, b.digests = map[string]*sdk.Tool{}, map[string]string{}
	b.mu.Unlock()
	var agg []string
	for _, n := range names {
		agg = append(agg, b.srv.Name+Separator+n)
	}
	g.agg.RemoveTools(agg...)
	for ss := range b.front.Sessions() {
		ss.Close()
	}
}

// refresh lists the upstream's tools, pins them, and mirrors the usable
// ones on the front servers. Any failure leaves the server with no usable
// tools (fail closed) and is returned.
func (g *Gateway) refresh(ctx context.Context, b *backend, cs *sdk.ClientSession) error {
	b.refreshMu.Lock()
	defer b.refreshMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, b.srv.Call)
	defer cancel()
	var (
		listed []*sdk.Tool
		ttl    time.Duration
		err    error
	)
	var cursor string
	for range 1000 {
		var res *sdk.ListToolsResult
		res, err = cs.ListTools(ctx, &sdk.ListToolsParams{Cursor: cursor})
		if err != nil {
			break
		}
		if cursor == "" && res.TTLMs > 0 {
			ttl = time.Duration(res.TTLMs) * time.Millisecond
		}
		listed = append(listed, res.Tools...)
		if cursor = res.NextCursor; cursor == "" {
			break
		}
	}
	verdicts := map[string]Verdict{}
	byName := map[string]*sdk.Tool{}
	if err == nil {
		var descs []Descriptor
		descs, byName, verdicts = describe(listed)
		var vs map[string]Verdict
		vs, err = g.checker.Check(ctx, b.srv, descs)
		merge(verdicts, vs)
	}
	if err != nil {
		g.cfg.Log.ErrorContext(ctx, "MCP tools unavailable", "server", b.srv.Name, "error", err)
		verdicts = map[string]Verdict{}
		listed = nil
	}
	g.mirror(b, byName, verdicts)
	b.mu.Lock()
	b.expires = time.Time{}
	if ttl > 0 {
		b.expires = g.cfg.Now().Add(ttl)
	}
	b.listed = listed
	b.mu.Unlock()
	return err
}

// describe returns the descriptors of the tools an upstream listed, the
// tools by name, and the verdicts of those that cannot be checked at all.
func describe(listed []*sdk.Tool) ([]Descriptor, map[string]*sdk.Tool, map[string]Verdict) {
	var descs []Descriptor
	byName := map[string]*sdk.Tool{}
	verdicts := map[string]Verdict{}
	for _, t := range listed {
		if t == nil {
			continue
		}
		d, derr := descriptorOf(t)
		if derr != nil {
			verdicts[t.Name] = Verdict{Reason: derr.Error()}
			continue
		}
		if _, dup := byName[t.Name]; dup {
			verdicts[t.Name] = Verdict{Reason: "the server lists it twice"}
			continue
		}
		byName[t.Name] = t
		descs = append(descs, d)
	}
	return descs, byName, verdicts
}

// merge adds the checked verdicts vs to verdicts, keeping those already
// there (tools that could not be checked).
func merge(verdicts, vs map[string]Verdict) {
	for k, v := range vs {
		if _, bad := verdicts[k]; !bad {
			verdicts[k] = v
		}
	}
}

// Recheck decides again, from the stored pins alone (Config.Pins) and
// without listing the upstream again, the tools the upstream of server
// ("" for every server) listed last, and shows or hides them accordingly.
// Call it after pins changed elsewhere: a quarantine decided by another
// gateway (a node's rug pull, reported to the server) hides the tool
// here too, and an approval shows it again. It writes no pin.
func (g *Gateway) Recheck(ctx context.Context, server string) error {
	g.mu.Lock()
	var bs []*backend
	for name, b := range g.backends {
		if server == "" || name == server {
			bs = append(bs, b)
		}
	}
	g.mu.Unlock()
	var errs []error
	for _, b := range bs {
		errs = append(errs, g.recheck(ctx, b))
	}
	return errors.Join(errs...)
}

func (g *Gateway) recheck(ctx context.Context, b *backend) error {
	b.refreshMu.Lock()
	defer b.refreshMu.Unlock()
	b.mu.Lock()
	listed := b.listed
	b.mu.Unlock()
	if listed == nil {
		return nil // never listed: the first listing checks
	}
	pins, err := g.cfg.Pins.ListPins(ctx, b.srv.Name)
	if err != nil {
		return fmt.Errorf("recheck the tools of %s: %w", b.srv.Target(), err)
	}
	descs, byName, verdicts := describe(listed)
	merge(verdicts, FromPins(b.srv, descs, pins))
	g.mirror(b, byName, verdicts)
	return nil
}

// descriptorOf is the descriptor of a tool as the SDK decoded it: what
// the gateway pins is exactly what it forwards.
func descriptorOf(t *sdk.Tool) (Descriptor, error) {
	raw, err := json.Marshal(t)
	if err != nil {
		return Descriptor{}, fmt.Errorf("its descriptor cannot be encoded: %v", err)
	}
	var d Descriptor
	if err := json.Unmarshal(raw, &d); err != nil {
		return Descriptor{}, fmt.Errorf("its descriptor cannot be read: %v", err)
	}
	return d, nil
}

// mirror makes the front servers list exactly the usable tools.
func (g *Gateway) mirror(b *backend, listed map[string]*sdk.Tool, verdicts map[string]Verdict) {
	b.mu.Lock()
	defer b.mu.Unlock()
	usable := map[string]*sdk.Tool{}
	for name, t := range listed {
		v := verdicts[name]
		if !v.Usable {
			continue
		}
		if b.digests[name] == v.Digest {
			usable[name] = t
			continue
		}
		if err := addTool(b.front, t, g.forward(b, name)); err != nil {
			verdicts[name] = Verdict{State: v.State, Digest: v.Digest, Reason: err.Error()}
			continue
		}
		at := *t
		at.Name = b.srv.Name + Separator + name
		if err := addTool(g.agg, &at, g.forward(b, name)); err != nil {
			b.front.RemoveTools(name)
			verdicts[name] = Verdict{State: v.State, Digest: v.Digest, Reason: err.Error()}
			continue
		}
		usable[name] = t
		b.digests[name] = v.Digest
	}
	var gone, aggGone []string
	for name := range b.digests {
		if _, ok := usable[name]; !ok {
			gone = append(gone, name)
			aggGone = append(aggGone, b.srv.Name+Separator+name)
			delete(b.digests, name)
		}
	}
	if len(gone) > 0 {
		b.front.RemoveTools(gone...)
		g.agg.RemoveTools(aggGone...)
	}
	b.tools, b.verdicts = usable, verdicts
}

// addTool adds t to s; the SDK panics on a tool whose input schema is not
// an object schema, which an upstream must not be able to cause.
func addTool(s *sdk.Server, t *sdk.Tool, h sdk.ToolHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("its descriptor is not usable: %v", r)
		}
	}()
	s.AddTool(t, h)
	return nil
}

// forward returns the handler that relays a call of tool to the upstream.
// An answer that asks the agent for input (sampling, elicitation, roots:
// see input.go) is decided by policy first; it then goes back to this
// call's agent, and the agent's responses go upstream with the retry.
func (g *Gateway) forward(b *backend, tool string) sdk.ToolHandler {
	return func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		ctx, cancel := context.WithTimeout(ctx, b.srv.Call)
		defer cancel()
		caller, ok := callerOf(req)
		if !ok {
			return nil, rpcError(CodeDenied, "denied: the caller is not identified", nil)
		}
		cs, done, err := g.upstreamFor(ctx, b, req.Session, caller, tool)
		if err != nil {
			return nil, rpcError(CodeUnavailable, err.Error(), nil)
		}
		defer done()
		params := &sdk.CallToolParams{Meta: upstreamMeta(req.Params.Meta), Name: tool,
			InputResponses: req.Params.InputResponses, RequestState: req.Params.RequestState}
		if len(req.Params.Arguments) > 0 {
			params.Arguments = req.Params.Arguments
		}
		res, err := cs.CallTool(ctx, params)
		if err != nil {
			return nil, upstreamError(err)
		}
		if len(res.InputRequests) > 0 {
			session := ""
			if req.Session != nil {
				session = req.Session.ID()
			}
			if err := g.decideInputs(ctx, caller, session, b, tool, res.InputRequests); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
}

// verdict returns the verdict of tool, refreshing first when the
// upstream's list has expired.
func (g *Gateway) verdict(ctx context.Context, b *backend, tool string) (Verdict, bool) {
	b.mu.Lock()
	expired := !b.expires.IsZero() && g.cfg.Now().After(b.expires)
	b.mu.Unlock()
	if expired {
		if cs, err := b.up.session(ctx); err == nil {
			g.refresh(ctx, b, cs)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.verdicts[tool]
	return v, ok
}

// upstreamMeta is the part of an agent's request _meta that goes upstream:
// the protocol's own keys (revision, client info, ...) describe the
// agent's session with the gateway, not the gateway's with the upstream;
// writ's own keys (an approval id) are for the gateway alone.
func upstreamMeta(m sdk.Meta) sdk.Meta {
	var out sdk.Meta
	for k, v := range m {
		if strings.HasPrefix(k, "io.modelcontextprotocol/") || strings.HasPrefix(k, "writ.dev/") {
			continue
		}
		if out == nil {
			out = sdk.Meta{}
		}
		out[k] = v
	}
	return out
}
