package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/secrets"
)

const fastPolicy = `apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: files-agent}
spec:
  subjects: [spiffe://writ.local/agent/a]
  rules:
    - name: read-allowed
      effect: allow
      targets: [{mcp: {server: files, tools: [read_file]}}]
      when: mcp.args.path.startsWith("/allowed/")
    - name: fail
      effect: allow
      targets: [{mcp: {server: files, tools: [fail]}}]
    - name: no-writes
      effect: deny
      targets: [{mcp: {server: files, tools: [write_file]}}]
`

// leakyUpstream is a files server whose read_file puts a secret in its
// result for a path holding "secret", and whose fail tool answers a tool
// error or (for "rpc") a JSON-RPC error.
func leakyUpstream(t testing.TB, leaked string) string {
	s := sdk.NewServer(&sdk.Implementation{Name: "files", Version: "1"}, nil)
	sdk.AddTool(s, &sdk.Tool{Name: "read_file", Description: "Read a file."},
		func(_ context.Context, _ *sdk.CallToolRequest, in pathArgs) (*sdk.CallToolResult, any, error) {
			text := "contents of " + in.Path
			if strings.Contains(in.Path, "secret") {
				text += " token=" + leaked
			}
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: text}}}, nil, nil
		})
	sdk.AddTool(s, &sdk.Tool{Name: "write_file", Description: "Write a file."},
		func(_ context.Context, _ *sdk.CallToolRequest, in pathArgs) (*sdk.CallToolResult, any, error) {
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "wrote " + in.Path}}}, nil, nil
		})
	sdk.AddTool(s, &sdk.Tool{Name: "fail", Description: "Fail."},
		func(_ context.Context, _ *sdk.CallToolRequest, in pathArgs) (*sdk.CallToolResult, any, error) {
			if in.Path == "rpc" {
				return nil, nil, &jsonrpc.Error{Code: -32000, Message: "upstream refused " + in.Path}
			}
			return nil, nil, fmt.Errorf("cannot do %s", in.Path)
		})
	hs := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s }, nil))
	t.Cleanup(hs.Close)
	return hs.URL
}

// fastFixture is a gateway over writ's real enforcement with the
// redactor, the fast path on or off.
func fastFixture(t *testing.T, up string, fast bool) *enforced {
	t.Helper()
	srv := httpServer(t, "files", up)
	srv.Spec.Credential = nil
	f := newEnforced(t, fastPolicy, srv)
	det, err := secrets.New(secrets.Config{FingerprintKey: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	f.gw.cfg.Redactor = det // before any request
	f.gw.cfg.NoFastPath = !fast
	return f
}

// normal is an audit event without what differs from one run to the next
// (ids, times, addresses, session ids, latency).
func normal(e audit.Event) string {
	d := map[string]string{}
	for k, v := range e.Details {
		switch k {
		case "mcp_session", "request_id", "journal_seq":
			continue
		}
		d[k] = v
	}
	b, _ := json.Marshal(struct {
		Type, SpiffeID, Instance, Target, Action, Decision, Policy, Rule, Reason string
		Details                                                                  map[string]string
	}{string(e.Type), e.SpiffeID, e.Instance, e.Target, e.Action, e.Decision, e.Policy, e.Rule, e.Reason, d})
	return string(b)
}

// The fast path and the SDK's path give the same answers (results,
// redactions, errors with their code, message and data) and the same audit
// events for the same calls; the fast path answered every call of its
// gateway, and none of the other's.
func TestFastPathMatchesSDKPath(t *testing.T) {
	const leaked = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"
	up := leakyUpstream(t, leaked)
	calls := []struct {
		name string
		args map[string]any
	}{
		{"read_file", map[string]any{"path": "/allowed/x"}},
		{"read_file", map[string]any{"path": "/etc/passwd"}},
		{"read_file", map[string]any{"path": "/allowed/secret"}},
		{"read_file", map[string]any{"path": "/allowed/\u00e9\u200b", "extra": []any{1, 2.5, nil, true}}},
		{"read_file", nil},
		{"write_file", map[string]any{"path": "/allowed/x"}},
		{"fail", map[string]any{"path": "tool"}},
		{"fail", map[string]any{"path": "rpc"}},
	}
	type outcome struct {
		answers []string
		events  []string
		fast    int64
	}
	run := func(fast bool) outcome {
		f := fastFixture(t, up, fast)
		cs := connectWith(t, f.url+"/mcp/files", "2025-11-25", headers{"Authorization": "Bearer agent-token"})
		waitTools(t, cs, "fail,read_file")
		f.ev.Take()
		var o outcome
		for i, c := range calls {
			before := f.gw.fastServed.Load()
			res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: c.name, Arguments: c.args})
			if fast && f.gw.fastServed.Load() == before {
				t.Errorf("call %d (%s %v) was not taken", i, c.name, c.args)
			}
			if err != nil {
				code, msg := rpcCode(err)
				o.answers = append(o.answers, fmt.Sprintf("error %d %s", code, msg))
				continue
			}
			b, _ := json.Marshal(res)
			o.answers = append(o.answers, string(b))
		}
		f.enforcer.Flush()
		for _, e := range f.ev.Take() {
			o.events = append(o.events, normal(e))
		}
		o.fast = f.gw.fastServed.Load()
		return o
	}
	sdkPath, fastPath := run(false), run(true)
	if sdkPath.fast != 0 || fastPath.fast != int64(len(calls)) {
		t.Fatalf("fast path answered %d calls with it off, %d of %d with it on", sdkPath.fast, fastPath.fast, len(calls))
	}
	for i := range calls {
		if sdkPath.answers[i] != fastPath.answers[i] {
			t.Errorf("call %d (%s %v):\n SDK path:  %s\n fast path: %s", i, calls[i].name, calls[i].args, sdkPath.answers[i], fastPath.answers[i])
		}
		if strings.Contains(fastPath.answers[i], leaked) {
			t.Errorf("call %d: the secret reached the agent: %s", i, fastPath.answers[i])
		}
	}
	if !slices.Equal(sdkPath.events, fastPath.events) {
		t.Errorf("audit events differ:\n SDK path:\n  %s\n fast path:\n  %s", strings.Join(sdkPath.events, "\n  "), strings.Join(fastPath.events, "\n  "))
	}
	if !strings.Contains(strings.Join(fastPath.events, "\n"), `"redactions":"`) {
		t.Errorf("no redaction audited: %s", strings.Join(fastPath.events, "\n"))
	}
}

