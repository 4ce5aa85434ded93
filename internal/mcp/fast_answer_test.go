package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// rawUpstream is an MCP server over streamable HTTP written by hand, so
// it can answer a tools/call in ways the SDK's server never would: its
// read_file answers the message answers[path] of the call's path
// argument, with %ID% replaced by the call's id.
func rawUpstream(t testing.TB, answers map[string]string) string {
	hs := httptest.NewServer(rawHandler(answers, nil))
	t.Cleanup(hs.Close)
	return hs.URL
}

// rawHandler is rawUpstream's server; call, when set, answers every
// tools/call instead (id is the call's).
func rawHandler(answers map[string]string, call func(w http.ResponseWriter, r *http.Request, id json.RawMessage)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				ProtocolVersion string `json:"protocolVersion"`
				Arguments       struct {
					Path string `json:"path"`
				} `json:"arguments"`
			} `json:"params"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if m.ID == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		var answer string
		switch m.Method {
		case "initialize":
			w.Header().Set("Mcp-Session-Id", "raw-session")
			answer = `{"jsonrpc":"2.0","id":%ID%,"result":{"protocolVersion":"` + m.Params.ProtocolVersion +
				`","capabilities":{"tools":{}},"serverInfo":{"name":"raw","version":"1"}}}`
		case "tools/list":
			answer = `{"jsonrpc":"2.0","id":%ID%,"result":{"tools":[{"name":"read_file","description":"Read a file.","inputSchema":{"type":"object"}},` +
				`{"name":"fail","description":"Fail.","inputSchema":{"type":"object"}}]}}`
		case "tools/call":
			if call != nil {
				call(w, r, m.ID)
				return
			}
			var ok bool
			if answer, ok = answers[m.Params.Arguments.Path]; !ok {
				answer = `{"jsonrpc":"2.0","id":%ID%,"result":{"content":[{"type":"text","text":"contents of ` + m.Params.Arguments.Path + `"}]}}`
			}
		case "ping":
			answer = `{"jsonrpc":"2.0","id":%ID%,"result":{}}`
		default:
			answer = `{"jsonrpc":"2.0","id":%ID%,"error":{"code":-32601,"message":"no"}}`
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, strings.ReplaceAll(answer, "%ID%", string(m.ID)))
	})
}

// An upstream's answers that the fast path passes through as sent (text
// only) or hands to the SDK's decoder (anything else) reach the agent as
// they do on the SDK's path: the same results, the same redactions, the
// same errors and audit events; no secret gets through, however it is
// written.
func TestFastPathUpstreamAnswers(t *testing.T) {
	const tok = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"
	escaped := strings.ReplaceAll(tok, "g", `\u0067`) // the same token, JSON-escaped
	res := func(result string) string { return `{"jsonrpc":"2.0","id":%ID%,"result":` + result + `}` }
	answers := map[string]string{
		"/allowed/plain":       res(`{"content":[{"type":"text","text":"a\nb \u00e9"},{"type":"text","text":""}]}`),
		"/allowed/is-error":    res(`{"content":[{"type":"text","text":"it broke"}],"isError":true}`),
		"/allowed/not-error":   res(`{"isError":false,"content":[{"type":"text","text":"fine"}]}`),
		"/allowed/secret":      res(`{"content":[{"type":"text","text":"token=` + tok + `"}]}`),
		"/allowed/escaped":     res(`{"content":[{"type":"text","text":"token=` + escaped + `"}]}`),
		"/allowed/structured":  res(`{"content":[{"type":"text","text":"see structured"}],"structuredContent":{"token":"` + tok + `","n":9007199254740993}}`),
		"/allowed/extra":       res(`{"content":[{"type":"text","text":"x"}],"x-extra":"` + tok + `"}`),
		"/allowed/item-extra":  res(`{"content":[{"type":"text","text":"x","annotations":{"priority":1}}]}`),
		"/allowed/image":       res(`{"content":[{"type":"image","data":"aGVsbG8=","mimeType":"image/png"}]}`),
		"/allowed/meta":        res(`{"content":[{"type":"text","text":"x"}],"_meta":{"k":"` + tok + `"}}`),
		"/allowed/no-content":  res(`{}`),
		"/allowed/dup-result":  `{"jsonrpc":"2.0","id":%ID%,"result":{"content":[{"type":"text","text":"clean"}]},"result":{"content":[{"type":"text","text":"` + tok + `"}]}}`,
		"/allowed/dup-content": res(`{"content":[{"type":"text","text":"clean"}],"content":[{"type":"text","text":"` + tok + `"}]}`),
		"/allowed/dup-text":    res(`{"content":[{"type":"text","text":"clean","text":"` + tok + `"}]}`),
		"/allowed/case":        res(`{"Content":[{"type":"text","text":"` + tok + `"}],"content":[{"type":"text","text":"clean"}]}`),
		"/allowed/rpc-error":   `{"jsonrpc":"2.0","id":%ID%,"error":{"code":-32000,"message":"refused","data":{"why":"` + tok + `"}}}`,
		"/allowed/bad-is-err":  res(`{"content":[{"type":"text","text":"x"}],"isError":"yes"}`),
		"/allowed/trailing":    res(`{"content":[{"type":"text","text":"x"}]}`) + ` {}`,
	}
	paths := make([]string, 0, len(answers))
	for p := range answers {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	up := rawUpstream(t, answers)
	type outcome struct {
		answers, events []string
		fast            int64
	}
	run := func(fast bool) outcome {
		f := fastFixture(t, up, fast)
		cs := connectWith(t, f.url+"/mcp/files", "2025-11-25", headers{"Authorization": "Bearer agent-token"})
		waitTools(t, cs, "fail,read_file")
		f.ev.Take()
		var o outcome
		for _, p := range paths {
			res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "read_file", Arguments: map[string]any{"path": p}})
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
			// The size of a result relayed as sent is its size as sent,
			// which the SDK's encoding of the same result may not be
			// (escapes, member order, an isError false left out).
			if e.Details["status"] == "200" && e.Details["bytes_out"] == "0" {
				t.Errorf("%s: no result size: %s", e.Action, normal(e))
			}
			delete(e.Details, "bytes_out")
			o.events = append(o.events, normal(e))
		}
		o.fast = f.gw.fastServed.Load()
		return o
	}
	sdkPath, fastPath := run(false), run(true)
	if fastPath.fast != int64(len(paths)) {
		t.Errorf("the fast path took %d of %d calls", fastPath.fast, len(paths))
	}
	for i, p := range paths {
		if sdkPath.answers[i] != fastPath.answers[i] {
			t.Errorf("%s:\n SDK path:  %s\n fast path: %s", p, sdkPath.answers[i], fastPath.answers[i])
		}
		for _, a := range []string{sdkPath.answers[i], fastPath.answers[i]} {
			if strings.Contains(a, tok) || strings.Contains(a, escaped) {
				t.Errorf("%s: the secret reached the agent: %s", p, a)
			}
		}
		if testing.Verbose() {
			t.Logf("%s: %s", p, fastPath.answers[i])
		}
	}
	if !slices.Equal(sdkPath.events, fastPath.events) {
		t.Errorf("audit events differ:\n SDK path:\n  %s\n fast path:\n  %s", strings.Join(sdkPath.events, "\n  "), strings.Join(fastPath.events, "\n  "))
	}
	for _, e := range fastPath.events {
		if strings.Contains(e, tok) {
			t.Errorf("the secret is in an audit event: %s", e)
		}
	}
}

