package client

import (
	"context"
	"net/http"

	"github.com/writ-dev/writ/internal/apitypes"
)

// Graph returns the lineage graph q selects (GET /v1/graph).
func (c *Client) Graph(ctx context.Context, q apitypes.GraphQuery) (apitypes.Graph, error) {
	path := "/v1/graph"
	if v := q.Values(); len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out apitypes.Graph
	err := c.Do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}
