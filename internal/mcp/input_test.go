package mcp

//lint:file-ignore SA1019 the gateway relays sampling, elicitation and roots between MCP servers and agents that still use them; SEP-2577 deprecates them with a window of at least twelve months, and refusing them would break those agents

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// inputUpstream is a Go SDK server whose tools ask the agent for input the
// 2026 way (an input-required answer, SEP-2322): "ask" asks for a name
// (elicitation), a completion (sampling, maxTokens as given in the
// arguments) and the agent's roots, then answers with what it got.
func inputUpstream(t testing.TB, opts *sdk.StreamableHTTPOptions) *httptest.Server {
	t.Helper()
	s := sdk.NewServer(&sdk.Implementation{Name: "helper", Version: "1"}, nil)
	s.AddTool(&sdk.Tool{Name: "ask", Description: "Ask the user and the model.", InputSchema: map[string]any{"type": "object",
		"properties": map[string]any{"max": map[string]any{"type": "integer"}}}},
		func(_ context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			if len(req.Params.InputResponses) == 0 {
				max := int64(50)
				if strings.Contains(string(req.Params.Arguments), `"max":5000`) {
					max = 5000
				}
				return &sdk.CallToolResult{RequestState: "asked", InputRequests: sdk.InputRequestMap{
					"name": &sdk.ElicitParams{Message: "Your name?", RequestedSchema: map[string]any{"type": "object",
						"properties": map[string]any{"name": map[string]any{"type": "string"}}}},
					"llm":   &sdk.CreateMessageParams{MaxTokens: max, Messages: []*sdk.SamplingMessage{{Role: "user", Content: &sdk.TextContent{Text: "Say hi"}}}},
					"roots": &sdk.ListRootsParams{},
				}}, nil
			}
			var name, llm, root string
			if r, ok := req.Params.InputResponses["name"].(*sdk.ElicitResult); ok {
				name = fmt.Sprint(r.Content["name"])
			}
			if r, ok := req.Params.InputResponses["llm"].(*sdk.CreateMessageWithToolsResult); ok && len(r.Content) == 1 {
				if tc, ok := r.Content[0].(*sdk.TextContent); ok {
					llm = tc.Text
				}
			}
			if r, ok := req.Params.InputResponses["roots"].(*sdk.ListRootsResult); ok && len(r.Roots) == 1 {
				root = r.Roots[0].URI
			}
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{
				Text: fmt.Sprintf("name=%s llm=%s root=%s state=%s", name, llm, root, req.Params.RequestState)}}}, nil
		})
	s.AddPrompt(&sdk.Prompt{Name: "greet"}, func(_ context.Context, req *sdk.GetPromptRequest) (*sdk.GetPromptResult, error) {
		if len(req.Params.InputResponses) == 0 {
			return &sdk.GetPromptResult{RequestState: "p", InputRequests: sdk.InputRequestMap{
				"name": &sdk.ElicitParams{Message: "Your name?", RequestedSchema: map[string]any{"type": "object",
					"properties": map[string]any{"name": map[string]any{"type": "string"}}}}}}, nil
		}
		name := ""
		if r, ok := req.Params.InputResponses["name"].(*sdk.ElicitResult); ok {
			name = fmt.Sprint(r.Content["name"])
		}
		return &sdk.GetPromptResult{Messages: []*sdk.PromptMessage{{Role: "user", Content: &sdk.TextContent{Text: "Greet " + name}}}}, nil
	})
	s.AddResource(&sdk.Resource{URI: "file:///me", Name: "me"}, func(ctx context.Context, req *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
		if ip := req.Session.InitializeParams(); ip != nil && ip.ProtocolVersion < "2026-07-28" {
			// The pre-2026 way: a request of the server's own on its
			// session, during the read.
			r, err := req.Session.ListRoots(ctx, nil)
			if err != nil {
				return nil, err
			}
			root := ""
			if len(r.Roots) == 1 {
				root = r.Roots[0].URI
			}
			return &sdk.ReadResourceResult{Contents: []*sdk.ResourceContents{{URI: req.Params.URI, Text: "root " + root}}}, nil
		}
		if len(req.Params.InputResponses) == 0 {
			return &sdk.ReadResourceResult{RequestState: "r", InputRequests: sdk.InputRequestMap{"roots": &sdk.ListRootsParams{}}}, nil
		}
		root := ""
		if r, ok := req.Params.InputResponses["roots"].(*sdk.ListRootsResult); ok && len(r.Roots) == 1 {
			root = r.Roots[0].URI
		}
		return &sdk.ReadResourceResult{Contents: []*sdk.ResourceContents{{URI: req.Params.URI, Text: "root " + root}}}, nil
	})
	hs := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s }, opts))
	t.Cleanup(hs.Close)
	return hs
}

