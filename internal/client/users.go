package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/writ-dev/writ/internal/apitypes"
)

// AddUser creates a local console account with a role (viewer, approver
// or admin), in groups. The password travels to the server once; only
// its argon2id hash is kept.
func (c *Client) AddUser(ctx context.Context, name, role, password string, groups ...string) (apitypes.User, error) {
	var out apitypes.User
	err := c.Do(ctx, http.MethodPost, "/v1/users", apitypes.UserRequest{Name: name, Role: role, Groups: groups, Password: password}, &out)
	return out, err
}

// ChangeUserGroups changes a local account's groups (see
// apitypes.GroupsRequest) and returns the account.
func (c *Client) ChangeUserGroups(ctx context.Context, name string, req apitypes.GroupsRequest) (apitypes.User, error) {
	var out apitypes.User
	err := c.Do(ctx, http.MethodPatch, "/v1/users/"+url.PathEscape(name)+"/groups", req, &out)
	return out, err
}

// ListUsers lists the console's accounts.
func (c *Client) ListUsers(ctx context.Context) ([]apitypes.User, error) {
	var out []apitypes.User
	err := c.Do(ctx, http.MethodGet, "/v1/users", nil, &out)
	return out, err
}

// RemoveUser deletes an account and ends its sessions.
func (c *Client) RemoveUser(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/users/"+url.PathEscape(name), nil, nil)
}

// SetUserPassword replaces a local account's password and ends its
// sessions.
func (c *Client) SetUserPassword(ctx context.Context, name, password string) error {
	return c.Do(ctx, http.MethodPut, "/v1/users/"+url.PathEscape(name)+"/password", apitypes.UserRequest{Password: password}, nil)
}
