package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/writ-dev/writ/internal/apitypes"
)

// MCPPins lists the MCP gateway's tool pins, of one server or ("") all.
func (c *Client) MCPPins(ctx context.Context, server string) ([]apitypes.MCPPin, error) {
	path := "/v1/mcp/pins"
	if server != "" {
		path += "?server=" + url.QueryEscape(server)
	}
	var out []apitypes.MCPPin
	err := c.Do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// MCPApprove approves the quarantined tool of server: its current
// descriptor is trusted from then on.
func (c *Client) MCPApprove(ctx context.Context, server, tool string) (apitypes.MCPPin, error) {
	var out apitypes.MCPPin
	err := c.Do(ctx, http.MethodPost, "/v1/mcp/pins/"+url.PathEscape(server)+"/"+url.PathEscape(tool)+"/approve", struct{}{}, &out)
	return out, err
}

// MCPServers lists the MCP servers the gateway serves.
func (c *Client) MCPServers(ctx context.Context) ([]apitypes.MCPServer, error) {
	var out []apitypes.MCPServer
	err := c.Do(ctx, http.MethodGet, "/v1/mcp/servers", nil, &out)
	return out, err
}

// MCPTools lists the tools server's upstream announces now, quarantined
// ones included.
func (c *Client) MCPTools(ctx context.Context, server string) (apitypes.MCPTools, error) {
	var out apitypes.MCPTools
	err := c.Do(ctx, http.MethodGet, "/v1/mcp/servers/"+url.PathEscape(server)+"/tools", nil, &out)
	return out, err
}
