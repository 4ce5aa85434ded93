package mcp

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// post sends one JSON-RPC message to the gateway as a 2026-07-28 client
// would, with the given extra headers, and returns status and body.
func post(t testing.TB, h http.Handler, path, body string, hdr map[string]string) (int, string) {
	// A long-lived stream (subscriptions/listen) ends with the request.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", path, strings.NewReader(body))
	req.Host = "127.0.0.1"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer agent-token")
	req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

const callBody = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/allowed/x"},` +
	`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}`

// In revision 2026-07-28 the Mcp-Method and Mcp-Name headers must match
// the body, or the request is refused; the decision is the body's.
func TestGatewayHeadersMustMatchBody(t *testing.T) {
	up := newTestUpstream(t)
	f := newGateway(t, httpServer(t, "files", up.http.URL))
	cs := connect(t, f.http.URL+"/mcp/files", "2026-07-28")
	waitTools(t, cs, "read_file")

	code, body := post(t, f.gw, "/mcp/files", callBody, map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "read_file"})
	if code != 200 || !strings.Contains(body, "contents of /allowed/x") || !strings.Contains(body, `"id":7`) {
		t.Fatalf("matching headers: %d %s", code, body)
	}
	for name, hdr := range map[string]map[string]string{
		"name mismatch":   {"Mcp-Method": "tools/call", "Mcp-Name": "write_file"},
		"method mismatch": {"Mcp-Method": "tools/list", "Mcp-Name": "read_file"},
		"no name":         {"Mcp-Method": "tools/call"},
		"no method":       {"Mcp-Name": "read_file"},
	} {
		code, body := post(t, f.gw, "/mcp/files", callBody, hdr)
		t.Logf("%s: %d %.120s", name, code, body)
		if code == 200 && strings.Contains(body, "contents of") {
			t.Errorf("%s: accepted: %d %s", name, code, body)
		}
	}
	// A header naming an allowed tool does not let a denied call through.
	denied := strings.Replace(callBody, `"name":"read_file"`, `"name":"write_file"`, 1)
	code, body = post(t, f.gw, "/mcp/files", denied, map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "read_file"})
	if strings.Contains(body, "wrote") {
		t.Fatalf("denied call with a mismatched header went through: %d %s", code, body)
	}
	code, body = post(t, f.gw, "/mcp/files", denied, map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "write_file"})
	if !strings.Contains(body, "write_file is not allowed") || !strings.Contains(body, `"id":7`) {
		t.Fatalf("denied call: %d %s, want the reason and the request id", code, body)
	}
}

// FuzzGatewayJSONRPC sends arbitrary bodies to the gateway: it must never
// panic, and whatever it answers with 200 must be JSON-RPC (JSON or SSE).
func FuzzGatewayJSONRPC(f *testing.F) {
	for _, s := range []string{callBody, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"files__read_file","arguments":null}}]`,
		`{"jsonrpc":"2.0","id":"x","method":"resources/read","params":{"uri":"file:///secret/b.txt"}}`,
		`{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"summarise","arguments":{"a":"b"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`, `{`, `null`, `{"id":{}}`} {
		f.Add(s, "tools/call", "read_file", "/mcp/files")
	}
	up := newTestUpstream(f)
	fx := newGateway(f, httpServer(f, "files", up.http.URL))
	f.Fuzz(func(t *testing.T, body, method, name, path string) {
		if !strings.HasPrefix(path, "/") || len(path) > 100 || strings.ContainsAny(path, "?# \r\n") ||
			strings.ContainsAny(method+name, "\r\n\x00") {
			return
		}
		if _, err := url.ParseRequestURI(path); err != nil {
			return
		}
		code, resp := post(t, fx.gw, path, body, map[string]string{"Mcp-Method": method, "Mcp-Name": name})
		if code != 200 {
			return
		}
		for _, line := range strings.Split(resp, "\n") {
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				continue
			}
			if !json.Valid([]byte(data)) {
				t.Fatalf("answer is not JSON: %q", data)
			}
		}
		if strings.HasPrefix(resp, "{") && !json.Valid([]byte(resp)) {
			t.Fatalf("answer is not JSON: %q", resp)
		}
	})
}
