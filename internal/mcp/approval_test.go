package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/writ-dev/writ/internal/approval"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/store"
)

// headers adds an agent's token and other headers to every request of an
// SDK client.
type headers map[string]string

func (h headers) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func connectWith(t *testing.T, endpoint, version string, h headers) *sdk.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: h}},
		&sdk.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect to %s at %s: %v", endpoint, version, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

const approvalPolicy = `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: files-agent}
spec:
  subjects: [spiffe://writ.local/agent/a, spiffe://writ.local/agent/b]
  rules:
    - name: read
      effect: allow
      targets: [{mcp: {server: files, tools: [read_file]}}]
    - name: write-needs-a-human
      description: writes need a person's approval
      effect: allow
      targets: [{mcp: {server: files, tools: [write_file]}}]
      approval: {approvers: [user:bob, "spiffe://writ.local/agent/b"], timeout: 10m}
`

// pendingApproval waits for the one pending approval request.
func pendingApproval(t *testing.T, s *approval.Service) store.Approval {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		ps, err := s.List(context.Background(), store.ApprovalPending)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == 1 {
			return ps[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pending approvals, want 1", len(ps))
		}
	}
}

// An MCP call that policy holds for approval, with the official SDK
// client as the agent: it waits while the request is pending, the agent's
// own identity cannot approve it, another approver can, and the held
// call then completes. The approval is bound to the server, the tool and
// the digest of the canonical arguments, and used once: presented again,
// or for other arguments, it permits nothing.
func TestGatewayApprovalHold(t *testing.T) {
	up := newTestUpstream(t)
	f := newEnforced(t, approvalPolicy, httpServer(t, "files", up.http.URL))
	ctx := context.Background()
	agent := headers{"Authorization": "Bearer agent-token"}
	cs := connectWith(t, f.url+"/mcp/files", "2025-11-25", agent)
	waitTools(t, cs, "read_file,write_file")

	type result struct {
		res *sdk.CallToolResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "write_file", Arguments: map[string]any{"path": "/allowed/x"}})
		done <- result{res, err}
	}()
	a := pendingApproval(t, f.approvals)
	wantBinding := "MCPServer/files tools/call write_file " + Digest([]byte(`{"path":"/allowed/x"}`))
	if a.Binding != wantBinding || a.SpiffeID != "spiffe://writ.local/agent/a" || a.Rule != "write-needs-a-human" {
		t.Fatalf("approval = %+v; want binding %q", a, wantBinding)
	}
	select {
	case r := <-done:
		t.Fatalf("the call finished before the decision: %+v, %v", r.res, r.err)
	default:
	}
	if _, err := f.approvals.Decide(ctx, a.ID, true, "spiffe://writ.local/agent/a", ""); !errors.Is(err, approval.ErrSelfApproval) {
		t.Fatalf("self-approval: %v, want ErrSelfApproval", err)
	}
	if _, err := f.approvals.Decide(ctx, a.ID, true, "spiffe://writ.local/agent/b", "looks fine"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || callText(r.res) != "wrote /allowed/x" {
		t.Fatalf("held call = %+v, %v", r.res, r.err)
	}
	if used, _ := f.approvals.Get(ctx, a.ID); used.UsedAt.IsZero() {
		t.Errorf("the approval was not marked used: %+v", used)
	}

	// Presented again for the same arguments, the used approval permits
	// nothing.
	meta := sdk.Meta{ApprovalMeta: a.ID}
	_, err := cs.CallTool(ctx, &sdk.CallToolParams{Meta: meta, Name: "write_file", Arguments: map[string]any{"path": "/allowed/x"}})
	if code, msg := rpcCode(err); code != CodeDenied || !strings.Contains(msg, "used already") {
		t.Fatalf("replayed approval: %v", err)
	}
	if f.ev.Count(audit.ApprovalUsed) != 1 {
		t.Errorf("approval.used events: %d", f.ev.Count(audit.ApprovalUsed))
	}
}

