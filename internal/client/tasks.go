package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/writ-dev/writ/internal/apitypes"
)

// OpenTask opens a task. A task that needs approval comes back pending.
// An operator names the agent with SpiffeID (and optionally Instance).
func (c *Client) OpenTask(ctx context.Context, req apitypes.OpenTaskRequest) (apitypes.Task, error) {
	var t apitypes.Task
	err := c.Do(ctx, http.MethodPost, "/v1/tasks", req, &t)
	return t, err
}

// ListTasks lists tasks, newest first; empty filter fields match all.
func (c *Client) ListTasks(ctx context.Context, f apitypes.TaskFilter) ([]apitypes.Task, error) {
	q := url.Values{}
	for k, v := range map[string]string{"spiffe_id": f.SpiffeID, "instance": f.Instance, "state": f.State} {
		if v != "" {
			q.Set(k, v)
		}
	}
	path := "/v1/tasks"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out []apitypes.Task
	err := c.Do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// GetTask returns one task; wait (e.g. "60s", empty for none) first waits
// for a pending task's approval.
func (c *Client) GetTask(ctx context.Context, id, wait string) (apitypes.Task, error) {
	path := "/v1/tasks/" + url.PathEscape(id)
	if wait != "" {
		path += "?wait=" + url.QueryEscape(wait)
	}
	var t apitypes.Task
	err := c.Do(ctx, http.MethodGet, path, nil, &t)
	return t, err
}

// CloseTask closes a task and revokes every token minted under it.
func (c *Client) CloseTask(ctx context.Context, id, reason string) (apitypes.Task, error) {
	var t apitypes.Task
	err := c.Do(ctx, http.MethodPost, "/v1/tasks/"+url.PathEscape(id)+"/close", apitypes.CloseTaskRequest{Reason: reason}, &t)
	return t, err
}

// Revoke pulls the kill switch: req.Kind is spiffe_id, instance, task or
// token. A value that names nothing known is refused with ErrNotFound
// unless req.Force.
func (c *Client) Revoke(ctx context.Context, req apitypes.RevokeRequest) (apitypes.Revocation, error) {
	var r apitypes.Revocation
	err := c.Do(ctx, http.MethodPost, "/v1/revoke", req, &r)
	return r, err
}

// LiftRevocation takes a revocation back and returns it; ErrNotFound if
// nothing of that kind and value is revoked.
func (c *Client) LiftRevocation(ctx context.Context, req apitypes.LiftRequest) (apitypes.Revocation, error) {
	var r apitypes.Revocation
	err := c.Do(ctx, http.MethodPost, "/v1/revocations/lift", req, &r)
	return r, err
}

// ListRevocations lists the revocations in force.
func (c *Client) ListRevocations(ctx context.Context) ([]apitypes.Revocation, error) {
	var out []apitypes.Revocation
	err := c.Do(ctx, http.MethodGet, "/v1/revocations", nil, &out)
	return out, err
}

// ListApprovals lists approval requests in state (all when empty).
func (c *Client) ListApprovals(ctx context.Context, state string) ([]apitypes.Approval, error) {
	path := "/v1/approvals"
	if state != "" {
		path += "?state=" + url.QueryEscape(state)
	}
	var out []apitypes.Approval
	err := c.Do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// DecideApproval approves or denies a pending request.
func (c *Client) DecideApproval(ctx context.Context, id string, approve bool, comment string) (apitypes.Approval, error) {
	verb := "/deny"
	if approve {
		verb = "/approve"
	}
	var a apitypes.Approval
	err := c.Do(ctx, http.MethodPost, "/v1/approvals/"+url.PathEscape(id)+verb, apitypes.DecideRequest{Comment: comment}, &a)
	return a, err
}

// OAuthError is an OAuth error answer (RFC 6749 §5.2).
type OAuthError struct {
	Status      int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *OAuthError) Error() string { return e.Code + ": " + e.Description }

// PostForm posts an OAuth form (token, introspection, revocation) and
// decodes a 2xx JSON answer into out (nil to discard). The client's
// credential is sent as the bearer unless form carries the identity.
func (c *Client) PostForm(ctx context.Context, path string, form url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+path, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w (is writ running? check --addr / WRIT_ADDR)", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		oe := &OAuthError{Status: resp.StatusCode}
		if json.Unmarshal(body, oe) != nil || oe.Code == "" {
			return fmt.Errorf("POST %s: server answered %s", path, resp.Status)
		}
		return oe
	}
	if out == nil || len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("POST %s: decode answer: %w", path, err)
	}
	return nil
}

// Metadata fetches the authorization server metadata (RFC 8414).
func (c *Client) Metadata(ctx context.Context) (map[string]any, error) {
	var m map[string]any
	err := c.Do(ctx, http.MethodGet, "/.well-known/oauth-authorization-server", nil, &m)
	return m, err
}
