package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/writ-dev/writ/internal/apitypes"
)

// MCPServer documents are validated with file:line:field errors and stored
// like Service documents.
func TestApplyMCPServer(t *testing.T) {
	in := start(t, testConfig(t.TempDir()))
	ctx := context.Background()
	doc := `apiVersion: writ.dev/v1
kind: MCPServer
metadata: {name: files}
spec:
  command: npx
  args: ["-y", "@modelcontextprotocol/server-filesystem", "/srv/data"]
  credential: {name: fs-token, env: FS_TOKEN}
  labels: [private_data]
  tools:
    read_file: {labels: [untrusted_content]}
`
	resp, err := in.client.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "files.yaml", Content: doc}}})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if len(resp.Results) != 1 || resp.Results[0].Action != "created" || resp.Results[0].Version != 1 {
		t.Fatalf("results = %+v", resp.Results)
	}
	got, err := in.client.GetResource(ctx, "MCPServer", "files")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Command    string
		Credential struct{ Name, Env string }
	}
	if err := json.Unmarshal(got.Spec, &spec); err != nil || spec.Command != "npx" || spec.Credential.Env != "FS_TOKEN" {
		t.Fatalf("stored spec %s (%v)", got.Spec, err)
	}

	bad := strings.Replace(doc, "env: FS_TOKEN", "header: X-Key", 1)
	_, err = in.client.Apply(ctx, apitypes.ApplyRequest{Files: []apitypes.ApplyFile{{Name: "bad.yaml", Content: bad}}})
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:7:") || !strings.Contains(err.Error(), "spec.credential") {
		t.Fatalf("bad apply = %v, want an error at bad.yaml:7 naming spec.credential", err)
	}
	if err := in.client.DeleteResource(ctx, "MCPServer", "files"); err != nil {
		t.Fatal(err)
	}
}
