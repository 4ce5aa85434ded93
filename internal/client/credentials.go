package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/writ-dev/writ/internal/broker"
)

// credentialBody is the write-only body of put and rotate.
type credentialBody struct {
	Name  string `json:"name,omitempty"`
	Type  string `json:"type,omitempty"`
	Value string `json:"value"`
}

// PutCredential stores a new upstream credential. The value travels to the
// server once and is never returned.
func (c *Client) PutCredential(ctx context.Context, name string, typ broker.Type, v broker.Secret) (broker.Info, error) {
	var out broker.Info
	err := c.Do(ctx, http.MethodPost, "/v1/credentials", credentialBody{Name: name, Type: string(typ), Value: v.Reveal()}, &out)
	return out, err
}

// RotateCredential replaces the value (and, if typ is set, the type) of a
// credential.
func (c *Client) RotateCredential(ctx context.Context, name string, typ broker.Type, v broker.Secret) (broker.Info, error) {
	var out broker.Info
	err := c.Do(ctx, http.MethodPut, "/v1/credentials/"+url.PathEscape(name), credentialBody{Type: string(typ), Value: v.Reveal()}, &out)
	return out, err
}

// ListCredentials lists credentials without their values.
func (c *Client) ListCredentials(ctx context.Context) ([]broker.Info, error) {
	var out []broker.Info
	err := c.Do(ctx, http.MethodGet, "/v1/credentials", nil, &out)
	return out, err
}

// DeleteCredential deletes a credential.
func (c *Client) DeleteCredential(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/credentials/"+url.PathEscape(name), nil, nil)
}

// ProxyCA returns the access proxy's interception CA certificate (PEM).
func (c *Client) ProxyCA(ctx context.Context) ([]byte, error) {
	resp, err := c.Raw(ctx, http.MethodGet, "/v1/proxy/ca", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read proxy CA: %w", err)
	}
	return b, nil
}