// rawPost sends body to the gateway as a 2025-11-25 agent on session sid
// would, with hdr on top, and returns the status and the body.
func rawPost(t *testing.T, url, sid, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer agent-token")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Hostile requests are not taken by the fast path: the SDK's path answers
// them as it did before (refusing what it refuses), and nothing the fast
// path does not fully understand is decided or relayed by it.
func TestFastPathHostile(t *testing.T) {
	up := leakyUpstream(t, "unused")
	f := fastFixture(t, up, true)
	cs := connectWith(t, f.url+"/mcp/files", "2025-11-25", headers{"Authorization": "Bearer agent-token"})
	waitTools(t, cs, "fail,read_file")
	sid := cs.ID()
	url := f.url + "/mcp/files"
	read := `"params":{"name":"read_file","arguments":{"path":"/allowed/x"}}`

	// The plain call is taken, and answered as JSON with the agent's id.
	code, body := rawPost(t, url, sid, `{"jsonrpc":"2.0","id":"abc",`+"\n"+`"method":"tools/call",`+read+`}`, nil)
	if code != 200 || !strings.Contains(body, `"id":"abc"`) || !strings.Contains(body, "contents of /allowed/x") || f.gw.fastServed.Load() != 1 {
		t.Fatalf("plain call: %d %s (fast %d)", code, body, f.gw.fastServed.Load())
	}

	other := map[string]string{"Authorization": "Bearer other-token"}
	cases := []struct {
		name, sid, body string
		hdr             map[string]string
		wantCode        int    // 0: any
		want            string // in the body
	}{
		{"malformed", sid, `{"jsonrpc":"2.0","id":1,"method":"tools/call",` + read, nil, 0, ""},
		{"trailing data", sid, `{"jsonrpc":"2.0","id":1,"method":"tools/call",` + read + `} {}`, nil, 0, ""},
		{"batch", sid, `[{"jsonrpc":"2.0","id":1,"method":"tools/call",` + read + `},{"jsonrpc":"2.0","id":2,"method":"tools/call",` + read + `}]`, nil, 0, ""},
		{"duplicate name", sid, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","name":"write_file","arguments":{"path":"/allowed/x"}}}`, nil, 0, ""},
		{"duplicate method", sid, `{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call",` + read + `}`, nil, 0, ""},
		{"duplicate params", sid, `{"jsonrpc":"2.0","id":1,"method":"tools/call",` + read + `,"params":{"name":"write_file","arguments":{}}}`, nil, 0, ""},
		{"member case", sid, `{"jsonrpc":"2.0","id":1,"Method":"tools/call",` + read + `}`, nil, 0, ""},
		{"unknown param", sid, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","Name":"write_file","arguments":{"path":"/allowed/x"}}}`, nil, 0, ""},
		{"huge string id", sid, `{"jsonrpc":"2.0","id":"` + strings.Repeat("x", 10000) + `","method":"tools/call",` + read + `}`, nil, 0, ""},
		{"huge number id", sid, `{"jsonrpc":"2.0","id":1e300,"method":"tools/call",` + read + `}`, nil, 0, ""},
		{"id beyond 2^53", sid, `{"jsonrpc":"2.0","id":9007199254740993,"method":"tools/call",` + read + `}`, nil, 0, ""},
		{"null id", sid, `{"jsonrpc":"2.0","id":null,"method":"tools/call",` + read + `}`, nil, 0, ""},
		{"notification", sid, `{"jsonrpc":"2.0","method":"tools/call",` + read + `}`, nil, 0, ""},
		{"arguments not an object", sid, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":["/allowed/x"]}}`, nil, 0, ""},
		{"invalid UTF-8", sid, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"read_file\xff\",\"arguments\":{}}}", nil, 0, ""},
		{"unknown session", "NOSUCHSESSION", `{"jsonrpc":"2.0","id":1,"method":"tools/call",` + read + `}`, nil, 404, "session not found"},
		{"another identity's session", sid, `{"jsonrpc":"2.0","id":1,"method":"tools/call",` + read + `}`, other, 403, "session user mismatch"},
		{"header and body disagree", sid, `{"jsonrpc":"2.0","id":1,"method":"tools/call",` + read + `}`,
			map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "write_file"}, 200, "contents of /allowed/x"},
		{"newer revision on the session", sid, `{"jsonrpc":"2.0","id":1,"method":"tools/call",` + read + `}`,
			map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "read_file"}, 0, ""},
		{"DNS rebinding", sid, `{"jsonrpc":"2.0","id":1,"method":"tools/call",` + read + `}`, map[string]string{"Host": "evil.example"}, 403, "invalid Host"},
		{"quarantined or unknown tool", sid, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nope","arguments":{}}}`, nil, 0, "unknown tool"},
		{"wrong content type", sid, `{"jsonrpc":"2.0","id":1,"method":"tools/call",` + read + `}`, map[string]string{"Content-Type": "text/plain"}, 415, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := f.gw.fastServed.Load()
			f.ev.Take()
			code, body := rawPost(t, url, tc.sid, tc.body, tc.hdr)
			f.enforcer.Flush()
			if f.gw.fastServed.Load() != before {
				t.Fatalf("the fast path took it: %d %s", code, body)
			}
			if tc.wantCode != 0 && code != tc.wantCode {
				t.Errorf("status %d, want %d: %s", code, tc.wantCode, body)
			}
			if !strings.Contains(body, tc.want) {
				t.Errorf("answer %q does not say %q", body, tc.want)
			}
			for _, e := range f.ev.Take() {
				if testing.Verbose() {
					t.Logf("event %s", normal(e))
				}
				if e.Type == audit.AccessAllowed && tc.wantCode >= 400 {
					t.Errorf("a refused request was allowed: %+v", e)
				}
			}
		})
	}
}

// A session that went through the SDK's path longer ago than a quarter of
// the session timeout is sent there again (which keeps the SDK's idle
// timer from ending a busy session), then taken again.
func TestFastPathKeepsSessionsAlive(t *testing.T) {
	up := leakyUpstream(t, "unused")
	f := fastFixture(t, up, true)
	cs := connectWith(t, f.url+"/mcp/files", "2025-11-25", headers{"Authorization": "Bearer agent-token"})
	waitTools(t, cs, "fail,read_file")
	a := f.gw.sessions.get(cs.ID())
	if a == nil {
		t.Fatal("the session is not known to the fast path")
	}
	call := func() {
		if _, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "read_file", Arguments: map[string]any{"path": "/allowed/x"}}); err != nil {
			t.Fatal(err)
		}
	}
	call()
	if f.gw.fastServed.Load() != 1 {
		t.Fatalf("fast calls %d, want 1", f.gw.fastServed.Load())
	}
	a.sdkSeen.Store(f.gw.cfg.Now().Add(-f.gw.cfg.SessionTimeout).UnixNano())
	call()
	if f.gw.fastServed.Load() != 1 {
		t.Fatalf("a session unseen by the SDK for the whole timeout was taken (fast calls %d)", f.gw.fastServed.Load())
	}
	call()
	if f.gw.fastServed.Load() != 2 {
		t.Fatalf("fast calls %d, want 2", f.gw.fastServed.Load())
	}
	cs.Close()
	for range 1000 {
		if f.gw.sessions.get(a.ss.ID()) == nil {
			return
		}
		a.ss.Wait()
	}
	t.Fatal("a closed session is still known to the fast path")
}

