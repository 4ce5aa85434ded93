package server

import (
	"context"
	"fmt"
	"sync"

	"github.com/writ-dev/writ/internal/mcp"
	"github.com/writ-dev/writ/internal/proxy"
	"github.com/writ-dev/writ/internal/resource"
)

// mcpPart is the MCP gateway, served on the proxy listener at /mcp and
// /mcp/NAME and enforced by the proxy's enforcer.
type mcpPart struct {
	gw     *mcp.Gateway
	reload sync.Mutex
}

// initMCP builds the gateway over the proxy's enforcer; initProxy calls
// it between the two so that the proxy can mount it.
func (s *Server) initMCP(closers *[]func()) {
	acc := &mcp.Access{Enforcer: s.px.enforcer, Policy: s.policy, Conn: proxy.ConnFrom, Now: s.now}
	s.mcp.gw = mcp.New(mcp.Config{
		Pins:                s.db,
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