const inputPolicy = `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: helper}
spec:
  subjects: [spiffe://writ.local/agent/a, spiffe://writ.local/agent/b]
  rules:
    - name: ask
      effect: allow
      targets: [{mcp: {server: helper, tools: [ask], prompts: [greet], resources: ["file:///me"]}}]
---
apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: helper-may-ask-a}
spec:
  subjects: [spiffe://writ.local/agent/a]
  rules:
    - name: user-input
      effect: allow
      targets: [{mcp: {server: helper, tools: [elicitation/create, roots/list]}}]
    - name: small-samples
      description: the helper may sample up to 100 tokens
      effect: allow
      targets: [{mcp: {server: helper, tools: [sampling/createMessage]}}]
      when: mcp.args.maxTokens <= 100
`

// inputAgent connects an agent of revision version that answers the
// server's requests with its own tag, counting them.
func inputAgent(t *testing.T, endpoint, version, token, tag string, asked *atomic.Int32) *sdk.ClientSession {
	t.Helper()
	c := sdk.NewClient(&sdk.Implementation{Name: "agent-" + tag, Version: "1"}, &sdk.ClientOptions{
		ElicitationHandler: func(context.Context, *sdk.ElicitRequest) (*sdk.ElicitResult, error) {
			asked.Add(1)
			return &sdk.ElicitResult{Action: "accept", Content: map[string]any{"name": "ada-" + tag}}, nil
		},
		CreateMessageHandler: func(context.Context, *sdk.CreateMessageRequest) (*sdk.CreateMessageResult, error) {
			asked.Add(1)
			return &sdk.CreateMessageResult{Role: "assistant", Model: "test", Content: &sdk.TextContent{Text: "hi-" + tag}}, nil
		},
	})
	c.AddRoots(&sdk.Root{URI: "file:///work/" + tag, Name: tag})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: bearer{token}}},
		&sdk.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect at %s: %v", version, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// concurrentAgents runs four agents at once per revision, each answering
// with its own tag, and checks each call got its own agent's answers.
func concurrentAgents(t *testing.T, url string, versions []string) {
	ctx := context.Background()
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			var wg sync.WaitGroup
			for i := range 4 {
				tag := fmt.Sprintf("%s-%d", v, i)
				var asked atomic.Int32
				cs := inputAgent(t, url, v, "agent-token", tag, &asked)
				waitTools(t, cs, "ask")
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "ask", Arguments: map[string]any{}})
					if err != nil {
						t.Errorf("%s: ask: %v", tag, err)
						return
					}
					want := fmt.Sprintf("name=ada-%s llm=hi-%s root=file:///work/%s state=asked", tag, tag, tag)
					if got := callText(res); got != want {
						t.Errorf("%s: ask = %q, want %q", tag, got, want)
					}
					if n := asked.Load(); n != 2 {
						t.Errorf("%s: the agent was asked %d times, want 2 (elicitation, sampling)", tag, n)
					}
					// prompts/get and resources/read ask the same way.
					gp, err := cs.GetPrompt(ctx, &sdk.GetPromptParams{Name: "greet"})
					if err != nil || len(gp.Messages) != 1 || gp.Messages[0].Content.(*sdk.TextContent).Text != "Greet ada-"+tag {
						t.Errorf("%s: greet = %+v, %v", tag, gp, err)
					}
					rr, err := cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: "file:///me"})
					if err != nil || len(rr.Contents) != 1 || rr.Contents[0].Text != "root file:///work/"+tag {
						t.Errorf("%s: read = %+v, %v", tag, rr, err)
					}
				}()
			}
			wg.Wait()
		})
	}

}

