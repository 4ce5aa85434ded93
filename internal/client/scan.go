package client

import (
	"context"
	"net/http"

	"github.com/writ-dev/writ/internal/apitypes"
)

// FingerprintKey returns the deployment's fingerprint key (GET /v1/scan/key).
func (c *Client) FingerprintKey(ctx context.Context) (apitypes.FingerprintKey, error) {
	var out apitypes.FingerprintKey
	err := c.Do(ctx, http.MethodGet, "/v1/scan/key", nil, &out)
	return out, err
}

// ReportScan sends a scan's findings to be ranked and recorded
// (POST /v1/scan/findings).
func (c *Client) ReportScan(ctx context.Context, req apitypes.ScanReportRequest) (apitypes.ScanReportResponse, error) {
	var out apitypes.ScanReportResponse
	err := c.Do(ctx, http.MethodPost, "/v1/scan/findings", req, &out)
	return out, err
}
