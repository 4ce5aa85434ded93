package mcp

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/writ-dev/writ/internal/access"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/task"
)

const flowPolicy = `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: flows}
spec:
  subjects: [spiffe://writ.local/agent/a]
  rules:
    - name: work
      effect: allow
      targets:
        - mcp: {server: fs}
        - mcp: {server: files}
        - http: {service: web}
        - task: {}
        - token: {audiences: [web]}
    - name: toxic-flow
      description: private data read after untrusted content must not leave
      effect: deny
      targets: [{labels: [public_sink]}]
      flow: {touched_all: [private_data, untrusted_content]}
`

// A real chain stopped: within one task the agent reads a private file
// through the npm server-filesystem (private_data), fetches a web page
// through the HTTP access proxy's path into the same enforcement core
// (untrusted_content), then calls a tool that sends out (public_sink):
// refused, with the reason naming both links. The task's labels survive
// a restart (a new enforcer over the same store). Without a task the
// session's labels count the same way.
func TestGatewayToxicFlow(t *testing.T) {
	entry := filesystemServer(t)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "salaries.txt"), []byte("alice 100k"), 0o644)
	fs := &Server{Name: "fs", Version: 1, Pin: PinTOFU, Connect: 60 * time.Second, Call: 30 * time.Second,
		RestartInitial: 100 * time.Millisecond, RestartMax: time.Second,
		Spec: ServerSpec{Command: "node", Args: []string{entry, root}, Labels: []string{policy.LabelPrivateData}}}
	up := newTestUpstream(t)
	sink := httpServer(t, "files", up.http.URL)
	sink.Spec.Tools = map[string]ToolSpec{"write_file": {Labels: []string{policy.LabelPublicSink}}}
	f := newEnforced(t, flowPolicy, fs, sink)
	ctx := context.Background()

	tk, err := f.tasks.Open(ctx, task.Subject{SpiffeID: "spiffe://writ.local/agent/a", Instance: "inst_a"},
		task.OpenRequest{Purpose: "report", Audiences: []string{"web"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	agent := headers{"Authorization": "Bearer agent-token", "Writ-Task": tk.ID}
	cs := connectWith(t, f.url+"/mcp/fs", "2025-11-25", agent)
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(strings.Join(toolNames(t, cs), ","), "read_text_file"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the filesystem server's tools never appeared")
		}
	}
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": filepath.Join(root, "salaries.txt")}})
	if err != nil || res.IsError {
		t.Fatalf("read = %+v, %v", res, err)
	}
	// An HTTP access of the same task, as the proxy makes it.
	web := &access.Target{Kind: policy.KindHTTP, Name: "web", Ref: "Service/web", Labels: []string{policy.LabelUntrustedContent}}
	caller := &access.Caller{SpiffeID: "spiffe://writ.local/agent/a", Instance: "inst_a"}
	hreq := &access.Request{ID: "req_web", Start: time.Now(), Target: web, Caller: caller, Method: "GET", Path: "/page", Task: tk.ID}
	out, err := f.enforcer.Enforce(ctx, hreq)
	if err != nil || out.Effect != access.Allow {
		t.Fatalf("web access = %+v, %v", out, err)
	}
	f.enforcer.Record(ctx, hreq, &out, access.Result{Status: 200})

	sinkCS := connectWith(t, f.url+"/mcp/files", "2025-11-25", agent)
	waitTools(t, sinkCS, "read_file,write_file")
	_, err = sinkCS.CallTool(ctx, &sdk.CallToolParams{Name: "write_file", Arguments: map[string]any{"path": "/out"}})
	code, msg := rpcCode(err)
	for _, want := range []string{"task " + tk.ID + " touched", "private_data (MCPServer/fs tools/call read_text_file)",
		"untrusted_content (Service/web GET /page)", "MCPServer/files tools/call write_file (public_sink)", "toxic-flow"} {
		if code != CodeDenied || !strings.Contains(msg, want) {
			t.Fatalf("sink call: %v; want a denial saying %q", err, want)
		}
	}
	// Not a sink: still allowed.
	if _, err := sinkCS.CallTool(ctx, &sdk.CallToolParams{Name: "read_file", Arguments: map[string]any{"path": "/allowed/x"}}); err != nil {
		t.Fatalf("non-sink call: %v", err)
	}

	// Durable: a fresh enforcer over the same store still refuses.
	e2, err := access.New(ctx, access.Config{Policy: f.acc.Policy.(access.Decider), Tasks: f.tasks, Flows: f.db, Emitter: f.ev,
		Journal: filepath.Join(t.TempDir(), "j")})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	sreq := &access.Request{ID: "req_sink", Start: time.Now(), Target: &access.Target{Kind: policy.KindMCP, Name: "files", Ref: "MCPServer/files",
		Labels: []string{policy.LabelPublicSink}}, Caller: caller, Method: "tools/call", Tool: "write_file", Args: map[string]any{}, Task: tk.ID}
	if out, _ := e2.Enforce(ctx, sreq); out.Effect == access.Allow || !strings.Contains(out.Reason, "private_data (MCPServer/fs") {
		t.Fatalf("after a restart: %+v", out)
	}

	// Without a task: the session (and instance) scope.
	e3, err := access.New(ctx, access.Config{Policy: f.acc.Policy.(access.Decider), Flows: f.db, Emitter: f.ev, Journal: filepath.Join(t.TempDir(), "j")})
	if err != nil {
		t.Fatal(err)
	}
	defer e3.Close()
	other := &access.Caller{SpiffeID: "spiffe://writ.local/agent/a", Instance: "inst_z"}
	for _, r := range []*access.Request{
		{Target: &access.Target{Kind: policy.KindMCP, Name: "fs", Ref: "MCPServer/fs", Labels: []string{policy.LabelPrivateData}}, Method: "tools/call", Tool: "read_text_file", Session: "s1"},
		{Target: web, Method: "GET", Path: "/page"},
	} {
		r.ID, r.Start, r.Caller = "req_x", time.Now(), other
		if out, _ := e3.Enforce(ctx, r); out.Effect != access.Allow {
			t.Fatalf("%s: %+v", r.Target.Ref, out)
		}
	}
	sreq = &access.Request{ID: "req_y", Start: time.Now(), Target: sreq.Target, Caller: other, Method: "tools/call", Tool: "write_file", Session: "s1"}
	if out, _ := e3.Enforce(ctx, sreq); out.Effect == access.Allow || !strings.Contains(out.Reason, "this session touched") {
		t.Fatalf("session sink: %+v", out)
	}
}
