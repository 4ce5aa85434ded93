package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/writ-dev/writ/internal/apitypes"
)

// Policies returns every stored AccessPolicy with its mode, digest and,
// for one in observe mode, what the server observed.
func (c *Client) Policies(ctx context.Context) ([]apitypes.PolicyStatus, error) {
	var out []apitypes.PolicyStatus
	err := c.Do(ctx, http.MethodGet, "/v1/policies", nil, &out)
	return out, err
}

// Policy returns one AccessPolicy's status.
func (c *Client) Policy(ctx context.Context, name string) (apitypes.PolicyStatus, error) {
	var out apitypes.PolicyStatus
	err := c.Do(ctx, http.MethodGet, "/v1/policies/"+url.PathEscape(name), nil, &out)
	return out, err
}

// PromotePolicy makes the observed policy name enforcing, if its digest
// is still digest.
func (c *Client) PromotePolicy(ctx context.Context, name, digest string) (apitypes.PromoteResponse, error) {
	var out apitypes.PromoteResponse
	err := c.Do(ctx, http.MethodPost, "/v1/policies/"+url.PathEscape(name)+"/promote", apitypes.PromoteRequest{ExpectDigest: digest}, &out)
	return out, err
}

// ReplayPolicy asks the server what promoting the observed policy name
// would have changed on the traffic recorded since it was applied
// (POST /v1/policies/{name}/replay); digest, when set, must be its digest.
func (c *Client) ReplayPolicy(ctx context.Context, name, digest string) (apitypes.PolicyReplay, error) {
	var out apitypes.PolicyReplay
	err := c.Do(ctx, http.MethodPost, "/v1/policies/"+url.PathEscape(name)+"/replay", apitypes.PolicyReplayRequest{ExpectDigest: digest}, &out)
	return out, err
}
