package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// waitDrained makes drainStream report to the returned channel for the
// rest of the test.
func waitDrained(t *testing.T) <-chan struct{} {
	ch := make(chan struct{}, 64)
	f := func() { ch <- struct{}{} }
	drained.Store(&f)
	t.Cleanup(func() { drained.Store(nil) })
	return ch
}

// The fast path reads an answered event stream to its end, so calls
// through the gateway reuse the upstream connection instead of opening one
// a call (the SDK's server answers a tools/call with an event stream whose
// end can follow the answer in another read).
func TestFastPathReusesUpstreamConnections(t *testing.T) {
	s := sdk.NewServer(&sdk.Implementation{Name: "files", Version: "1"}, nil)
	sdk.AddTool(s, &sdk.Tool{Name: "read_file", Description: "Read a file."},
		func(_ context.Context, _ *sdk.CallToolRequest, in pathArgs) (*sdk.CallToolResult, any, error) {
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "contents of " + in.Path}}}, nil, nil
		})
	var conns atomic.Int64
	hs := httptest.NewUnstartedServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s }, nil))
	hs.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	hs.Start()
	t.Cleanup(hs.Close)
	done := waitDrained(t)
	f := fastFixture(t, hs.URL, true)
	cs := connectWith(t, f.url+"/mcp/files", "2025-11-25", headers{"Authorization": "Bearer agent-token"})
	waitTools(t, cs, "read_file")
	call := func() {
		t.Helper()
		if _, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "read_file", Arguments: map[string]any{"path": "/allowed/x"}}); err != nil {
			t.Fatal(err)
		}
		<-done
	}
	call()
	before := conns.Load()
	const n = 50
	for range n {
		call()
	}
	if f.gw.fastServed.Load() != n+1 {
		t.Fatalf("fast calls %d, want %d", f.gw.fastServed.Load(), n+1)
	}
	if added := conns.Load() - before; added != 0 {
		t.Fatalf("%d calls opened %d upstream connections, want none (each answered stream must be read to its end)", n, added)
	}
}

// An upstream that keeps an answered event stream open does not hold the
// agent's answer: the agent has it while the stream is still open, and the
// stream is read (and then dropped) after.
func TestFastPathOpenStreamAfterAnswer(t *testing.T) {
	release := make(chan struct{})
	var released atomic.Bool
	hs := httptest.NewServer(rawHandler(nil, func(w http.ResponseWriter, r *http.Request, id json.RawMessage) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: message\ndata: %s\n\n", strings.ReplaceAll(
			`{"jsonrpc":"2.0","id":%ID%,"result":{"content":[{"type":"text","text":"held"}]}}`, "%ID%", string(id)))
		w.(http.Flusher).Flush()
		select {
		case <-release:
			released.Store(true)
			io.WriteString(w, ": the end\n\n")
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hs.Close)
	done := waitDrained(t)
	wait := drainWait.Swap(int64(time.Hour)) // the stream ends when the test says
	t.Cleanup(func() { drainWait.Store(wait) })
	f := fastFixture(t, hs.URL, true)
	cs := connectWith(t, f.url+"/mcp/files", "2025-11-25", headers{"Authorization": "Bearer agent-token"})
	waitTools(t, cs, "fail,read_file")
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "read_file", Arguments: map[string]any{"path": "/allowed/x"}})
	if err != nil {
		t.Fatal(err)
	}
	if tc, ok := res.Content[0].(*sdk.TextContent); !ok || tc.Text != "held" {
		t.Fatalf("answer %#v, want the text held", res.Content[0])
	}
	if f.gw.fastServed.Load() != 1 {
		t.Fatalf("fast calls %d, want 1", f.gw.fastServed.Load())
	}
	select {
	case <-done:
		t.Fatal("the stream was dropped before its end")
	default:
	}
	close(release)
	<-done
	if !released.Load() {
		t.Fatal("the upstream's stream was not read after the answer")
	}
}
