package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpStub is a stdio MCP server (the official Go SDK's) for scripts: it
// serves the tools of the tools/list result in the file os.Args[1], each
// answering "TOOL ok" with its arguments. Scripts run it behind writ's
// gateway as an MCPServer with command: mcpstub.
func mcpStub() int {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mcpstub TOOLS.json")
		return 2
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var list struct {
		Tools []*sdk.Tool `json:"tools"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		fmt.Fprintln(os.Stderr, "mcpstub:", err)
		return 2
	}
	s := sdk.NewServer(&sdk.Implementation{Name: "mcpstub", Version: "1"}, nil)
	for _, t := range list.Tools {
		name := t.Name
		s.AddTool(t, func(_ context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: name + " ok " + string(req.Params.Arguments)}}}, nil
		})
	}
	if err := s.Run(context.Background(), &sdk.StdioTransport{}); err != nil {
		fmt.Fprintln(os.Stderr, "mcpstub:", err)
		return 1
	}
	return 0
}
