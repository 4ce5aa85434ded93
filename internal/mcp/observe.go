package mcp

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/writ-dev/writ/internal/audit"
)

// listing is what an agent was shown by initialize or a list request.
type listing struct {
	method string
	// server is the MCPServer's name, "" on the aggregate endpoint.
	server string
	// pins maps each tool the agent may use (as it is named to the agent)
	// to its pinned digest.
	pins map[string]string
	// shown is the number of items the answer held.
	shown int
}

// record puts an initialize or list request on the audit log: one event
// with the caller, the server, the protocol revision and the digest of
// the pinned tools the agent was shown. It fails when the event cannot be
// recorded, and the agent is then refused (writ fails closed).
func (g *Gateway) record(ctx context.Context, caller Caller, req sdk.Request, revision string, l listing) error {
	typ := audit.MCPListed
	if l.method == "initialize" {
		typ = audit.MCPInitialized
	}
	if revision == "" {
		revision = revisionOf(req)
	}
	target, server := "MCPServer/*", "*"
	if l.server != "" {
		target, server = "MCPServer/"+l.server, l.server
	}
	d := map[string]string{"mcp_method": l.method, "mcp_server": server, "protocol": revision,
		"pins_digest": pinsDigest(l.pins), "tools": strconv.Itoa(len(l.pins)), "shown": strconv.Itoa(l.shown)}
	if s := req.GetSession(); s != nil && s.ID() != "" {
		d["mcp_session"] = s.ID()
	}
	ev := audit.Event{Type: typ, SpiffeID: caller.SpiffeID, Instance: caller.Instance, Task: caller.Task,
		Target: target, Action: l.method, Details: d}
	if ev.SpiffeID == "" {
		ev.Actor = caller.Key
	}
	if err := g.cfg.Emitter.Emit(ctx, ev); err != nil {
		g.cfg.Log.ErrorContext(ctx, "record MCP request; refused", "method", l.method, "server", server, "error", err)
		return rpcError(CodeUnavailable, "the audit log could not record this request, so it was not answered (writ fails closed); try again", nil)
	}
	return nil
}

// pinsDigest is the digest of the canonical JSON object mapping each tool
// to its pinned digest: it changes exactly when the tools an agent may use,
// or any of their descriptors, change.
func pinsDigest(pins map[string]string) string {
	if pins == nil {
		pins = map[string]string{}
	}
	raw, _ := json.Marshal(pins)
	c, err := Canonical(raw)
	if err != nil {
		return ""
	}
	return Digest(c)
}

// revisionOf is the protocol revision a request was made under: its
// Mcp-Protocol-Version header, or the one its session negotiated.
func revisionOf(req sdk.Request) string {
	if ex := req.GetExtra(); ex != nil && ex.Header != nil {
		if v := ex.Header.Get("Mcp-Protocol-Version"); v != "" {
			return v
		}
	}
	if ss, ok := req.GetSession().(*sdk.ServerSession); ok && ss != nil {
		if p := ss.InitializeParams(); p != nil {
			return p.ProtocolVersion
		}
	}
	return ""
}

// usablePins returns the pinned digests of a backend's usable tools, named
// as prefix+name.
func (b *backend) usablePins(prefix string, into map[string]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(b.tools)) {
		into[prefix+name] = b.digests[name]
	}
}

// pinsOf returns the pinned digests of every tool a front serves: one
// server's, or every server's on the aggregate endpoint.
func (g *Gateway) pinsOf(server string) map[string]string {
	out := map[string]string{}
	if server != "" {
		if b := g.backend(server); b != nil {
			b.usablePins("", out)
		}
		return out
	}
	g.mu.Lock()
	bs := slices.Collect(maps.Values(g.backends))
	g.mu.Unlock()
	for _, b := range bs {
		b.usablePins(b.srv.Name+Separator, out)
	}
	return out
}
