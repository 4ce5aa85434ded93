package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/writ-dev/writ/internal/apitypes"
)

// Discover asks the server to scan its host now with the runtime sensor.
func (c *Client) Discover(ctx context.Context) (apitypes.DiscoveryReport, error) {
	var out apitypes.DiscoveryReport
	err := c.Do(ctx, http.MethodPost, "/v1/discover", nil, &out)
	return out, err
}

// InventoryQuery filters the inventory; empty fields select everything.
type InventoryQuery struct {
	Kind     string // identity, instance, agent, mcp_server, process, credential, mcp_config, service, host, owner
	Shadow   string // "true", "false" or ""
	Identity string // a SPIFFE ID
	Host     string
}

// Inventory returns what writ knows runs or ran.
func (c *Client) Inventory(ctx context.Context, q InventoryQuery) (apitypes.Inventory, error) {
	v := url.Values{}
	for k, s := range map[string]string{"kind": q.Kind, "shadow": q.Shadow, "identity": q.Identity, "host": q.Host} {
		if s != "" {
			v.Set(k, s)
		}
	}
	path := "/v1/inventory"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out apitypes.Inventory
	err := c.Do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}
