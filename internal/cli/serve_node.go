package cli

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/config"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/node"
	"github.com/writ-dev/writ/internal/node/nodeattest"
)

// runNode runs `writ serve --role node`.
func runNode(ctx context.Context, g *globals, cfg config.Config, joinToken, proxyListen string, log *slog.Logger) error {
	td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
	if err != nil {
		return err
	}
	var prover nodeattest.Prover
	switch {
	case cfg.Node.Attest == nodeattest.TPMAttestor:
		t := cfg.Node.TPM
		prover = &nodeattest.TPMProver{Config: keys.TPMConfig{Device: t.Device, TCP: t.TCP, TCPPlatform: t.TCPPlatform}}
	case joinToken != "":
		prover = nodeattest.JoinTokenProver{Token: joinToken}
	case cfg.Node.Attest == nodeattest.JoinTokenAttestor:
		return fmt.Errorf("--attest join_token: pass --join-token (writ node token create on the server) or WRIT_JOIN_TOKEN")
	case cfg.Node.X509PoPCert != "":
		if prover, err = nodeattest.LoadX509PoPProver(cfg.Node.X509PoPCert, cfg.Node.X509PoPKey); err != nil {
			return err
		}
	}
	n, err := node.New(ctx, node.Config{
		TrustDomain:  td,
		DataDir:      cfg.DataDir,
		Server:       cfg.Node.Server,
		ServerBundle: cfg.Node.ServerBundle,
		Name:         cfg.NodeName,
		Prover:       prover,
		Grace:        cfg.Node.Grace,
		ProxyListen:  proxyListen,
		Socket:       cfg.Workload.Socket,
		SocketMode:   cfg.Workload.SocketFileMode(),
		Log:          log,
		// The runtime sensor: discovery.disabled and discovery.interval
		// as on a server.
		NoDiscovery:       cfg.Discovery.Disabled,
		DiscoveryInterval: cfg.Discovery.Interval,
	})
	if err != nil {
		return err
	}
	sock, _ := filepath.Abs(cfg.Workload.Socket)
	fmt.Fprintf(g.stdout, "writ node %s is running (server %s, data in %s)\n\n", n.Name(), cfg.Node.Server, cfg.DataDir)
	fmt.Fprintf(g.stdout, "  export SPIFFE_ENDPOINT_SOCKET=unix://%s\n", sock)
	if a := n.ProxyAddr(); a != "" {
		fmt.Fprintf(g.stdout, "  Access proxy: http://%s  (HTTP_PROXY, or /svc/NAME/; MCP gateway at /mcp/NAME; policies, services and MCP servers from the server)\n", a)
	}
	fmt.Fprintln(g.stdout)
	return n.Run(ctx)
}
