package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
)

// Posture returns the posture findings (GET /v1/posture).
// unusedAfter is the window of the unused_grant check (0: the server's
// default).
func (c *Client) Posture(ctx context.Context, unusedAfter time.Duration) (apitypes.Posture, error) {
	var out apitypes.Posture
	path := "/v1/posture"
	if unusedAfter > 0 {
		path += "?unused_after=" + url.QueryEscape(unusedAfter.String())
	}
	err := c.Do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// Tier returns the zero-trust tier report (GET /v1/tier).
func (c *Client) Tier(ctx context.Context) (apitypes.TierReport, error) {
	var out apitypes.TierReport
	err := c.Do(ctx, http.MethodGet, "/v1/tier", nil, &out)
	return out, err
}
