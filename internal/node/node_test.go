package node_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/node"
	"github.com/writ-dev/writ/internal/node/nodeattest"
	"github.com/writ-dev/writ/internal/servertest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// waitUntil polls cond (2 minutes at most: a loaded machine is slow, not
// broken); it asserts an outcome, never a speed.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not after 2 minutes", what)
}

// TestGrace: a node cut off from its server keeps serving within its
// grace period and fails closed after it. The node's clock is injected;
// nothing depends on how fast the machine is.
func TestGrace(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := servertest.Config(filepath.Join(dir, "srv"))
	in := servertest.Start(t, cfg, nil)
	if _, err := in.Client.CreateEntry(ctx, apitypes.Entry{SpiffeID: "spiffe://writ.local/agent/me",
		Selectors: []string{"unix:uid:" + strconv.Itoa(os.Getuid())}}); err != nil {
		t.Fatal(err)
	}
	tok, err := in.Client.CreateJoinToken(ctx, apitypes.JoinTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(in.Addr + "/bundle")
	if err != nil {
		t.Fatal(err)
	}
	bundle, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	bundleFile := filepath.Join(dir, "bundle.json")
	os.WriteFile(bundleFile, bundle, 0o600)

	clk := &clock{t: time.Now()}
	sock := filepath.Join(dir, "n1.sock")
	n, err := node.New(ctx, node.Config{TrustDomain: spiffeid.RequireTrustDomainFromString("writ.local"), DataDir: filepath.Join(dir, "n1"),
		Server: "https://" + in.Server.TLSAddr(), ServerBundle: bundleFile, Name: "n1", Prover: nodeattest.JoinTokenProver{Token: tok.Token},
		Grace: time.Minute, Socket: sock, SocketMode: 0o600, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	nctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(nctx) }()
	defer func() { stop(); <-done }()
	waitUntil(t, "the node applies the server's snapshot", func() bool { return n.Seq() > 0 })

	addr := workloadapi.WithAddr("unix://" + sock)
	fetch := func() error {
		c, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		_, err := workloadapi.FetchX509SVID(c, addr)
		return err
	}
	if err := fetch(); err != nil {
		t.Fatalf("SVID through the node: %v", err)
	}
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	in.Stop() // the server is gone
	clk.add(59 * time.Second)
	if n.FailingClosed() {
		t.Fatal("the node fails closed within its grace period")
	}
	if s, err := src.GetX509SVID(); err != nil || s.ID.String() != "spiffe://writ.local/agent/me" {
		t.Fatalf("within grace the workload lost its SVID: %v, %v", s, err)
	}

	clk.add(2 * time.Second) // past the grace period
	if !n.FailingClosed() {
		t.Fatal("the node still serves past its grace period")
	}
	waitUntil(t, "the Workload API refuses after the grace period", func() bool { return fetch() != nil })
}