// A server's sampling, elicitation and roots requests reach exactly the
// agent whose call asked, for every revision (the official Go SDK at both
// ends), while several agents call at once over the gateway's one
// upstream session; policy decides each request (down to its arguments)
// and each decision is an audited access.
func TestGatewayRelaysInputRequests(t *testing.T) {
	up := inputUpstream(t, &sdk.StreamableHTTPOptions{Stateless: true})
	srv := httpServer(t, "helper", up.URL)
	srv.Spec.Credential = nil
	f := newEnforced(t, inputPolicy, srv)
	ctx := context.Background()

	concurrentAgents(t, f.url+"/mcp/helper", protocolVersions)

	// The arguments of a sampling request are decided too: 5000 tokens
	// is more than the rule allows; the agent is asked nothing.
	var asked atomic.Int32
	cs := inputAgent(t, f.url+"/mcp/helper", "2025-11-25", "agent-token", "big", &asked)
	waitTools(t, cs, "ask")
	_, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "ask", Arguments: map[string]any{"max": 5000}})
	code, msg := rpcCode(err)
	if code != CodeDenied || !strings.Contains(msg, "MCP server helper may not have the agent answer sampling/createMessage (during ask)") {
		t.Fatalf("big sample: %v", err)
	}
	if asked.Load() != 0 {
		t.Fatalf("the agent was asked %d times for a refused call", asked.Load())
	}

	// Agent b may call ask but not be asked anything by the server.
	for _, v := range protocolVersions {
		var asked atomic.Int32
		cs := inputAgent(t, f.url+"/mcp/helper", v, "other-token", "b", &asked)
		waitTools(t, cs, "ask")
		_, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "ask", Arguments: map[string]any{}})
		code, msg := rpcCode(err)
		if code != CodeDenied || !strings.Contains(msg, "may not have the agent answer") {
			t.Fatalf("%s: agent b: %v", v, err)
		}
		if _, err := cs.GetPrompt(ctx, &sdk.GetPromptParams{Name: "greet"}); !strings.Contains(fmt.Sprint(err), "may not have the agent answer elicitation/create (during greet)") {
			t.Fatalf("%s: agent b greet: %v", v, err)
		}
		if _, err := cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: "file:///me"}); !strings.Contains(fmt.Sprint(err), "may not have the agent answer roots/list (during file:///me)") {
			t.Fatalf("%s: agent b read: %v", v, err)
		}
		if asked.Load() != 0 {
			t.Fatalf("%s: agent b was asked %d times", v, asked.Load())
		}
	}

	// Every decision is on the record, with the call it came with.
	f.enforcer.Flush()
	var allowed, denied int
	for _, ev := range f.ev.Take() {
		if ev.Details["tool"] != MethodSampling {
			continue
		}
		if ev.Details["mcp_during"] != "ask" || ev.Target != "MCPServer/helper" {
			t.Fatalf("sampling event %+v", ev)
		}
		switch ev.Type {
		case "access.allowed":
			allowed++
		case "access.denied":
			denied++
		}
	}
	if allowed != 4*len(protocolVersions) || denied != 1+len(protocolVersions) {
		t.Fatalf("sampling decisions recorded: %d allowed, %d denied", allowed, denied)
	}
}

// A server on a session of a revision before 2026-07-28 asks the agent
// over the gateway's shared upstream session, where no one agent can be
// told apart: refused (the session declares no such capability), and no
// agent is asked.
func TestGatewayRefusesInputRequestsOnTheSharedSession(t *testing.T) {
	up := inputUpstream(t, nil) // stateful: the gateway falls back to 2025-11-25
	srv := httpServer(t, "helper", up.URL)
	srv.Spec.Credential = nil
	f := newEnforced(t, inputPolicy, srv)
	for _, v := range protocolVersions {
		var asked atomic.Int32
		cs := inputAgent(t, f.url+"/mcp/helper", v, "agent-token", "a", &asked)
		waitTools(t, cs, "ask")
		_, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "ask", Arguments: map[string]any{}})
		if err == nil || !strings.Contains(err.Error(), "does not support") {
			t.Fatalf("%s: ask over a shared legacy session = %v, want a refusal", v, err)
		}
		if asked.Load() != 0 {
			t.Fatalf("%s: an agent was asked %d times", v, asked.Load())
		}
	}
}

