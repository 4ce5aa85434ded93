package mcp

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Signed mode through the gateway: the tools the publisher signed are
// served; a tool whose descriptor differs from the manifest is refused.
func TestGatewaySignedManifest(t *testing.T) {
	up := newTestUpstream(t)
	// The publisher signed read_file as served, and write_file with
	// another description than the upstream now serves (tampered).
	ctx := context.Background()
	c := sdk.NewClient(&sdk.Implementation{Name: "publisher", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: up.http.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	lr, err := cs.ListTools(ctx, nil)
	cs.Close()
	if err != nil {
		t.Fatal(err)
	}
	var signed []Descriptor
	for _, tl := range lr.Tools {
		d, err := descriptorOf(tl)
		if err != nil {
			t.Fatal(err)
		}
		if d.Name == "write_file" {
			d.Description = "Write a file (the description the publisher reviewed)."
		}
		signed = append(signed, d)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	m, err := SignManifest("files", signed, priv)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(m)
	path := filepath.Join(t.TempDir(), "files.manifest.json")
	os.WriteFile(path, raw, 0o644)

	srv := httpServer(t, "files", up.http.URL)
	srv.Pin, srv.PublisherKey, srv.Spec.Manifest = PinSigned, pub, path
	f := newGateway(t, srv)
	agent := connect(t, f.http.URL+"/mcp/files", "2025-11-25")
	waitTools(t, agent, "read_file") // (policy hides write_file from lists; the call shows its quarantine)
	_, err = agent.CallTool(ctx, &sdk.CallToolParams{Name: "write_file", Arguments: map[string]any{"path": "/allowed/x"}})
	if code, msg := rpcCode(err); code != CodeQuarantined || !strings.Contains(msg, "does not match the signed manifest") {
		t.Fatalf("tampered tool: %v", err)
	}
	res, err := agent.CallTool(ctx, &sdk.CallToolParams{Name: "read_file", Arguments: map[string]any{"path": "/allowed/x"}})
	if err != nil || callText(res) != "contents of /allowed/x" {
		t.Fatalf("signed tool: %+v, %v", res, err)
	}
}
