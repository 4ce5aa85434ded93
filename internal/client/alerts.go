package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/writ-dev/writ/internal/apitypes"
)

// AlertQuery selects alerts; empty fields select everything. Since is an
// RFC 3339 time.
type AlertQuery struct {
	State, Rule, Severity, Since string
}

// Alerts lists alerts with their summary and the catalogue (GET /v1/alerts).
func (c *Client) Alerts(ctx context.Context, q AlertQuery) (apitypes.AlertList, error) {
	v := url.Values{}
	for k, s := range map[string]string{"state": q.State, "rule": q.Rule, "severity": q.Severity, "since": q.Since} {
		if s != "" {
			v.Set(k, s)
		}
	}
	path := "/v1/alerts"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out apitypes.AlertList
	err := c.Do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// DecideAlert acknowledges (resolve false) or resolves alert id.
func (c *Client) DecideAlert(ctx context.Context, id string, resolve bool, note string) (apitypes.Alert, error) {
	verb := "/ack"
	if resolve {
		verb = "/resolve"
	}
	var a apitypes.Alert
	err := c.Do(ctx, http.MethodPost, "/v1/alerts/"+url.PathEscape(id)+verb, apitypes.AlertDecision{Note: note}, &a)
	return a, err
}
