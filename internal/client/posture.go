package client

import (
	"context"
	"net/http"

	"github.com/writ-dev/writ/internal/apitypes"
)

// Posture returns the posture findings (GET /v1/posture).
func (c *Client) Posture(ctx context.Context) (apitypes.Posture, error) {
	var out apitypes.Posture
	err := c.Do(ctx, http.MethodGet, "/v1/posture", nil, &out)
	return out, err
}

// Tier returns the zero-trust tier report (GET /v1/tier).
func (c *Client) Tier(ctx context.Context) (apitypes.TierReport, error) {
	var out apitypes.TierReport
	err := c.Do(ctx, http.MethodGet, "/v1/tier", nil, &out)
	return out, err
}
