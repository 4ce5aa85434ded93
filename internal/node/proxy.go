package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/access"
	"github.com/writ-dev/writ/internal/attest"
	"github.com/writ-dev/writ/internal/mcp"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/proxy"
	"github.com/writ-dev/writ/internal/ratelimit"
	"github.com/writ-dev/writ/internal/resource"
)

// nodeProxy is the access proxy on a node: the same enforcement core
// (internal/access) as the server's, deciding with the policies and
// routing to the services the server pushed, against the node's own
// revocations, and recording every access through the node's spool.
//
// The same listener serves the MCP gateway (/mcp, /mcp/NAME; mcp.go).
// Approvals that policy asks for are filed on the server and decided
// there (remoteApprovals). What the node does not hold it does not do:
// it has no credential broker (upstream secrets stay sealed on the
// server; the credential a pushed Service or MCPServer names is fetched
// from the server's broker over the node's mTLS link and kept in memory
// for credentialTTL, see cachedCredentials); no task tokens (the callers
// it serves are attested processes and mTLS SVIDs); no TLS interception
// (no proxy CA key on the node).
type nodeProxy struct {
	creds    *cachedCredentials
	policy   *policy.Engine
	enforcer *access.Enforcer
	proxy    *proxy.Proxy
	gw       *mcp.Gateway
	ln       net.Listener
	srv      *http.Server
}

// bundleOf serves the node's current trust bundle to the enforcer.
type bundleOf struct{ n *Node }

func (b bundleOf) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	bd := b.n.bundle.Load()
	if bd == nil || td != b.n.c.TrustDomain {
		return nil, fmt.Errorf("no trust bundle for %s yet", td)
	}
	return bd.X509Bundle(), nil
}

// initProxy builds the node's proxy when Config.ProxyListen is set.
func (n *Node) initProxy(ctx context.Context, att *attest.Attestor) error {
	if n.c.ProxyListen == "" || n.c.ProxyListen == "off" {
		return nil
	}
	p := &nodeProxy{creds: newCachedCredentials(n), policy: policy.NewEngine(policy.Config{Now: n.c.Now, Limiter: ratelimit.New(), Node: n.name}, policy.Empty())}
	var err error
	p.enforcer, err = access.New(ctx, access.Config{
		Attestor:    att,
		Registry:    n.reg,
		Policy:      p.policy,
		Revocations: n.revoke,
		Flows:       n.db,
		Bundle:      bundleOf{n},
		Node:        n.name,
		Emitter:     nodeEmitter{n},
		Approvals:   remoteApprovals{n},
		Credentials: p.creds,
		Log:         n.c.Log.With("component", "proxy"),
		Now:         n.c.Now,
		Journal:     filepath.Join(n.c.DataDir, "proxy.journal"),
		// Decisions left in the journal by a crash are recorded again:
		// the server drops an event id it already has.
		AuditFailed: func() error {
			if n.failClosed() {
				return errors.New("the node is failing closed (server unreachable past the grace period, or evicted)")
			}
			return nil
		},
	})
	if err != nil {
		return fmt.Errorf("node proxy: %w", err)
	}
	if err := n.initMCP(p); err != nil {
		p.enforcer.Close()
		return err
	}
	if p.proxy, err = proxy.New(proxy.Config{Enforcer: p.enforcer, MCP: p.gw, Log: n.c.Log.With("component", "proxy")}); err != nil {
		p.enforcer.Close()
		return fmt.Errorf("node proxy: %w", err)
	}
	n.px = p
	if err := n.reloadProxy(ctx); err != nil {
		p.enforcer.Close()
		return err
	}
	if p.ln, err = net.Listen("tcp", n.c.ProxyListen); err != nil {
		p.enforcer.Close()
		return fmt.Errorf("listen on %s: %w (choose another address with proxy.listen, or \"off\")", n.c.ProxyListen, err)
	}
	p.srv = p.proxy.NewServer(proxy.ServerConfig{})
	return nil
}

// ProxyAddr is the address the node's proxy listens on ("" if none).
func (n *Node) ProxyAddr() string {
	if n.px == nil {
		return ""
	}
	return n.px.ln.Addr().String()
}

// reloadProxy compiles the pushed policies and services into the proxy.
// A stored policy that does not compile keeps the previous set (as on the
// server: a bad document cannot open access).
func (n *Node) reloadProxy(ctx context.Context) error {
	if n.px == nil {
		return nil
	}
	rs, err := n.Resources(ctx, resource.KindAccessPolicy)
	if err != nil {
		return err
	}
	stored := make([]policy.Stored, len(rs))
	for i, r := range rs {
		stored[i] = policy.Stored{Name: r.Name, Version: r.Version, Spec: r.Spec}
	}
	snap, err := policy.CompileStored(stored)
	if err != nil {
		return fmt.Errorf("compile the policies from the server: %w", err)
	}
	n.px.policy.Swap(snap)
	svcDocs, err := n.Resources(ctx, resource.KindService)
	if err != nil {
		return err
	}
	t, err := proxy.NewTable(proxy.CompileServices(svcDocs, func(name string, err error) {
		n.c.Log.Error("service left out of the node's proxy", "service", name, "error", err)
	}))
	if err != nil {
		return fmt.Errorf("route services: %w", err)
	}
	n.px.proxy.SetServices(t)
	n.px.creds.forget() // a Service may name another credential, or a rotated one
	if err := n.reloadMCP(ctx); err != nil {
		return fmt.Errorf("load MCP servers: %w", err)
	}
	n.c.Log.Info("policies, services and MCP servers loaded", "policies", len(stored), "services", t.Len(), "mcp_servers", len(n.px.gw.Status()))
	return nil
}

// runProxy serves the proxy and reloads it when the server pushes
// documents, until ctx ends.
func (n *Node) runProxy(ctx context.Context, errc chan<- error) {
	if n.px == nil {
		return
	}
	ch, stop := n.resourcesW.watch()
	defer stop()
	pins, stopPins := n.pinsW.watch()
	defer stopPins()
	go func() {
		if err := n.px.srv.Serve(n.px.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("node proxy: %w", err)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			if err := n.reloadProxy(ctx); err != nil {
				n.c.Log.Error("reload the node's proxy; keeping the previous policies and services", "error", err)
			}
		case <-pins:
			// A quarantine or approval decided on the server (or through
			// another node): the gateway's tools follow the pins.
			if err := n.px.gw.Recheck(ctx, ""); err != nil {
				n.c.Log.Error("re-decide MCP tools from the server's pins", "error", err)
			}
		}
	}
}

// stopProxy drains the proxy.
func (n *Node) stopProxy(ctx context.Context) {
	if n.px == nil {
		return
	}
	n.px.gw.Close()
	n.px.srv.Shutdown(ctx)
	n.px.proxy.Shutdown(ctx)
	n.px.enforcer.Close()
}
