package mcp

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestMain turns the test binary into a stdio MCP server when the gateway
// starts it (WRIT_MCP_TEST_STDIO=1), so the supervisor is tested against a
// real process speaking the SDK's stdio transport.
func TestMain(m *testing.M) {
	if os.Getenv("WRIT_MCP_TEST_STDIO") == "1" {
		runStdioServer()
		return
	}
	os.Exit(m.Run())
}

func runStdioServer() {
	fmt.Fprintf(os.Stderr, "stdio server up, token %s\n", os.Getenv("FS_TOKEN"))
	s := sdk.NewServer(&sdk.Implementation{Name: "stdio-test", Version: "1"}, nil)
	sdk.AddTool(s, &sdk.Tool{Name: "read_file", Description: "Read a file."},
		func(_ context.Context, _ *sdk.CallToolRequest, in pathArgs) (*sdk.CallToolResult, any, error) {
			env := fmt.Sprintf("token=%t leaked=%t", os.Getenv("FS_TOKEN") == "s3cret-upstream", os.Getenv("WRIT_TOKEN") != "")
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "stdio " + in.Path + " " + env}}}, nil, nil
		})
	sdk.AddTool(s, &sdk.Tool{Name: "crash", Description: "Exit."},
		func(context.Context, *sdk.CallToolRequest, struct{}) (*sdk.CallToolResult, any, error) {
			os.Exit(3)
			return nil, nil, nil
		})
	if err := s.Run(context.Background(), &sdk.StdioTransport{}); err != nil {
		fmt.Fprintln(os.Stderr, "stdio server:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A stdio upstream: started with the broker credential in its environment
// (and nothing of writ's own), its stderr logged with its name and the
// credential redacted, restarted with backoff when it dies.
func TestGatewayStdioSupervisor(t *testing.T) {
	t.Setenv("WRIT_TOKEN", "writ-admin-secret")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv := &Server{Name: "local", Version: 1, Pin: PinTOFU, Connect: 20 * time.Second, Call: 20 * time.Second,
		RestartInitial: 10 * time.Millisecond, RestartMax: 200 * time.Millisecond,
		Spec: ServerSpec{Command: exe, Args: []string{"-test.run=^$"}, Env: map[string]string{"WRIT_MCP_TEST_STDIO": "1"},
			Credential: &CredentialSpec{Name: "up-token", Env: "FS_TOKEN"}}}
	ev := &events{}
	gw := New(Config{Pins: openStore(t), Emitter: ev, Credentials: fixedCreds{"up-token": "s3cret-upstream"},
		Identifier: agentIdentifier, Authorizer: testPolicy, Log: slog.New(slog.NewTextHandler(logs, nil))})
	gw.SetServers([]*Server{srv})
	defer gw.Close()
	ctx := context.Background()
	b := gw.backend("local")

	call := func() (string, error) {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		cs, err := b.up.session(cctx)
		if err != nil {
			return "", err
		}
		res, err := cs.CallTool(cctx, &sdk.CallToolParams{Name: "read_file", Arguments: map[string]any{"path": "/allowed/a"}})
		if err != nil {
			return "", err
		}
		return callText(res), nil
	}
	got, err := call()
	if err != nil || got != "stdio /allowed/a token=true leaked=false" {
		t.Fatalf("call = %q, %v", got, err)
	}
	// Crash it; the supervisor starts it again.
	cs, _ := b.up.session(ctx)
	cs.CallTool(ctx, &sdk.CallToolParams{Name: "crash"})
	deadline := time.Now().Add(30 * time.Second)
	for b.up.Starts() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("not restarted; log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, err := call(); err != nil || !strings.HasPrefix(got, "stdio /allowed/a") {
		t.Fatalf("call after restart = %q, %v", got, err)
	}
	out := logs.String()
	if !strings.Contains(out, "server=local") || !strings.Contains(out, `line="stdio server up, token [REDACTED]"`) {
		t.Errorf("stderr not logged with the server name and the credential redacted:\n%s", out)
	}
	if strings.Contains(out, "s3cret-upstream") {
		t.Errorf("the credential reached the log:\n%s", out)
	}
	if !strings.Contains(out, "MCP server unavailable; retrying") {
		t.Errorf("the restart was not logged:\n%s", out)
	}
}
