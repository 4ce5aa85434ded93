package nodeserver_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/approval"
	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/node/nodeattest"
	"github.com/writ-dev/writ/internal/node/nodeserver"
	"github.com/writ-dev/writ/internal/store"
)

// fakeMCP answers checks of the MCP server "inbox" only, and releases the
// credential "inbox-key" only.
type fakeMCP struct {
	mu     sync.Mutex
	checks []string // node/server/tools
}

func (f *fakeMCP) CheckTools(_ context.Context, node, server string, tools []json.RawMessage) (map[string]nodeapi.MCPVerdict, error) {
	f.mu.Lock()
	f.checks = append(f.checks, fmt.Sprintf("%s/%s/%d", node, server, len(tools)))
	f.mu.Unlock()
	if server != "inbox" {
		return nil, fmt.Errorf("MCPServer/%s: %w", server, store.ErrNotFound)
	}
	out := map[string]nodeapi.MCPVerdict{}
	for _, t := range tools {
		var d struct{ Name string }
		json.Unmarshal(t, &d)
		out[d.Name] = nodeapi.MCPVerdict{Usable: d.Name != "evil", State: store.PinPinned}
	}
	return out, nil
}

func (f *fakeMCP) Credential(_ context.Context, _, name string) (nodeapi.MCPCredentialAnswer, error) {
	if name != "inbox-key" {
		return nodeapi.MCPCredentialAnswer{}, nodeserver.ErrNotNamed
	}
	return nodeapi.MCPCredentialAnswer{Name: name, Type: "bearer", Version: 1, Value: "s3cret-value"}, nil
}

// withMCP mounts an API like e's with the MCP and approval paths served.
func (e *env) withMCP(t *testing.T, m nodeserver.MCP, a nodeserver.Approvals) {
	vs, _ := nodeattest.NewVerifiers(nodeattest.JoinTokens{Store: e.db})
	api, err := nodeserver.NewAPI(nodeserver.Config{TrustDomain: td, Registry: e.nodes, Verifiers: vs, Authority: e.ca,
		Publisher: e.pub, Store: e.db, Emitter: e.rec, Audit: e.rec, Heartbeat: time.Hour, MCP: m, Approvals: a})
	if err != nil {
		t.Fatal(err)
	}
	e.mux = http.NewServeMux()
	api.Register(e.mux)
}

