// Package client is the Go client of writ's admin API, used by the CLI. It
// speaks JSON over HTTP to a running server and authenticates with the
// admin credential (or an agent's SVID) as a bearer token. Each area of the
// API has its own file (entries.go, audit.go, ...) with typed methods; the
// bodies are the wire types of internal/apitypes and nothing else.
//
// A non-2xx answer is an [*Error] holding the server's message, which
// matches [ErrNotFound], [ErrConflict], [ErrUnauthorized], [ErrForbidden],
// [ErrInvalid], ... with errors.Is.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls one writ server.
type Client struct {
	base  *url.URL
	token string
	// HTTP is the client used; defaults to one with a 30s timeout.
	HTTP *http.Client
}

// New returns a client for the server at addr (e.g. http://127.0.0.1:8080).
func New(addr, token string) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(addr, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server address %q: want http://host:port or https://host:port (set WRIT_ADDR)", addr)
	}
	return &Client{base: u, token: token, HTTP: &http.Client{Timeout: 30 * time.Second}}, nil
}

// Do sends method path with body encoded as JSON (nil for none) and decodes
// a 2xx JSON answer into out (nil to discard). A non-2xx answer is returned
// as *Error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.Raw(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// Raw sends the request and returns the 2xx response for the caller to read
// (for streams and exports). A non-2xx answer is returned as *Error.
func (c *Client) Raw(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	u := c.base.String() + path
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach writ server at %s: %w (is `writ serve` running? set WRIT_ADDR)", c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, readError(resp)
	}
	return resp, nil
}
