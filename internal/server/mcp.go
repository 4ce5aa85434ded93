package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/mcp"
	"github.com/writ-dev/writ/internal/mcplint"
	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/node/nodeserver"
	"github.com/writ-dev/writ/internal/proxy"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/secrets"
	"github.com/writ-dev/writ/internal/store"
)

// mcpPart is the MCP gateway, served on the proxy listener at /mcp and
// /mcp/NAME and enforced by the proxy's enforcer.
type mcpPart struct {
	gw     *mcp.Gateway
	reload sync.Mutex

	// recheck holds the MCP servers whose pins changed and that the
	// gateway has not re-decided yet; rechecking is set while one
	// goroutine works through them (a first listing of many tools makes
	// one pass, not one per pin).
	recheckMu  sync.Mutex
	recheck    map[string]bool
	rechecking bool
}

// initMCP builds the gateway over the proxy's enforcer; initProxy calls
// it between the two so that the proxy can mount it.
func (s *Server) initMCP(closers *[]func()) error {
	acc := &mcp.Access{Enforcer: s.px.enforcer, Policy: s.policy, Conn: proxy.ConnFrom, Now: s.now}
	// Fingerprints of redacted secrets are only compared within this
	// process, so a random key will do.
	det, err := secrets.New(secrets.Config{FingerprintKey: []byte(rand.Text())})
	if err != nil {
		return fmt.Errorf("build the secret detector: %w", err)
	}
	// The lint's rules (about 3 MiB compiled) are built when the gateway
	// first pins a tool, not by a writ that serves no MCP server. A lint
	// that cannot be built quarantines the tool (fail closed).
	lint := sync.OnceValues(func() (func(mcp.Descriptor) (bool, string), error) {
		l, err := mcplint.New(mcplint.Options{Secrets: det})
		if err != nil {
			return nil, err
		}
		return mcp.LintWith(l), nil
	})
	s.mcp.gw = mcp.New(mcp.Config{
		Redactor: det,
		Lint: func(d mcp.Descriptor) (bool, string) {
			l, err := lint()
			if err != nil {
				return true, "the poisoning lint could not be built (" + err.Error() + ")"
			}
			return l(d)
		},
		Pins:                notifyingPins{PinStore: s.db, changed: s.pinsChanged},
		Emitter:             s.emit,
		Credentials:         s.px.broker,
		Identifier:          acc,
		Authorizer:          acc,
		AuthorizationServer: s.cfg.Server.PublicURL,
		Log:                 s.log.With("component", "mcp"),
		Now:                 s.now,
	})
	acc.Server = s.mcp.gw.Server
	*closers = append(*closers, func() { s.mcp.gw.Close() })
	return nil
}

// reloadMCP makes the gateway serve the stored MCPServer documents. One
// that no longer compiles (its manifest went away) is left out and logged.
func (s *Server) reloadMCP(ctx context.Context) error {
	s.mcp.reload.Lock()
	defer s.mcp.reload.Unlock()
	rs, err := s.db.ListResources(ctx, resource.KindMCPServer)
	if err != nil {
		return fmt.Errorf("load MCP servers: %w", err)
	}
	var servers []*mcp.Server
	for _, r := range rs {
		srv, err := mcp.Compile(r)
		if err != nil {
			s.log.ErrorContext(ctx, "MCP server left out of the gateway", "server", r.Name, "error", err)
			continue
		}
		servers = append(servers, srv)
	}
	s.mcp.gw.SetServers(servers)
	s.log.InfoContext(ctx, "MCP servers loaded", "servers", len(servers))
	return nil
}

// MCPGateway returns the MCP gateway.
func (s *Server) MCPGateway() *mcp.Gateway { return s.mcp.gw }

// mcpAdmin is the gateway's administration for the admin API.
type mcpAdmin struct{ s *Server }

func (m mcpAdmin) Pins(ctx context.Context, server string) ([]store.Pin, error) {
	return m.s.db.ListPins(ctx, server)
}

func (m mcpAdmin) Approve(ctx context.Context, server, tool, actor string) (store.Pin, error) {
	return m.s.mcp.gw.Approve(ctx, server, tool, actor)
}

func (m mcpAdmin) Servers() []apitypes.MCPServer {
	var out []apitypes.MCPServer
	for _, st := range m.s.mcp.gw.Status() {
		out = append(out, apitypes.MCPServer{Name: st.Name, Version: st.Version, Upstream: st.Upstream, Pin: st.Pin,
			Connected: st.Connected, Starts: st.Starts, Tools: st.Tools, Quarantined: st.Quarantined})
	}
	if out == nil {
		out = []apitypes.MCPServer{}
	}
	return out
}

func (m mcpAdmin) Tools(ctx context.Context, server string) (apitypes.MCPTools, error) {
	tools, err := m.s.mcp.gw.Tools(ctx, server)
	switch {
	case errors.Is(err, mcp.ErrNoServer):
		return apitypes.MCPTools{}, fmt.Errorf("%w: %v", store.ErrNotFound, err)
	case err != nil:
		return apitypes.MCPTools{}, apitypes.Errorf(http.StatusServiceUnavailable, "unavailable", "MCP server %s: %v", server, err)
	}
	out := apitypes.MCPTools{Server: server, Tools: make([]json.RawMessage, 0, len(tools))}
	for _, t := range tools {
		b, err := json.Marshal(t)
		if err != nil {
			return apitypes.MCPTools{}, fmt.Errorf("encode tool %q of MCP server %s: %w", t.Name, server, err)
		}
		out.Tools = append(out.Tools, b)
	}
	return out, nil
}

