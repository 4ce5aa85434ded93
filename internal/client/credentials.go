package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/writ-dev/writ/internal/apitypes"
)

// PutCredential stores a new upstream credential. The value travels to the
// server once and is never returned.
// typ is bearer (the default when empty), basic, header or query.
func (c *Client) PutCredential(ctx context.Context, name, typ, value string) (apitypes.Credential, error) {
	var out apitypes.Credential
	err := c.Do(ctx, http.MethodPost, "/v1/credentials", apitypes.CredentialRequest{Name: name, Type: typ, Value: value}, &out)
	return out, err
}

// RotateCredential replaces the value (and, if typ is set, the type) of a
// credential.
func (c *Client) RotateCredential(ctx context.Context, name, typ, value string) (apitypes.Credential, error) {
	var out apitypes.Credential
	err := c.Do(ctx, http.MethodPut, "/v1/credentials/"+url.PathEscape(name), apitypes.CredentialRequest{Type: typ, Value: value}, &out)
	return out, err
}

// ListCredentials lists credentials without their values.
func (c *Client) ListCredentials(ctx context.Context) ([]apitypes.Credential, error) {
	var out []apitypes.Credential
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
