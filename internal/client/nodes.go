package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/writ-dev/writ/internal/apitypes"
)

// CreateJoinToken creates a single-use node join token. The answer's
// Token is the secret, returned this once.
func (c *Client) CreateJoinToken(ctx context.Context, req apitypes.JoinTokenRequest) (apitypes.JoinToken, error) {
	var out apitypes.JoinToken
	err := c.Do(ctx, http.MethodPost, "/v1/nodes/tokens", req, &out)
	return out, err
}

// ListJoinTokens lists join tokens (without secrets).
func (c *Client) ListJoinTokens(ctx context.Context) ([]apitypes.JoinToken, error) {
	var out []apitypes.JoinToken
	err := c.Do(ctx, http.MethodGet, "/v1/nodes/tokens", nil, &out)
	return out, err
}

// DeleteJoinToken deletes a join token so it can no longer be used.
func (c *Client) DeleteJoinToken(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/nodes/tokens/"+url.PathEscape(id), nil, nil)
}

// ListNodes lists attested nodes.
func (c *Client) ListNodes(ctx context.Context) ([]apitypes.Node, error) {
	var out []apitypes.Node
	err := c.Do(ctx, http.MethodGet, "/v1/nodes", nil, &out)
	return out, err
}

// EvictNode evicts a node: its SVIDs stop working and it must join again.
func (c *Client) EvictNode(ctx context.Context, name, reason string) (apitypes.Node, error) {
	var out apitypes.Node
	err := c.Do(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(name)+"/evict", apitypes.EvictRequest{Reason: reason}, &out)
	return out, err
}