// FuzzUpstreamAnswer: whatever an upstream sends, the standard-library
// reading of a response (responseOf) agrees with the SDK's decoder on
// what it takes, and a result passed through as sent (plainResult) is one
// the SDK decodes to text content with the same isError.
func FuzzUpstreamAnswer(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":"writ-1","result":{"content":[{"type":"text","text":"hi"}]}}`,
		`{"jsonrpc":"2.0","id":"writ-1","result":{"content":[{"type":"text","text":"hi"}],"isError":true}}`,
		`{"jsonrpc":"2.0","id":"writ-1","error":{"code":-32000,"message":"no","data":{"a":1}}}`,
		`{"jsonrpc":"2.0","id":7,"result":{}}`,
		`{"jsonrpc":"2.0","id":"writ-1","result":{"content":[]},"result":{}}`,
		`{"jsonrpc":"2.0","method":"ping","id":"p"}`,
		`{"jsonrpc":"2.0","id":"w\u0072it-1","result":{"content":[{"type":"text","text":"\ud800"}]}}`,
		`{"jsonrpc":"2.0","id":"writ-1","result":{"content":[{"type":"text","text":"x"}],"structuredContent":{"n":1}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, result, rpcErr, ok := responseOf(data)
		if !ok {
			return
		}
		msg, err := jsonrpc.DecodeMessage(data)
		if err != nil {
			t.Fatalf("responseOf took %q, which the SDK refuses: %v", data, err)
		}
		resp, isResp := msg.(*jsonrpc.Response)
		if !isResp {
			t.Fatalf("responseOf took %q, which the SDK reads as %T", data, msg)
		}
		if resp.ID.Raw() != id {
			t.Fatalf("%q: id %q, the SDK's %v", data, id, resp.ID.Raw())
		}
		if (rpcErr != nil) != (resp.Error != nil) {
			t.Fatalf("%q: error %v, the SDK's %v", data, rpcErr, resp.Error)
		}
		if rpcErr != nil {
			var je *jsonrpc.Error
			if !errors.As(resp.Error, &je) || rpcErr.Code != je.Code || rpcErr.Message != je.Message {
				t.Fatalf("%q: error %+v, the SDK's %+v", data, rpcErr, resp.Error)
			}
			return
		}
		isError, plain := plainResult(result)
		if !plain {
			return
		}
		var res sdk.CallToolResult
		if err := json.Unmarshal(result, &res); err != nil {
			t.Fatalf("plainResult took %s, which the SDK refuses: %v", result, err)
		}
		if res.IsError != isError || res.StructuredContent != nil || res.Meta != nil {
			t.Fatalf("plainResult took %s as isError %v; the SDK reads %+v", result, isError, res)
		}
		for _, c := range res.Content {
			if _, ok := c.(*sdk.TextContent); !ok {
				t.Fatalf("plainResult took %s, whose content the SDK reads as %T", result, c)
			}
		}
	})
}
