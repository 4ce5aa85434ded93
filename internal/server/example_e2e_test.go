package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/policy"
)

// TestExamplePolicyOnRunningServer applies examples/policy to a running
// writ, as the README says to, and uses it as the email-drafter agent: with
// node_name set to the node the policy pins the agent to, the agent opens
// a task on behalf of a staff member (its budget comes from the policy),
// mints a mail token in a task, and its mail calls are allowed in the task
// and not without one. Without node_name, every request of the agent is
// denied by the node pin.
func TestExamplePolicyOnRunningServer(t *testing.T) {
	const drafter = "spiffe://writ.local/agent/email-drafter"
	src := readExample(t, "../../examples/policy/email-drafter.yaml")
	for _, node := range []string{"node-mail-1", ""} {
		t.Run("node_name="+node, func(t *testing.T) {
			cfg := tokenConfig(t)
			cfg.NodeName = node
			in := start(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := in.client.CreateEntry(ctx, selfEntry("drafter", drafter)); err != nil {
				t.Fatal(err)
			}
			if _, err := in.client.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "email-drafter.yaml", Content: src}}}); err != nil {
				t.Fatalf("apply the example: %v", err)
			}
			a := &agent{cfg: cfg, in: in, issuer: in.srv.PublicURL(), http: &http.Client{Timeout: 10 * time.Second}}
			svid := a.jwtSVID(t)

			open := apitypes.OpenTaskRequest{Purpose: "reply to customers", OnBehalfOf: "alice", Groups: []string{"staff"},
				Audiences: []string{"mail-api"}, Scopes: []string{"mail.read"}, MaxDuration: "10m"}
			if node == "" {
				status, body := postTask(t, a, svid, open)
				if status != http.StatusForbidden || !strings.Contains(body, "only-from-its-node") {
					t.Fatalf("open a task without node_name: %d %s, want 403 by only-from-its-node", status, body)
				}
				return
			}
			tk := a.openTask(t, svid, open)
			if tk.State != "open" || tk.Budget != 500 || tk.Rule != "open-tasks" {
				t.Fatalf("task = %+v, want open under open-tasks with budget 500", tk)
			}
			// A task of the agent's own mints a mail token capped by the
			// policy. (Not the task on behalf of alice: the task service
			// keeps the user's groups only while opening the task, so the
			// token's user check cannot see that alice is staff.)
			own := a.openTask(t, svid, apitypes.OpenTaskRequest{Purpose: "triage", Audiences: []string{"mail-api"}, Scopes: []string{"mail.read"}})
			ans := a.exchange(t, a.http, a.issuer, svidForm(svid, own.ID, "mail-api", "mail.read"), "")
			if ans.status != 200 || ans.AccessToken == "" || ans.ExpiresIn > 600 {
				t.Fatalf("mail token: %d %+v, want one of at most 10m", ans.status, ans)
			}

			// The agent's mail calls, as the MCP gateway asks them (no
			// source.node: the server's node_name is the node).
			read := &policy.Request{Kind: policy.KindMCP, Subject: policy.Subject{SpiffeID: drafter}, Instance: tk.Instance,
				Task: policy.Task{ID: tk.ID, Purpose: tk.Purpose, OnBehalfOf: "alice", Groups: []string{"staff"}},
				MCP:  policy.MCPRequest{Server: "mail", Tool: "read_message", Args: map[string]any{"id": "m-1"}}}
			if d := in.srv.Policy().Decide(ctx, read); d.Effect != policy.Allow || d.Rule != "read-and-draft" || d.Obligations.Budget != 500 {
				t.Fatalf("read in the task: %+v", d)
			}
			read.Task = policy.Task{}
			if d := in.srv.Policy().Decide(ctx, read); d.Effect != policy.Deny || !strings.Contains(strings.Join(d.Reasons, " "), "only within a task") {
				t.Fatalf("read without a task: %+v", d)
			}
		})
	}
}

// postTask opens a task as the agent and returns the status and body.
func postTask(t *testing.T, a *agent, svid string, body apitypes.OpenTaskRequest) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, a.issuer+"/v1/tasks", strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+svid)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}
