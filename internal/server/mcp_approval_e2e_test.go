package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/mcp"
)

type sendArgs struct {
	To   string `json:"to"`
	Body string `json:"body"`
}

// newMailUpstream is a Go SDK MCP server with a "send" tool, over
// streamable HTTP.
func newMailUpstream(t *testing.T) *httptest.Server {
	up := sdk.NewServer(&sdk.Implementation{Name: "mail", Version: "1"}, nil)
	sdk.AddTool(up, &sdk.Tool{Name: "send", Description: "Send a message."},
		func(_ context.Context, _ *sdk.CallToolRequest, in sendArgs) (*sdk.CallToolResult, any, error) {
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "sent to " + in.To}}}, nil, nil
		})
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return up }, nil)
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs
}

// An MCP call held for approval on a running writ, with the official SDK
// client as the agent: the agent (authenticated by its JWT-SVID) cannot
// approve its own request through the API (403), an operator approves it
// through the API from another goroutine, and the held call completes.
func TestMCPApprovalThroughAPI(t *testing.T) {
	up := newMailUpstream(t)
	a := setupAgent(t)
	ctx := context.Background()
	apply(t, a.in.client, "mail.yaml", fmt.Sprintf(`apiVersion: writ.dev/v1
kind: MCPServer
metadata: {name: mail}
spec:
  url: %s
---
apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: me-mail}
spec:
  subjects: [%s]
  rules:
    - name: send-needs-a-human
      effect: allow
      targets: [{mcp: {server: mail, tools: [send]}}]
      approval: {approvers: [user:bob], timeout: 5m}
`, up.URL, agentID))

	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil).Connect(cctx,
		&sdk.StreamableClientTransport{Endpoint: "http://" + a.in.srv.ProxyAddr() + "/mcp/mail"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		res, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Tools) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tools = %v", res.Tools)
		}
	}
	type result struct {
		res *sdk.CallToolResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "send", Arguments: map[string]any{"to": "eve@example.org", "body": "hi"}})
		done <- result{res, err}
	}()
	var pending []apitypes.Approval
	for deadline := time.Now().Add(20 * time.Second); len(pending) == 0; time.Sleep(10 * time.Millisecond) {
		if pending, err = a.in.client.ListApprovals(ctx, "pending"); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no pending approval")
		}
	}
	ap := pending[0]
	if ap.SpiffeID != agentID || !strings.HasPrefix(ap.Binding, "MCPServer/mail tools/call send sha256:") {
		t.Fatalf("approval = %+v", ap)
	}

	// The agent itself, authenticated by its JWT-SVID, is refused.
	req, _ := http.NewRequest(http.MethodPost, a.issuer+"/v1/approvals/"+ap.ID+"/approve", nil)
	req.Header.Set("Authorization", "Bearer "+a.jwtSVID(t))
	resp, err := a.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "cannot decide it") {
		t.Fatalf("self-approval: %s %s", resp.Status, body)
	}
	select {
	case r := <-done:
		t.Fatalf("the call finished before a decision: %+v, %v", r.res, r.err)
	default:
	}

	if _, err := a.in.client.DecideApproval(ctx, ap.ID, true, "checked"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.res.IsError {
		t.Fatalf("held call = %+v, %v", r.res, r.err)
	}
	got, err := a.in.client.ListApprovals(ctx, "approved")
	if err != nil || len(got) != 1 || got[0].UsedAt.IsZero() {
		t.Fatalf("approved = %+v, %v; want one, used", got, err)
	}

	// The same call again asks again: the approval was used.
	c2, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	_, err = cs.CallTool(c2, &sdk.CallToolParams{Meta: sdk.Meta{mcp.ApprovalMeta: ap.ID}, Name: "send",
		Arguments: map[string]any{"to": "eve@example.org", "body": "hi"}})
	var je *jsonrpc.Error
	if !errors.As(err, &je) || je.Code != mcp.CodeDenied || !strings.Contains(je.Message, "used already") {
		t.Fatalf("replay: %v", err)
	}
}
