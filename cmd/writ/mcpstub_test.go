package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sync"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpStub is a stdio MCP server (the official Go SDK's) for scripts: it
// serves the tools of the tools/list result in the file os.Args[1], each
// answering "TOOL ok" with its arguments. It reads the file again on every
// tools/list, so a script changes the server's tools (a rug pull) by
// changing the file. A "ttlMs" in the file is announced with each list
// (the gateway lists again, and so notices a change, at the first call
// after it runs out). Scripts run it behind writ's gateway as an
// MCPServer with command: mcpstub. With MCPSTUB_SHOW=VAR in its
// environment each answer ends in " VAR=sha256:HEX12" of that variable's
// value (a script checks that the gateway injected a credential without
// the value appearing anywhere).
func mcpStub() int {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mcpstub TOOLS.json")
		return 2
	}
	s := sdk.NewServer(&sdk.Implementation{Name: "mcpstub", Version: "1"}, nil)
	var mu sync.Mutex
	served := map[string]string{} // name: descriptor as JSON
	var ttl int
	load := func() error {
		raw, err := os.ReadFile(os.Args[1])
		if err != nil {
			return err
		}
		var list struct {
			Tools []*sdk.Tool `json:"tools"`
			TTLMs int         `json:"ttlMs"`
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		ttl = list.TTLMs
		now := map[string]string{}
		for _, t := range list.Tools {
			name := t.Name
			desc, _ := json.Marshal(t)
			now[name] = string(desc)
			if served[name] == string(desc) {
				continue // unchanged: adding it again would notify list_changed
			}
			s.AddTool(t, func(_ context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
				text := name + " ok " + string(req.Params.Arguments)
				if v := os.Getenv("MCPSTUB_SHOW"); v != "" {
					sum := sha256.Sum256([]byte(os.Getenv(v)))
					text += " " + v + "=sha256:" + hex.EncodeToString(sum[:6])
				}
				return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: text}}}, nil
			})
		}
		for name := range served {
			if _, ok := now[name]; !ok {
				s.RemoveTools(name)
			}
		}
		served = now
		return nil
	}
	if err := load(); err != nil {
		fmt.Fprintln(os.Stderr, "mcpstub:", err)
		return 2
	}
	s.AddReceivingMiddleware(func(next sdk.MethodHandler) sdk.MethodHandler {
		return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
			if method == "tools/list" {
				if err := load(); err != nil {
					fmt.Fprintln(os.Stderr, "mcpstub: reload:", err)
				}
			}
			res, err := next(ctx, method, req)
			if lr, ok := res.(*sdk.ListToolsResult); ok && err == nil {
				mu.Lock()
				lr.TTLMs = ttl
				mu.Unlock()
			}
			return res, err
		}
	})
	if err := s.Run(context.Background(), &sdk.StdioTransport{}); err != nil {
		fmt.Fprintln(os.Stderr, "mcpstub:", err)
		return 1
	}
	return 0
}