// TestMCPCheck: a node's tools are checked under its own name; hostile
// requests (no or a path-like server name, too many tools, unknown
// fields, not JSON) are refused before any check; a server the store does
// not hold is 404; without MCP on the server, 501. Credentials are
// released only when named, over the node's authenticated link.
func TestMCPCheck(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	chain := e.join(t, "n1")
	if w := e.do(ctx, "POST", nodeapi.PathMCPCheck, nodeapi.MCPCheckRequest{Server: "inbox"}, chain); w.Code != http.StatusNotImplemented {
		t.Errorf("check without MCP: %d", w.Code)
	}
	f := &fakeMCP{}
	e.withMCP(t, f, nil)
	w := e.do(ctx, "POST", nodeapi.PathMCPCheck, nodeapi.MCPCheckRequest{Server: "inbox",
		Tools: []json.RawMessage{json.RawMessage(`{"name":"read"}`), json.RawMessage(`{"name":"evil"}`)}}, chain)
	var ans nodeapi.MCPCheckAnswer
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &ans) != nil || !ans.Verdicts["read"].Usable || ans.Verdicts["evil"].Usable {
		t.Fatalf("check: %d %s", w.Code, w.Body)
	}
	if w := e.do(ctx, "POST", nodeapi.PathMCPCheck, nodeapi.MCPCheckRequest{Server: "other"}, chain); w.Code != http.StatusNotFound {
		t.Errorf("unknown server: %d %s", w.Code, w.Body)
	}
	many := make([]json.RawMessage, nodeapi.MaxMCPCheckTools+1)
	for i := range many {
		many[i] = json.RawMessage(`{}`)
	}
	for name, body := range map[string]any{
		"no server":     nodeapi.MCPCheckRequest{},
		"path server":   nodeapi.MCPCheckRequest{Server: "../inbox/x"},
		"nul server":    nodeapi.MCPCheckRequest{Server: "in\x00box"},
		"unknown field": map[string]any{"server": "inbox", "node": "n2"},
		"too many":      nodeapi.MCPCheckRequest{Server: "inbox", Tools: many},
		"not json":      "tools",
	} {
		if w := e.do(ctx, "POST", nodeapi.PathMCPCheck, body, chain); w.Code/100 != 4 {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
		}
	}
	// Without a node SVID, nothing.
	if w := e.do(ctx, "POST", nodeapi.PathMCPCheck, nodeapi.MCPCheckRequest{Server: "inbox"}, nil); w.Code != http.StatusUnauthorized {
		t.Errorf("no node SVID: %d", w.Code)
	}
	if len(f.checks) != 2 || f.checks[0] != "n1/inbox/2" || f.checks[1] != "n1/other/0" {
		t.Errorf("checks made: %v", f.checks)
	}

	w = e.do(ctx, "POST", nodeapi.PathMCPCredential, nodeapi.MCPCredentialRequest{Name: "db-root"}, chain)
	if w.Code != http.StatusForbidden || strings.Contains(w.Body.String(), "s3cret") {
		t.Errorf("credential no MCPServer names: %d %s", w.Code, w.Body)
	}
	w = e.do(ctx, "POST", nodeapi.PathMCPCredential, nodeapi.MCPCredentialRequest{Name: "inbox-key"}, chain)
	var cred nodeapi.MCPCredentialAnswer
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &cred) != nil || cred.Value != "s3cret-value" || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("named credential: %d %s", w.Code, w.Header())
	}
	if w := e.do(ctx, "POST", nodeapi.PathMCPCredential, nodeapi.MCPCredentialRequest{Name: "inbox-key"}, nil); w.Code != http.StatusUnauthorized {
		t.Errorf("credential without a node SVID: %d", w.Code)
	}
}

// TestNodeApprovals: a node files an approval on the server (marked with
// the node), waits for it while a human decides it on the server, and
// spends it once; a second use is refused (409, approval.ErrNotUsable).
func TestNodeApprovals(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	chain := e.join(t, "n1")
	if w := e.do(ctx, "POST", nodeapi.PathApprovalCreate, nodeapi.ApprovalRequest{}, chain); w.Code != http.StatusNotImplemented {
		t.Errorf("approvals without a service: %d", w.Code)
	}
	svc, err := approval.New(ctx, approval.Config{Store: e.db, Emitter: e.rec})
	if err != nil {
		t.Fatal(err)
	}
	e.withMCP(t, nil, svc)
	req := nodeapi.ApprovalRequest{Kind: "mcp", SpiffeID: "spiffe://writ.local/agent/a", Target: "MCPServer/inbox tools/call publish",
		Binding: "MCPServer/inbox tools/call publish sha256:00", Timeout: time.Minute}
	w := e.do(ctx, "POST", nodeapi.PathApprovalCreate, req, chain)
	var a store.Approval
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &a) != nil || a.State != store.ApprovalPending || !strings.HasSuffix(a.Target, "(node n1)") {
		t.Fatalf("request: %d %s", w.Code, w.Body)
	}
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		done <- e.do(ctx, "POST", nodeapi.PathApprovalWait, nodeapi.ApprovalWaitRequest{ID: a.ID}, chain)
	}()
	if _, err := svc.Decide(ctx, a.ID, true, "user:bob", "ok"); err != nil {
		t.Fatal(err)
	}
	w = <-done
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &a) != nil || a.State != store.ApprovalApproved {
		t.Fatalf("wait: %d %s", w.Code, w.Body)
	}
	use := nodeapi.ApprovalUseRequest{ID: a.ID, Binding: req.Binding, Caller: req.SpiffeID}
	if w := e.do(ctx, "POST", nodeapi.PathApprovalUse, use, chain); w.Code != 200 {
		t.Fatalf("use: %d %s", w.Code, w.Body)
	}
	if w := e.do(ctx, "POST", nodeapi.PathApprovalUse, use, chain); w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "used already") {
		t.Errorf("second use: %d %s", w.Code, w.Body)
	}
	if w := e.do(ctx, "POST", nodeapi.PathApprovalWait, nodeapi.ApprovalWaitRequest{ID: "apr_nosuch"}, chain); w.Code != http.StatusNotFound {
		t.Errorf("wait for no approval: %d %s", w.Code, w.Body)
	}
}

