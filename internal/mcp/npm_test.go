package mcp

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
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

// The npm server-filesystem (TypeScript SDK, a pre-2026 server) asks its
// client for roots and serves exactly those directories. Behind a
// sessions: per_agent MCPServer, the agent's own roots reach it over the
// agent's upstream session once policy allows roots/list: a file under
// the agent's root, outside the directory the server was started with,
// becomes readable; the start directory no longer is.
func TestGatewayNPMRootsPerAgent(t *testing.T) {
	entry := filesystemServer(t)
	start, mine := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(start, "start.txt"), []byte("from the start dir"), 0o644)
	os.WriteFile(filepath.Join(mine, "mine.txt"), []byte("from my root"), 0o644)
	var rootsAsked atomic.Int32
	policy := AuthorizerFunc(func(_ context.Context, c Caller, r Request) (Decision, error) {
		if r.Method == MethodRoots {
			rootsAsked.Add(1)
		}
		return Decision{Allow: c.Key == "agent"}, nil
	})
	srv := &Server{Name: "fs", Version: 1, Pin: PinTOFU, Connect: 60 * time.Second, Call: 30 * time.Second,
		RestartInitial: 100 * time.Millisecond, RestartMax: time.Second,
		Spec: ServerSpec{Command: "node", Args: []string{entry, start}, Sessions: SessionsPerAgent}}
	gw := New(Config{Pins: openStore(t), Emitter: &events{}, Identifier: agentIdentifier, Authorizer: policy})
	gw.SetServers([]*Server{srv})
	hs := newHTTPTest(t, gw)

	c := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil)
	//lint:ignore SA1019 the server under test uses roots, the pre-2026 way this test relays
	c.AddRoots(&sdk.Root{URI: "file://" + mine, Name: "mine"})
	ctx := context.Background()
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cs, err := c.Connect(cctx, &sdk.StreamableClientTransport{Endpoint: hs + "/mcp/fs", HTTPClient: &http.Client{Transport: bearer{"agent-token"}}},
		&sdk.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for deadline := time.Now().Add(60 * time.Second); !slices.Contains(toolNames(t, cs), "read_text_file"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the filesystem server's tools never appeared")
		}
	}
	read := func(path string) (string, bool) {
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": path}})
		if err != nil {
			return err.Error(), false
		}
		return callText(res), !res.IsError
	}
	// The server asks for roots after initialisation, on its own time.
	var got string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var ok bool
		if got, ok = read(filepath.Join(mine, "mine.txt")); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a file under the agent's root stayed unreadable: %s (roots asked %d times)", got, rootsAsked.Load())
		}
	}
	if !strings.Contains(got, "from my root") || rootsAsked.Load() == 0 {
		t.Fatalf("read %q, roots decided %d times", got, rootsAsked.Load())
	}
	if got, ok := read(filepath.Join(start, "start.txt")); ok {
		t.Fatalf("the start directory is still served after the agent's roots replaced it: %q", got)
	}
}
