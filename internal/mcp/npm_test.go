package mcp

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// filesystemServer returns the entry point of the npm package
// @modelcontextprotocol/server-filesystem that .ci/run installs
// (WRIT_MCP_SERVER_FILESYSTEM). Locally the test skips without it; under
// CI=true it fails.
func filesystemServer(t *testing.T) string {
	t.Helper()
	p := os.Getenv("WRIT_MCP_SERVER_FILESYSTEM")
	if p == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("WRIT_MCP_SERVER_FILESYSTEM is not set under CI=true; .ci/run installs @modelcontextprotocol/server-filesystem and sets it")
		}
		t.Skip("WRIT_MCP_SERVER_FILESYSTEM is not set: install @modelcontextprotocol/server-filesystem with npm (see .ci/run) and point it at dist/index.js")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("WRIT_MCP_SERVER_FILESYSTEM: %v", err)
	}
	return p
}

// A real MCP server from the npm registry, run over stdio behind the
// gateway: one tool denied by policy, and a path argument outside the
// allowed directory denied.
func TestGatewayNPMFilesystemServer(t *testing.T) {
	entry := filesystemServer(t)
	root := t.TempDir()
	allowed := filepath.Join(root, "allowed")
	os.MkdirAll(allowed, 0o755)
	os.WriteFile(filepath.Join(allowed, "a.txt"), []byte("hello from a"), 0o644)
	os.WriteFile(filepath.Join(root, "secret.txt"), []byte("top secret"), 0o644)

	policy := AuthorizerFunc(func(_ context.Context, c Caller, r Request) (Decision, error) {
		if r.Method == "tools/list" {
			return Decision{Allow: r.Name != "write_file"}, nil
		}
		if r.Name == "write_file" {
			return Decision{Reason: "write_file is not allowed", Rule: "no-writes"}, nil
		}
		var args struct {
			Path string `json:"path"`
		}
		json.Unmarshal(r.Arguments, &args)
		if !strings.HasPrefix(args.Path, allowed+"/") {
			return Decision{Reason: "path outside " + allowed, Rule: "allowed-dir"}, nil
		}
		return Decision{Allow: true, Rule: "allowed-dir"}, nil
	})
	srv := &Server{Name: "fs", Version: 1, Pin: PinTOFU, Connect: 60 * time.Second, Call: 30 * time.Second,
		RestartInitial: 100 * time.Millisecond, RestartMax: time.Second,
		Spec: ServerSpec{Command: "node", Args: []string{entry, root}}}
	gw := New(Config{Pins: openStore(t), Emitter: &events{}, Identifier: agentIdentifier, Authorizer: policy})
	gw.SetServers([]*Server{srv})
	hs := newHTTPTest(t, gw)

	ctx := context.Background()
	cs := connect(t, hs+"/mcp/fs", "2025-11-25")
	var names []string
	deadline := time.Now().Add(60 * time.Second)
	for len(names) == 0 || !slices.Contains(names, "read_text_file") {
		if time.Now().After(deadline) {
			b := gw.backend("fs")
			b.mu.Lock()
			t.Logf("verdicts: %+v", b.verdicts)
			b.mu.Unlock()
			t.Fatalf("the filesystem server's tools never appeared: %v", names)
		}
		time.Sleep(50 * time.Millisecond)
		names = toolNames(t, cs)
	}
	if slices.Contains(names, "write_file") {
		t.Errorf("write_file is listed though policy denies it: %v", names)
	}
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": filepath.Join(allowed, "a.txt")}})
	if err != nil || res.IsError || !strings.Contains(callText(res), "hello from a") {
		t.Fatalf("allowed read = %+v, %v", res, err)
	}
	_, err = cs.CallTool(ctx, &sdk.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": filepath.Join(root, "secret.txt")}})
	if code, msg := rpcCode(err); code != CodeDenied || !strings.Contains(msg, "path outside") {
		t.Fatalf("read outside the allowed directory: %v", err)
	}
	_, err = cs.CallTool(ctx, &sdk.CallToolParams{Name: "write_file", Arguments: map[string]any{"path": filepath.Join(allowed, "b.txt"), "content": "x"}})
	if code, msg := rpcCode(err); code != CodeDenied || !strings.Contains(msg, "write_file is not allowed") {
		t.Fatalf("write: %v", err)
	}
	if _, err := os.Stat(filepath.Join(allowed, "b.txt")); err == nil {
		t.Fatal("the denied write happened")
	}
}
