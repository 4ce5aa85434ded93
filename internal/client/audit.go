package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/writ-dev/writ/internal/apitypes"
)

// AuditKey returns the audit log's public verifier key.
func (c *Client) AuditKey(ctx context.Context) (apitypes.AuditKey, error) {
	var k apitypes.AuditKey
	err := c.Do(ctx, http.MethodGet, "/v1/audit/key", nil, &k)
	return k, err
}

// AuditCheckpoint returns the latest signed checkpoint; fresh asks the
// server to sign one covering every event first.
func (c *Client) AuditCheckpoint(ctx context.Context, fresh bool) (apitypes.SignedCheckpoint, error) {
	path := "/v1/audit/checkpoint"
	if fresh {
		path += "?fresh=1"
	}
	var cp apitypes.SignedCheckpoint
	err := c.Do(ctx, http.MethodGet, path, nil, &cp)
	return cp, err
}

// AuditSearch returns the events matching q, newest first unless
// q.Ascending.
func (c *Client) AuditSearch(ctx context.Context, q apitypes.AuditQuery) (apitypes.AuditSearchResult, error) {
	var res apitypes.AuditSearchResult
	err := c.Do(ctx, http.MethodGet, auditURL("/v1/audit/events", q.Values()), nil, &res)
	return res, err
}

// AuditEvent returns one event by id.
func (c *Client) AuditEvent(ctx context.Context, id string) (apitypes.AuditEntry, error) {
	var e apitypes.AuditEntry
	err := c.Do(ctx, http.MethodGet, "/v1/audit/events/"+url.PathEscape(id), nil, &e)
	return e, err
}

// AuditProve returns the inclusion proof of the event with id.
func (c *Client) AuditProve(ctx context.Context, id string) (apitypes.InclusionProof, error) {
	var p apitypes.InclusionProof
	err := c.Do(ctx, http.MethodGet, "/v1/audit/events/"+url.PathEscape(id)+"/proof", nil, &p)
	return p, err
}

// AuditConsistency returns the proof that the latest checkpoint extends
// the log of size from. The proof's Old is empty: fill in the caller's
// own checkpoint of that size before verifying it.
func (c *Client) AuditConsistency(ctx context.Context, from int64) (apitypes.ConsistencyProof, error) {
	var p apitypes.ConsistencyProof
	err := c.Do(ctx, http.MethodGet, "/v1/audit/consistency?from="+strconv.FormatInt(from, 10), nil, &p)
	return p, err
}

// streaming returns a copy of c whose HTTP client has no overall timeout,
// for responses that last as long as the caller wants.
func (c *Client) streaming() *Client {
	s := *c
	h := *c.HTTP
	h.Timeout = 0
	s.HTTP = &h
	return &s
}

// AuditTail streams entries matching q as they are appended, calling fn
// for each, until ctx ends, fn returns an error, or the server closes the
// stream. It starts after index after, or with the next event appended if
// after is negative.
func (c *Client) AuditTail(ctx context.Context, q apitypes.AuditQuery, after int64, fn func(apitypes.AuditEntry) error) error {
	q.After, q.Before, q.Limit, q.Ascending = 0, 0, 0, false
	v := q.Values()
	if after >= 0 {
		v.Set("after", strconv.FormatInt(after+1, 10))
	}
	resp, err := c.streaming().Raw(ctx, http.MethodGet, auditURL("/v1/audit/tail", v), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	err = readSSE(resp.Body, func(event string, data []byte) error {
		switch event {
		case "audit":
			var e apitypes.AuditEntry
			if err := json.Unmarshal(data, &e); err != nil {
				return fmt.Errorf("tail audit log: decode event: %w", err)
			}
			return fn(e)
		case "error":
			var msg string
			json.Unmarshal(data, &msg)
			return fmt.Errorf("tail audit log: server: %s", msg)
		}
		return nil
	})
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return err
	}
	return errors.New("tail audit log: the server closed the stream (shutting down?)")
}

// readSSE calls fn for every event of a text/event-stream body.
func readSSE(r io.Reader, fn func(event string, data []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var (
		event string
		data  bytes.Buffer
	)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if data.Len() > 0 {
				if event == "" {
					event = "message"
				}
				if err := fn(event, bytes.TrimSuffix(data.Bytes(), []byte("\n"))); err != nil {
					return err
				}
			}
			event = ""
			data.Reset()
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			event = string(value)
		case "data":
			data.Write(value)
			data.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read event stream: %w", err)
	}
	return nil
}

// AuditExport returns the entries matching q as JSON lines, oldest first.
// The caller closes the body. A failure on the server part-way cuts the
// stream after an incomplete line, so a body that does not end in a
// newline is incomplete.
func (c *Client) AuditExport(ctx context.Context, q apitypes.AuditQuery) (io.ReadCloser, error) {
	v := q.Values()
	v.Set("format", "jsonl")
	resp, err := c.streaming().Raw(ctx, http.MethodGet, auditURL("/v1/audit/export", v), nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func auditURL(path string, v url.Values) string {
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}