func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/allowed/x"}}}`,
		`{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x","_meta":{"writ.dev/approval":"apr_1"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}]`,
		`{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"name":"a"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\u0061","arguments":null}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := decodeEnvelope(body)
		if err != nil {
			return
		}
		// What the fast path takes, the standard decoding reads the same
		// way: one request of method tools/call, that name and id.
		var m struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      any             `json:"id"`
			Method  string          `json:"method"`
			Params  json.RawMessage `json:"params"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("taken %q, which does not decode: %v", body, err)
		}
		var p struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if err := json.Unmarshal(m.Params, &p); err != nil {
			t.Fatalf("taken %q, whose params do not decode: %v", body, err)
		}
		if m.JSONRPC != "2.0" || m.Method != "tools/call" || p.Name != env.name || p.Name == "" {
			t.Fatalf("taken %q as %+v; the standard decoding reads %+v %+v", body, env, m, p)
		}
		want := m.ID
		if f, ok := want.(float64); ok {
			want = int64(f)
		}
		if env.id.Raw() != want {
			t.Fatalf("id %v, the standard decoding reads %v", env.id.Raw(), m.ID)
		}
		if env.args != nil && !isObject(env.args) && string(env.args) != "null" {
			t.Fatalf("arguments %s are not an object", env.args)
		}
	})
}
