package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/writ-dev/writ/internal/apitypes"
)

// CreateEntry registers a new identity.
func (c *Client) CreateEntry(ctx context.Context, e apitypes.Entry) (apitypes.Entry, error) {
	var out apitypes.Entry
	err := c.Do(ctx, http.MethodPost, "/v1/entries", e, &out)
	return out, err
}

// ListEntries returns every registration entry.
func (c *Client) ListEntries(ctx context.Context) ([]apitypes.Entry, error) {
	var out []apitypes.Entry
	err := c.Do(ctx, http.MethodGet, "/v1/entries", nil, &out)
	return out, err
}

// DeleteEntry deletes the entry with name (or the only entry with that
// SPIFFE ID) and returns it.
func (c *Client) DeleteEntry(ctx context.Context, name string) (apitypes.Entry, error) {
	var out apitypes.Entry
	err := c.Do(ctx, http.MethodDelete, "/v1/entries/"+url.PathEscape(name), nil, &out)
	return out, err
}

// Apply sends declarative documents to the server.
func (c *Client) Apply(ctx context.Context, req apitypes.ApplyRequest) (apitypes.ApplyResponse, error) {
	var out apitypes.ApplyResponse
	err := c.Do(ctx, http.MethodPost, "/v1/apply", req, &out)
	return out, err
}

// ListResources returns the current version of every resource of kind.
func (c *Client) ListResources(ctx context.Context, kind string) ([]apitypes.Resource, error) {
	var out []apitypes.Resource
	err := c.Do(ctx, http.MethodGet, "/v1/resources/"+url.PathEscape(kind), nil, &out)
	return out, err
}

// GetResource returns one resource.
func (c *Client) GetResource(ctx context.Context, kind, name string) (apitypes.Resource, error) {
	var out apitypes.Resource
	err := c.Do(ctx, http.MethodGet, "/v1/resources/"+url.PathEscape(kind)+"/"+url.PathEscape(name), nil, &out)
	return out, err
}

// DeleteResource deletes one resource.
func (c *Client) DeleteResource(ctx context.Context, kind, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/resources/"+url.PathEscape(kind)+"/"+url.PathEscape(name), nil, nil)
}

// ListInstances returns the attested process instances.
func (c *Client) ListInstances(ctx context.Context) ([]apitypes.Instance, error) {
	var out []apitypes.Instance
	err := c.Do(ctx, http.MethodGet, "/v1/instances", nil, &out)
	return out, err
}

// ExplainProcess attests the local process pid on the server's host and
// says which entries it matches and which identity it gets.
func (c *Client) ExplainProcess(ctx context.Context, pid int) (apitypes.ProcessExplanation, error) {
	var out apitypes.ProcessExplanation
	err := c.Do(ctx, http.MethodGet, "/v1/processes/"+strconv.Itoa(pid), nil, &out)
	return out, err
}
