package server_test

import (
	"context"
	"errors"
	"github.com/writ-dev/writ/internal/client"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/policy"
)

func readExample(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestApplyAccessPolicyVersionsAndDecides(t *testing.T) {
	in := start(t, testConfig(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	src := readExample(t, "../../examples/policy/email-drafter.yaml")
	req := &policy.Request{Kind: policy.KindMCP,
		Subject:  policy.Subject{SpiffeID: "spiffe://writ.local/agent/email-drafter"},
		Instance: "inst_x",
		Task:     policy.Task{ID: "task_x", Purpose: "reply"}, // its rule has a budget, which counts a task's calls
		MCP:      policy.MCPRequest{Server: "mail", Tool: "read_message", Args: map[string]any{"id": "m-1"}},
		Source:   policy.Source{IP: "10.0.4.7", Node: "node-mail-1"},
		Now:      time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC),
	}
	if d := in.srv.Policy().Decide(ctx, req); d.Effect != policy.Deny {
		t.Fatalf("before any policy: %s, want default deny", d.Effect)
	}

	resp, err := in.client.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "email-drafter.yaml", Content: src}}})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if len(resp.Results) == 0 || resp.Results[0].Action != "created" || resp.Results[0].Version != 1 {
		t.Fatalf("apply results = %+v", resp.Results)
	}
	d := in.srv.Policy().Decide(ctx, req)
	if d.Effect != policy.Allow || d.Policy != "email-drafter@1" {
		t.Fatalf("after apply: %+v, want allow by email-drafter@1", d)
	}

	// A changed policy becomes version 2 and decisions name it.
	changed := strings.Replace(src, "What the email-drafting agent may do", "What the drafter may do", 1)
	if changed == src {
		t.Fatal("example changed; update the test's edit")
	}
	resp, err = in.client.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "email-drafter.yaml", Content: changed}}})
	if err != nil || resp.Results[0].Action != "changed" || resp.Results[0].Version != 2 {
		t.Fatalf("second apply = %+v, %v", resp.Results, err)
	}
	if d := in.srv.Policy().Decide(ctx, req); d.Policy != "email-drafter@2" {
		t.Errorf("decision policy %q, want email-drafter@2", d.Policy)
	}
	// Each change is an audit event naming who changed what, and the version.
	for typ, version := range map[audit.Type]string{audit.ResourceCreated: "email-drafter@1", audit.ResourceChanged: "email-drafter@2"} {
		res, err := in.client.AuditSearch(ctx, apitypes.AuditQuery{Type: string(typ), Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range res.Events {
			if e.Target == "AccessPolicy/email-drafter" && e.Actor == "admin:admin" && e.Policy == version {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s event for AccessPolicy/email-drafter by admin:admin at %s: %+v", typ, version, res.Events)
		}
	}

	// An invalid policy is refused with its position, and nothing changes.
	bad := strings.Replace(changed, "effect: allow", "effect: permit", 1)
	_, err = in.client.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "bad.yaml", Content: bad}}})
	var he *client.Error
	if !errors.As(err, &he) || he.Status != 400 || !strings.Contains(he.Msg, "bad.yaml:") {
		t.Fatalf("bad apply error = %v, want a 400 naming bad.yaml:line", err)
	}
	if d := in.srv.Policy().Decide(ctx, req); d.Policy != "email-drafter@2" || d.Effect != policy.Allow {
		t.Errorf("after a refused apply: %+v", d)
	}

	// Delete: back to default deny.
	if err := in.client.DeleteResource(ctx, "AccessPolicy", "email-drafter"); err != nil {
		t.Fatal(err)
	}
	if d := in.srv.Policy().Decide(ctx, req); d.Effect != policy.Deny {
		t.Errorf("after delete: %s, want deny", d.Effect)
	}
}

func TestApplyIsAllOrNothing(t *testing.T) {
	in := start(t, testConfig(t.TempDir()))
	ctx := context.Background()
	good := "apiVersion: writ.dev/v1\nkind: Identity\nmetadata: {name: ok}\nspec: {spiffe_id: spiffe://writ.local/ok, selectors: [unix:uid:1]}\n"
	bad := "apiVersion: writ.dev/v1\nkind: Identity\nmetadata: {name: nope}\nspec: {spiffe_id: spiffe://writ.local/x, selectors: [unix:uid:-1]}\n"
	_, err := in.client.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "a.yaml", Content: good}, {Name: "b.yaml", Content: bad}}})
	if err == nil || !strings.Contains(err.Error(), "b.yaml:4:") {
		t.Fatalf("apply = %v, want an error at b.yaml:4", err)
	}
	if list, _ := in.client.ListEntries(ctx); len(list) != 0 {
		t.Errorf("a failed apply stored %d entries", len(list))
	}
	// Unsupported kinds are refused by name.
	_, err = in.client.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "t.yaml",
		Content: "apiVersion: writ.dev/v1\nkind: PolicyTest\nmetadata: {name: t}\nspec: {}\n"}}})
	if err == nil || !strings.Contains(err.Error(), "writ policy test") {
		t.Errorf("PolicyTest apply = %v", err)
	}
}
