package mcp

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/node"
	"github.com/writ-dev/writ/internal/node/nodeattest"
)

// startNode joins a node (in this process) to in and runs it with its
// proxy listener; it returns the node's /mcp/bench.
func startNode(tb testing.TB, addr, tlsAddr string, token string) string {
	ctx := context.Background()
	dir := tb.TempDir()
	resp, err := http.Get(addr + "/bundle")
	if err != nil {
		tb.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		tb.Fatal(err)
	}
	bundle := filepath.Join(dir, "bundle.json")
	if err := os.WriteFile(bundle, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	n, err := node.New(ctx, node.Config{TrustDomain: spiffeid.RequireTrustDomainFromString("writ.local"), DataDir: filepath.Join(dir, "n"),
		Server: "https://" + tlsAddr, ServerBundle: bundle, Name: "bench-node", Prover: nodeattest.JoinTokenProver{Token: token},
		Socket: filepath.Join(dir, "n.sock"), SocketMode: 0o600, ProxyListen: "127.0.0.1:0", NoDiscovery: true})
	if err != nil {
		tb.Fatal(err)
	}
	nctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(nctx) }()
	tb.Cleanup(func() { stop(); <-done })
	for deadline := time.Now().Add(60 * time.Second); n.MCPGateway().Server("bench") == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatal("the node never served MCPServer bench")
		}
	}
	url := "http://" + n.ProxyAddr() + "/mcp/bench"
	waitListed(tb, url)
	return url
}

// TestMCPNodeVsServer compares a tools/call through a node's MCP gateway
// with the same call through the server's, in one run: one writ server
// and one node in this process, one Go SDK upstream (streamable HTTP),
// the same policy; rounds alternate the two paths. Per path: calls/s at
// saturation and this process's CPU time per call (agent, gateway,
// upstream and, for the node path, the node's spool and the server
// taking its events: everything a call costs the machine).
//
//	WRIT_MCP_BENCH=1 go test -run TestMCPNodeVsServer -v -timeout 20m ./bench/mcp/
func TestMCPNodeVsServer(t *testing.T) {
	if os.Getenv("WRIT_MCP_BENCH") == "" {
		t.Skip("set WRIT_MCP_BENCH=1 to run the node vs server gateway comparison")
	}
	rounds := 5
	const conc = 32
	dur := 3 * time.Second
	up := upstream(t)
	in := startWrit(t, up)
	tok, err := in.Client.CreateJoinToken(context.Background(), apitypes.JoinTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ps := []path{{"server", "http://" + in.Server.ProxyAddr() + "/mcp/bench", nil}, {"node", startNode(t, in.Addr, in.Server.TLSAddr(), tok.Token), nil}}
	waitListed(t, ps[0].url)
	sess := map[string][]*sdk.ClientSession{}
	rps := map[string][]float64{}
	cpus := map[string][]time.Duration{}
	for _, p := range ps {
		for range 4 {
			sess[p.name] = append(sess[p.name], dial(t, p.url))
		}
		paced(t, sess[p.name][0], 100, 500*time.Millisecond) // warm up
	}
	for r := range rounds {
		for i := range ps {
			p := ps[(i+r)%len(ps)]
			n, c := saturate(t, sess[p.name], conc, dur)
			rps[p.name], cpus[p.name] = append(rps[p.name], n), append(cpus[p.name], c)
			t.Logf("round %d %-6s %6.0f calls/s, %v CPU per call", r+1, p.name, n, c)
		}
	}
	t.Logf("medians over %d rounds; %d callers over 4 sessions for %v each", rounds, conc, dur)
	t.Logf("%-6s %12s %14s", "path", "calls/s", "CPU per call")
	for _, p := range ps {
		t.Logf("%-6s %12.0f %14v", p.name, median(rps[p.name]), median(cpus[p.name]))
	}
	t.Logf("node/server: calls/s %.2f×, CPU per call %.2f×", median(rps["node"])/median(rps["server"]),
		float64(median(cpus["node"]))/float64(median(cpus["server"])))
}