// notifyingPins is the pin store of the server's gateway: every change
// of a pin (a first sighting, a quarantine, an approval), whether the
// server's own gateway or a node's made it, is published to the nodes
// and the other servers, and re-decided by this server's gateway.
type notifyingPins struct {
	mcp.PinStore
	changed func(ctx context.Context, server string)
}

func (p notifyingPins) CreatePin(ctx context.Context, pin store.Pin) (store.Pin, error) {
	out, err := p.PinStore.CreatePin(ctx, pin)
	if err == nil {
		p.changed(ctx, pin.Server)
	}
	return out, err
}

func (p notifyingPins) UpdatePin(ctx context.Context, pin store.Pin) (store.Pin, error) {
	out, err := p.PinStore.UpdatePin(ctx, pin)
	if err == nil {
		p.changed(ctx, pin.Server)
	}
	return out, err
}

// pinsChanged publishes the pins and has this server's gateway decide the
// tools of server again from them (asynchronously: the change is made
// while a check holds the pinner).
func (s *Server) pinsChanged(ctx context.Context, server string) {
	if s.nodes.publisher != nil {
		s.nodes.publisher.PinsChanged(ctx)
	}
	gw := s.mcp.gw
	if gw == nil {
		return
	}
	m := &s.mcp
	m.recheckMu.Lock()
	if m.recheck == nil {
		m.recheck = map[string]bool{}
	}
	m.recheck[server] = true
	if m.rechecking {
		m.recheckMu.Unlock()
		return
	}
	m.rechecking = true
	m.recheckMu.Unlock()
	go func() {
		ctx := context.WithoutCancel(ctx)
		for {
			m.recheckMu.Lock()
			todo := m.recheck
			m.recheck = nil
			if len(todo) == 0 {
				m.rechecking = false
				m.recheckMu.Unlock()
				return
			}
			m.recheckMu.Unlock()
			for name := range todo {
				if err := gw.Recheck(ctx, name); err != nil {
					s.log.Warn("re-decide MCP tools after a pin changed", "server", name, "error", err)
				}
			}
		}
	}()
}

// nodeMCP serves the MCP gateways of nodes (nodeserver.MCP).
type nodeMCP struct{ s *Server }

func (m nodeMCP) CheckTools(ctx context.Context, node, server string, raw []json.RawMessage) (map[string]nodeapi.MCPVerdict, error) {
	r, err := m.s.db.GetResource(ctx, resource.KindMCPServer, server)
	if err != nil {
		return nil, fmt.Errorf("MCPServer/%s: %w", server, err)
	}
	srv, err := mcp.Compile(r)
	if err != nil {
		return nil, err
	}
	tools := make([]mcp.Descriptor, 0, len(raw))
	out := make(map[string]nodeapi.MCPVerdict, len(raw))
	for i, b := range raw {
		var d mcp.Descriptor
		if err := json.Unmarshal(b, &d); err != nil || d.Name == "" {
			// Not decidable: refused like any tool that cannot be pinned.
			out[fmt.Sprintf("#%d", i)] = nodeapi.MCPVerdict{Reason: "its descriptor cannot be read"}
			continue
		}
		tools = append(tools, d)
	}
	vs, err := m.s.mcp.gw.Pinner().Check(mcp.WithNode(ctx, node), srv, tools)
	if err != nil {
		return nil, err
	}
	for name, v := range vs {
		out[name] = nodeapi.MCPVerdict{Usable: v.Usable, State: v.State, Reason: v.Reason, Digest: v.Digest}
	}
	return out, nil
}

// Credential hands a node the value of a broker credential that a stored
// MCPServer or Service document names (what the node's gateway and proxy
// inject), and no other; the release is audited.
func (m nodeMCP) Credential(ctx context.Context, node, name string) (nodeapi.MCPCredentialAnswer, error) {
	var named string
	for _, kind := range []string{resource.KindMCPServer, resource.KindService} {
		rs, err := m.s.db.ListResources(ctx, kind)
		if err != nil {
			return nodeapi.MCPCredentialAnswer{}, err
		}
		for _, r := range rs {
			var spec struct {
				Credential *struct {
					Name string `json:"name"`
				} `json:"credential"`
			}
			if json.Unmarshal(r.Spec, &spec) == nil && spec.Credential != nil && spec.Credential.Name == name {
				named = kind + "/" + r.Name
				break
			}
		}
		if named != "" {
			break
		}
	}
	if named == "" || name == "" {
		return nodeapi.MCPCredentialAnswer{}, nodeserver.ErrNotNamed
	}
	info, secret, err := m.s.px.broker.Get(ctx, name)
	if err != nil {
		return nodeapi.MCPCredentialAnswer{}, err
	}
	if err := m.s.emit.Emit(ctx, audit.Event{Type: audit.NodeCredentialReleased, Node: node, Credential: name, Target: named,
		Details: map[string]string{"version": fmt.Sprint(info.Version)}}); err != nil {
		return nodeapi.MCPCredentialAnswer{}, fmt.Errorf("record the release of credential %s: %w", name, err)
	}
	return nodeapi.MCPCredentialAnswer{Name: info.Name, Type: string(info.Type), Version: info.Version, Value: secret.Reveal()}, nil
}
