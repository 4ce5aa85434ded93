package mcp

import (
	"context"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/writ-dev/writ/internal/store"
)

// TestGatewayRecheck: a quarantine decided elsewhere (another gateway
// reported a rug pull to the pin store) hides the tool here at the next
// Recheck, without listing the upstream again and without writing a pin;
// an approval shows it again.
func TestGatewayRecheck(t *testing.T) {
	up := newTestUpstream(t)
	f := newGateway(t, httpServer(t, "files", up.http.URL))
	ctx := context.Background()
	cs := connect(t, f.http.URL+"/mcp/files", "2025-11-25")
	waitTools(t, cs, "read_file")
	pins := f.gw.cfg.Pins
	pin, err := pins.GetPin(ctx, "files", "read_file")
	if err != nil {
		t.Fatal(err)
	}
	trusted := pin.Digest
	pin.State, pin.Observed, pin.Reason = store.PinQuarantined, "sha256:elsewhere", "its descriptor changed since it was pinned"
	if pin, err = pins.UpdatePin(ctx, pin); err != nil {
		t.Fatal(err)
	}
	if err := f.gw.Recheck(ctx, ""); err != nil {
		t.Fatal(err)
	}
	waitTools(t, cs, "")
	_, err = cs.CallTool(ctx, &sdk.CallToolParams{Name: "read_file", Arguments: map[string]any{"path": "/allowed/x"}})
	if code, msg := rpcCode(err); code != CodeQuarantined || !strings.Contains(msg, "writ mcp approve files read_file") {
		t.Fatalf("call after a quarantine elsewhere: %v", err)
	}
	if got, _ := pins.GetPin(ctx, "files", "read_file"); got.Revision != pin.Revision {
		t.Errorf("Recheck wrote the pin: revision %d -> %d", pin.Revision, got.Revision)
	}
	// Approved for the descriptor this gateway sees: usable again.
	pin.Observed = trusted
	if pin, err = pins.UpdatePin(ctx, pin); err != nil {
		t.Fatal(err)
	}
	if _, err := f.gw.Pinner().Approve(ctx, "files", "read_file", "admin:alice"); err != nil {
		t.Fatal(err)
	}
	if err := f.gw.Recheck(ctx, "files"); err != nil {
		t.Fatal(err)
	}
	waitTools(t, cs, "read_file")
	if _, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "read_file", Arguments: map[string]any{"path": "/allowed/x"}}); err != nil {
		t.Fatalf("after approval: %v", err)
	}
}

// TestFromPins: deciding from pins alone trusts only a trusted pin of
// exactly the announced descriptor.
func TestFromPins(t *testing.T) {
	srv := &Server{Name: "files", Pin: PinTOFU}
	a, b := tool("a", "A."), tool("b", "B.")
	da, _, _ := a.Digests()
	db, _, _ := b.Digests()
	cases := []struct {
		name string
		pins []store.Pin
		want string
	}{
		{"no pins", nil, "!a !b"},
		{"trusted", []store.Pin{{Server: "files", Tool: "a", Digest: da, State: store.PinPinned}, {Server: "files", Tool: "b", Digest: db, State: store.PinApproved}}, "a b"},
		{"changed", []store.Pin{{Server: "files", Tool: "a", Digest: db, State: store.PinPinned}}, "!a !b"},
		{"quarantined", []store.Pin{{Server: "files", Tool: "a", Digest: da, Observed: da, State: store.PinQuarantined}}, "!a !b"},
		{"another server's", []store.Pin{{Server: "other", Tool: "a", Digest: da, State: store.PinPinned}}, "!a !b"},
	}
	for _, c := range cases {
		if got := usable(FromPins(srv, []Descriptor{a, b}, c.pins)); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	if got := usable(FromPins(&Server{Name: "files", Pin: PinOff}, []Descriptor{a, b}, nil)); got != "a b" {
		t.Errorf("pin off: %s", got)
	}
	if got := usable(FromPins(srv, []Descriptor{{}}, nil)); got != "!" {
		t.Errorf("nameless tool: %s", got)
	}
}

// TestCompileRemote: a node compiles a signed MCPServer whose manifest is
// a file on the server (the server reads it when it checks the node's
// tools); everything else is checked as by Compile.
func TestCompileRemote(t *testing.T) {
	spec := []byte(`{"command":"x","pin":"signed","publisher_key":"ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=","manifest":"/nonexistent/m.json"}`)
	r := store.Resource{Kind: "MCPServer", Name: "s", Version: 1, Spec: spec}
	if _, err := Compile(r); err == nil || !strings.Contains(err.Error(), "read /nonexistent/m.json") {
		t.Fatalf("Compile: %v", err)
	}
	srv, err := CompileRemote(r)
	if err != nil || srv.Pin != PinSigned || srv.PublisherKey == nil {
		t.Fatalf("CompileRemote: %+v, %v", srv, err)
	}
	r.Spec = []byte(`{"command":"x","pin":"signed","manifest":"relative.json","publisher_key":"ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}`)
	if _, err := CompileRemote(r); err == nil || !strings.Contains(err.Error(), "absolute path") {
		t.Fatalf("CompileRemote of a relative manifest: %v", err)
	}
}