// An agent whose held call stopped waiting (its request was cancelled)
// retries with the approval granted meanwhile: the approval permits the
// exact call it was asked for once, not the same tool with other
// arguments, and not a call of another identity.
func TestGatewayApprovalRetry(t *testing.T) {
	up := newTestUpstream(t)
	f := newEnforced(t, approvalPolicy, httpServer(t, "files", up.http.URL))
	ctx := context.Background()
	// Stateless revision: the held call ends when its HTTP request does.
	cs := connectWith(t, f.url+"/mcp/files", "2026-07-28", headers{"Authorization": "Bearer agent-token"})
	waitTools(t, cs, "read_file,write_file")
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(cctx, &sdk.CallToolParams{Name: "write_file", Arguments: map[string]any{"path": "/allowed/y"}})
		done <- err
	}()
	a := pendingApproval(t, f.approvals)
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the cancelled call succeeded")
	}
	if _, err := f.approvals.Decide(ctx, a.ID, true, "admin:bob", ""); err != nil {
		t.Fatal(err)
	}
	meta := sdk.Meta{ApprovalMeta: a.ID}
	for _, tc := range []struct {
		name string
		cs   *sdk.ClientSession
		args map[string]any
		want string
	}{
		{"other arguments", cs, map[string]any{"path": "/allowed/z"}, "was granted for MCPServer/files tools/call write_file sha256:"},
		{"extra argument", cs, map[string]any{"path": "/allowed/y", "force": true}, "not for"},
		{"other identity", connectWith(t, f.url+"/mcp/files", "2026-07-28", headers{"Authorization": "Bearer other-token"}),
			map[string]any{"path": "/allowed/y"}, "another identity"},
	} {
		_, err := tc.cs.CallTool(ctx, &sdk.CallToolParams{Meta: meta, Name: "write_file", Arguments: tc.args})
		if code, msg := rpcCode(err); code != CodeDenied || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %v, want a denial saying %q", tc.name, err, tc.want)
		}
	}
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Meta: meta, Name: "write_file", Arguments: map[string]any{"path": "/allowed/y"}})
	if err != nil || callText(res) != "wrote /allowed/y" {
		t.Fatalf("retry with the approval: %+v, %v", res, err)
	}
	_, err = cs.CallTool(ctx, &sdk.CallToolParams{Meta: meta, Name: "write_file", Arguments: map[string]any{"path": "/allowed/y"}})
	if code, msg := rpcCode(err); code != CodeDenied || !strings.Contains(msg, "used already") {
		t.Errorf("second retry: %v", err)
	}
}

// FuzzArgsBinding: an approval is bound to the digest of the canonical
// arguments, so two argument documents share a binding exactly when they
// mean the same JSON value — however they are spelled (key order, white
// space, escapes, number forms) — and never otherwise.
func FuzzArgsBinding(f *testing.F) {
	for _, s := range [][2]string{
		{`{"path":"/a","n":1}`, `{ "n" : 1.0 , "path" : "\/a" }`},
		{`{"to":["a@x"]}`, `{"to":["a@x","b@y"]}`},
		{`{"a":1e2}`, `{"a":100}`},
		{`{"a":"\u00e9"}`, `{"a":"é"}`},
		{`{"a":{"b":null}}`, `{"a":{}}`},
		{`{"a":9007199254740993}`, `{"a":9007199254740992}`},
		{`{"a":1,"a":2}`, `{"a":2}`},
		{`{}`, `null`},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ca, errA := Canonical([]byte(a))
		cb, errB := Canonical([]byte(b))
		if errA != nil || errB != nil {
			return
		}
		var va, vb any
		if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
			t.Fatalf("Canonical accepted what encoding/json refuses: %q / %q", a, b)
		}
		same := Digest(ca) == Digest(cb)
		if same != reflect.DeepEqual(va, vb) {
			t.Fatalf("%q and %q: same binding %v, same value %v (canonical %s / %s)", a, b, same, !same, ca, cb)
		}
	})
}

// The approval id an agent presents is read only as a string; anything
// else is ignored, so the call asks for approval afresh.
func TestApprovalMetaHostile(t *testing.T) {
	for _, tc := range []struct {
		meta sdk.Meta
		want string
	}{
		{nil, ""},
		{sdk.Meta{ApprovalMeta: 42.0}, ""},
		{sdk.Meta{ApprovalMeta: map[string]any{"id": "apr_x"}}, ""},
		{sdk.Meta{ApprovalMeta: []any{"apr_x"}}, ""},
		{sdk.Meta{ApprovalMeta: "apr_x"}, "apr_x"},
		{sdk.Meta{"writ.dev/Approval": "apr_x"}, ""},
	} {
		if got := approvalOf(tc.meta); got != tc.want {
			t.Errorf("approvalOf(%v) = %q, want %q", tc.meta, got, tc.want)
		}
	}
	// writ's keys never go upstream.
	if m := upstreamMeta(sdk.Meta{ApprovalMeta: "apr_x", "trace": "t1"}); len(m) != 1 || m["trace"] != "t1" {
		t.Errorf("upstreamMeta = %v", m)
	}
}