// FuzzInputRequests feeds an upstream's answer, as bytes off the wire, to
// the decoding and deciding of its input requests: nothing panics, every
// request is put to policy before the answer can reach an agent, and a
// refusal refuses the whole answer.
func FuzzInputRequests(f *testing.F) {
	f.Add([]byte(`{"content":[],"inputRequests":{"a":{"method":"elicitation/create","params":{"message":"hi","requestedSchema":{"type":"object"}}}},"requestState":"s","resultType":"input_required"}`))
	f.Add([]byte(`{"inputRequests":{"x":{"method":"sampling/createMessage","params":{"maxTokens":5,"messages":[]}},"y":{"method":"roots/list"}}}`))
	f.Add([]byte(`{"inputRequests":{"x":{"method":"tools/call","params":{}}}}`))
	f.Add([]byte(`{"inputRequests":{"":{"method":"roots/list","params":null}}}`))
	f.Add([]byte(`{"inputRequests":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var res sdk.CallToolResult
		if err := res.UnmarshalJSON(data); err != nil {
			return
		}
		var asked []string
		deny := len(data)%2 == 0
		g := New(Config{Authorizer: AuthorizerFunc(func(_ context.Context, _ Caller, r Request) (Decision, error) {
			asked = append(asked, r.Method)
			if r.Name != "tool" || r.Server != "s" {
				t.Fatalf("decided %+v", r)
			}
			if deny {
				return Decision{Reason: "no"}, nil
			}
			return Decision{Allow: true}, nil
		})})
		b := &backend{srv: &Server{Name: "s"}}
		err := g.decideInputs(context.Background(), Caller{Key: "k"}, "", b, "tool", res.InputRequests)
		switch {
		case len(res.InputRequests) == 0 && (err != nil || len(asked) > 0):
			t.Fatalf("no requests: err %v, asked %v", err, asked)
		case deny && len(res.InputRequests) > 0 && err == nil:
			t.Fatal("a refused input request let the answer through")
		case !deny && err == nil && len(asked) != len(res.InputRequests):
			t.Fatalf("%d requests, %d decided", len(res.InputRequests), len(asked))
		}
		for _, m := range asked {
			if m != MethodSampling && m != MethodElicitation && m != MethodRoots {
				t.Fatalf("decided method %q", m)
			}
		}
	})
}

// sessions: per_agent: a server of a revision before 2026-07-28 asks the
// agent the pre-2026 way (a request of its own on its session during the
// call); each agent session has an upstream session of its own, so the
// request reaches exactly the agent whose call it is, decided by policy;
// the upstream session ends with the agent's.
func TestGatewayPerAgentSessions(t *testing.T) {
	up := inputUpstream(t, nil) // stateful: 2025-11-25 with the gateway
	srv := httpServer(t, "helper", up.URL)
	srv.Spec.Credential = nil
	srv.Spec.Sessions = SessionsPerAgent
	f := newEnforced(t, inputPolicy, srv)
	legacy := []string{"2025-06-18", "2025-11-25"}
	concurrentAgents(t, f.url+"/mcp/helper", legacy)
	// Those agents' sessions are closed: their upstream sessions end too.
	b := f.gw.backend("helper")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b.mu.Lock()
		n := len(b.agents)
		b.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d per-agent upstream sessions outlived their agents", n)
		}
	}

	for _, v := range legacy {
		var asked atomic.Int32
		cs := inputAgent(t, f.url+"/mcp/helper", v, "other-token", "b", &asked)
		waitTools(t, cs, "ask")
		_, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "ask", Arguments: map[string]any{}})
		if err == nil || asked.Load() != 0 {
			t.Fatalf("%s: agent b: %v, asked %d times", v, err, asked.Load())
		}
	}
	f.enforcer.Flush()
	denied := 0
	for _, ev := range f.ev.Take() {
		if ev.Type == "access.denied" && ev.SpiffeID == "spiffe://writ.local/agent/b" && strings.Contains(ev.Details["tool"], "/") {
			denied++
		}
	}
	if denied < len(legacy) {
		t.Fatalf("agent b's refused requests recorded: %d, want at least %d", denied, len(legacy))
	}

	// A 2026 agent is stateless: its calls go over the shared session,
	// where this server's requests are refused.
	var asked atomic.Int32
	cs := inputAgent(t, f.url+"/mcp/helper", "2026-07-28", "agent-token", "new", &asked)
	waitTools(t, cs, "ask")
	if _, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "ask", Arguments: map[string]any{}}); err == nil || asked.Load() != 0 {
		t.Fatalf("2026 agent over a legacy server: %v, asked %d", err, asked.Load())
	}

	// Agent b's sessions are still open, and so are their upstream ones.
	b.mu.Lock()
	n := len(b.agents)
	b.mu.Unlock()
	if n == 0 {
		t.Fatal("no per-agent upstream sessions while agents are connected")
	}
}

// Per-agent upstream sessions are bounded per server: past the bound an
// agent's call is refused as unavailable (no more processes or
// connections are opened), and a closed agent session frees its place.
func TestGatewayPerAgentSessionsBounded(t *testing.T) {
	defer func(n int) { maxAgentSessions = n }(maxAgentSessions)
	maxAgentSessions = 2
	up := inputUpstream(t, nil)
	srv := httpServer(t, "helper", up.URL)
	srv.Spec.Credential = nil
	srv.Spec.Sessions = SessionsPerAgent
	f := newEnforced(t, inputPolicy, srv)
	ctx := context.Background()
	var sessions []*sdk.ClientSession
	for i := range 3 {
		var asked atomic.Int32
		cs := inputAgent(t, f.url+"/mcp/helper", "2025-11-25", "agent-token", fmt.Sprint(i), &asked)
		waitTools(t, cs, "ask")
		sessions = append(sessions, cs)
	}
	for i, cs := range sessions[:2] {
		if _, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "ask", Arguments: map[string]any{}}); err != nil {
			t.Fatalf("agent %d: %v", i, err)
		}
	}
	_, err := sessions[2].CallTool(ctx, &sdk.CallToolParams{Name: "ask", Arguments: map[string]any{}})
	if code, msg := rpcCode(err); code != CodeUnavailable || !strings.Contains(msg, "the most with sessions: per_agent") {
		t.Fatalf("third agent: %v", err)
	}
	sessions[0].Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := sessions[2].CallTool(ctx, &sdk.CallToolParams{Name: "ask", Arguments: map[string]any{}}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed agent session never freed its place")
		}
	}
}