// TestPinsPublished: pins are in a node's snapshot and every change of
// one (a quarantine) reaches the stream.
func TestPinsPublished(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	pin, err := e.db.CreatePin(ctx, store.Pin{Server: "inbox", Tool: "read", Digest: "sha256:a", Observed: "sha256:a", Shape: "sha256:s", State: store.PinPinned})
	if err != nil {
		t.Fatal(err)
	}
	chain := e.join(t, "n1")
	msgs, _ := e.stream(t, chain, 0, func(m []nodeapi.Message) bool { return len(m) >= 1 })
	if len(msgs) == 0 || msgs[0].Type != nodeapi.MsgSnapshot || len(msgs[0].Snapshot.Pins) != 1 {
		t.Fatalf("snapshot: %+v", msgs)
	}
	at := msgs[0].Seq
	pin.State, pin.Observed, pin.Reason = store.PinQuarantined, "sha256:b", "changed"
	if _, err := e.db.UpdatePin(ctx, pin); err != nil {
		t.Fatal(err)
	}
	e.pub.PinsChanged(ctx)
	// The publisher's first look at the pins may restate the pinned one
	// after the snapshot (the node applies it again, to the same state):
	// read until the quarantine arrives, and only pin changes before it.
	quarantined := func(m nodeapi.Message) bool {
		return m.Change != nil && m.Change.Kind == nodeapi.KindPin && m.Change.Key == "inbox/read" &&
			bytes.Contains(m.Change.Body, []byte(`"quarantined"`))
	}
	msgs, _ = e.stream(t, chain, at, func(m []nodeapi.Message) bool { return slices.ContainsFunc(m, quarantined) })
	if !slices.ContainsFunc(msgs, quarantined) {
		t.Fatalf("no quarantine of inbox/read in the pin changes: %+v", msgs)
	}
	for _, m := range msgs {
		if m.Change == nil || m.Change.Kind != nodeapi.KindPin || m.Change.Key != "inbox/read" {
			t.Fatalf("after the snapshot, a message that is not a change of pin inbox/read: %+v", m)
		}
	}
}

// FuzzMCPCheck: whatever a node sends, the check is refused (4xx) or made
// for an MCPServer name without '/' and at most MaxMCPCheckTools tools,
// never 5xx.
func FuzzMCPCheck(f *testing.F) {
	f.Add([]byte(`{"server":"inbox","tools":[{"name":"a"}]}`))
	f.Add([]byte(`{"server":"a/b","tools":[]}`))
	f.Add([]byte(`{"server":"inbox","tools":[1,2,"x",null]}`))
	f.Add([]byte(`[]`))
	e := newEnv(f)
	chain := e.join(f, "n1")
	m := &fakeMCP{}
	vs, _ := nodeattest.NewVerifiers(nodeattest.JoinTokens{Store: e.db})
	api, err := nodeserver.NewAPI(nodeserver.Config{TrustDomain: td, Registry: e.nodes, Verifiers: vs, Authority: e.ca,
		Publisher: e.pub, Store: e.db, Emitter: e.rec, Audit: e.rec, Heartbeat: time.Hour, MCP: m})
	if err != nil {
		f.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", nodeapi.PathMCPCheck, bytes.NewReader(body))
		r.TLS = &tls.ConnectionState{PeerCertificates: chain}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%q: %d %s", body, w.Code, w.Body)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, c := range m.checks {
			if !strings.HasPrefix(c, "n1/") || strings.Count(c, "/") != 2 {
				t.Fatalf("%q: a check for %s", body, c)
			}
		}
		m.checks = nil
	})
}
