package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/access"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/broker"
	"github.com/writ-dev/writ/internal/ca"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/proxy"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/token"
)

// proxyPart is the credential broker and the access proxy with its
// listeners (plain and, when configured, TLS for mTLS callers).
type proxyPart struct {
	broker *broker.Broker
	ca     *proxy.CA
	// enforcer decides and records every access; proxy is its HTTP front
	// end.
	enforcer *access.Enforcer
	proxy    *proxy.Proxy
	ln       net.Listener
	tlsLn    net.Listener
	srv      *http.Server
	tlsSrv   *http.Server
	reload   sync.Mutex
}

// bundleSource serves the authority's current X.509 bundle, which changes
// on rotation.
type bundleSource struct{ a *ca.Authority }

func (b bundleSource) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return b.a.X509Bundle().GetX509BundleForTrustDomain(td)
}

// initProxy builds the broker, loads (or creates) the proxy CA, builds the
// proxy from the stored Services and opens its listeners. Listeners are
// added to closers so a later failure in New releases them.
func (s *Server) initProxy(ctx context.Context, sealer *keys.Sealer, closers *[]func()) error {
	var err error
	px := &s.px
	px.broker, err = broker.New(broker.Config{Store: s.db, Sealer: sealer, Emitter: s.emit, Log: s.log.With("component", "broker"), Now: s.now})
	if err != nil {
		return err
	}
	px.ca, err = proxy.LoadCA(ctx, s.db, s.keys, s.now)
	if err != nil {
		return err
	}
	cfg := s.cfg.Proxy
	px.enforcer, err = access.New(ctx, access.Config{
		Attestor:       s.attestor,
		Registry:       s.registry,
		Policy:         s.policy,
		Credentials:    px.broker,
		Tasks:          s.tok.tasks,
		Revocations:    s.tok.revoke,
		Tokens:         tokenVerifier{s.tok.verifier},
		Approvals:      s.tok.approvals,
		Flows:          s.db,
		Bundle:         bundleSource{s.authority},
		Signer:         s.authority,
		Issuer:         s.cfg.Server.PublicURL,
		Node:           s.cfg.NodeName,
		Emitter:        s.emit,
		Log:            s.log.With("component", "proxy"),
		Now:            s.now,
		ApprovalWait:   cfg.ApprovalWait,
		LogQueryValues: cfg.LogQueryValues,
		// Validated by config: written or synced.
		DecisionDurability: map[string]audit.Durability{"written": audit.Written, "synced": audit.Synced}[cfg.DecisionDurability],
		Journal:            filepath.Join(s.cfg.DataDir, "proxy.journal"),
		Recorded: func(ctx context.Context, id string) (bool, error) {
			_, err := s.auditLog.Backend().RecordByID(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		},
		AuditFailed: s.auditLog.Failed,
	})
	if err != nil {
		return err
	}
	*closers = append(*closers, func() { px.enforcer.Close() })
	if err := s.initMCP(closers); err != nil {
		return err
	}
	px.proxy, err = proxy.New(proxy.Config{
		MCP:            s.mcp.gw,
		Enforcer:       px.enforcer,
		CA:             px.ca,
		Log:            s.log.With("component", "proxy"),
		MaxRequestBody: cfg.MaxBodyBytes,
	})
	if err != nil {
		return err
	}
	if err := s.initDBCreds(sealer, closers); err != nil {
		return err
	}
	if err := s.reloadServices(ctx); err != nil {
		return err
	}
	if err := s.reloadMCP(ctx); err != nil {
		return err
	}
	sc := proxy.ServerConfig{ReadHeaderTimeout: cfg.ReadHeaderTimeout, ReadTimeout: cfg.ReadTimeout,
		WriteTimeout: cfg.WriteTimeout, IdleTimeout: cfg.IdleTimeout, MaxHeaderBytes: cfg.MaxHeaderBytes}
	if cfg.Listen != "" && cfg.Listen != "off" {
		if px.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("listen on %s: %w (choose another address with proxy.listen, or \"off\")", cfg.Listen, err)
		}
		*closers = append(*closers, func() { px.ln.Close() })
		px.srv = px.proxy.NewServer(sc)
	}
	if cfg.TLSListen != "" {
		host, _, _ := net.SplitHostPort(cfg.TLSListen)
		tc, err := px.proxy.TLSConfig(host)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", cfg.TLSListen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w (choose another address with proxy.tls_listen)", cfg.TLSListen, err)
		}
		*closers = append(*closers, func() { ln.Close() })
		px.tlsSrv = px.proxy.NewServer(sc)
		px.tlsSrv.TLSConfig = tc
		px.tlsLn = ln
	}
	return nil
}

// reloadServices compiles the stored Service documents into a new routing
// table. A stored Service that no longer compiles (its tls.ca_file went
// away) is left out — unreachable, so failing closed — and logged; a table
// that does not build keeps the previous one.
func (s *Server) reloadServices(ctx context.Context) error {
	s.px.reload.Lock()
	defer s.px.reload.Unlock()
	rs, err := s.db.ListResources(ctx, resource.KindService)
	if err != nil {
		return fmt.Errorf("load services: %w", err)
	}
	svcs := proxy.CompileServices(rs, func(name string, err error) {
		s.log.ErrorContext(ctx, "service left out of the proxy", "service", name, "error", err)
	})
	t, err := proxy.NewTable(svcs)
	if err != nil {
		return fmt.Errorf("route services: %w", err)
	}
	s.px.proxy.SetServices(t)
	s.setDBServices(svcs)
	s.log.InfoContext(ctx, "services loaded", "services", t.Len())
	return nil
}

// checkServiceSet refuses an apply that would leave two Services claiming
// the same host or path prefix, before anything is stored.
func (s *Server) checkServiceSet(ctx context.Context, docs []resource.Document) error {
	rs, err := s.db.ListResources(ctx, resource.KindService)
	if err != nil {
		return fmt.Errorf("load services: %w", err)
	}
	replaced := map[string]bool{}
	var svcs []*proxy.Service
	for _, d := range docs {
		spec, err := proxy.StoredSpec(d)
		if err != nil {
			return err
		}
		svc, err := proxy.CompileService(store.Resource{Kind: d.Kind, Name: d.Name, Spec: spec})
		if err != nil {
			return err
		}
		replaced[d.Name] = true
		svcs = append(svcs, svc)
	}
	for _, r := range rs {
		if replaced[r.Name] {
			continue
		}
		if svc, err := proxy.CompileService(r); err == nil {
			svcs = append(svcs, svc)
		}
	}
	_, err = proxy.NewTable(svcs)
	return err
}

// startProxy serves the proxy listeners; the returned function shuts them
// down, draining in-flight requests and tunnels until ctx ends.
func (s *Server) startProxy(errc chan<- error) func(ctx context.Context) {
	px := &s.px
	var wg sync.WaitGroup
	serve := func(name string, srv *http.Server, ln net.Listener, tls bool) {
		if srv == nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if tls {
				err = srv.ServeTLS(ln, "", "")
			} else {
				err = srv.Serve(ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				select {
				case errc <- fmt.Errorf("%s: %w", name, err):
				default:
				}
			}
		}()
	}
	serve("proxy", px.srv, px.ln, false)
	serve("proxy TLS", px.tlsSrv, px.tlsLn, true)
	return func(ctx context.Context) {
		// The MCP gateway's agent sessions hold SSE streams open: end
		// them (and the upstreams) so that the listeners can drain.
		s.mcp.gw.Close()
		for _, srv := range []*http.Server{px.srv, px.tlsSrv} {
			if srv != nil {
				if err := srv.Shutdown(ctx); err != nil {
					s.log.Warn("proxy shutdown", "error", err)
				}
			}
		}
		if err := px.proxy.Shutdown(ctx); err != nil {
			s.log.Warn("proxy tunnels shutdown", "error", err)
		}
		wg.Wait()
		if err := px.enforcer.Close(); err != nil {
			s.log.Warn("proxy close", "error", err)
		}
	}
}

// closeProxy releases the listeners of a server that will not Run.
func (s *Server) closeProxy() {
	for _, ln := range []net.Listener{s.px.ln, s.px.tlsLn} {
		if ln != nil {
			ln.Close()
		}
	}
	s.mcp.gw.Close()
	s.px.enforcer.Close()
}

// ProxyAddr is the proxy's plain listener address ("" when off).
func (s *Server) ProxyAddr() string {
	if s.px.ln == nil {
		return ""
	}
	return s.px.ln.Addr().String()
}

// ProxyTLSAddr is the proxy's TLS listener address ("" when off).
func (s *Server) ProxyTLSAddr() string {
	if s.px.tlsLn == nil {
		return ""
	}
	return s.px.tlsLn.Addr().String()
}

// Broker returns the credential broker.
func (s *Server) Broker() *broker.Broker { return s.px.broker }

// tokenVerifier verifies the writ access token of a proxied request for a
// Service's audience, with its DPoP proof or mTLS binding. A credential
// that is not a writ token (an upstream key the agent still carries, a JWT
// from another issuer) is reported as such, so the proxy strips it and
// identifies the caller another way; it never grants anything.
type tokenVerifier struct{ v *token.Verifier }

func (t tokenVerifier) VerifyToken(ctx context.Context, p access.TokenProof, audience string) (access.TokenClaims, error) {
	raw, ok := strings.CutPrefix(p.Authorization, "DPoP ")
	if !ok {
		raw, ok = strings.CutPrefix(p.Authorization, "Bearer ")
	}
	if !ok || strings.Count(raw, ".") != 2 {
		return access.TokenClaims{}, access.ErrNotWritToken
	}
	o := token.VerifyOptions{Audience: audience, HTTPMethod: p.Method, HTTPURL: p.URL, DPoPProof: p.DPoP, PeerCert: p.PeerCert}
	c, err := t.v.Verify(ctx, raw, o)
	switch {
	case errors.Is(err, token.ErrMalformed), errors.Is(err, token.ErrType), errors.Is(err, token.ErrSignature), errors.Is(err, token.ErrIssuer):
		return access.TokenClaims{}, fmt.Errorf("%w: %v", access.ErrNotWritToken, err)
	case err != nil:
		return access.TokenClaims{}, err
	}
	return access.TokenClaims{ID: c.ID, SpiffeID: c.Subject, Instance: c.Instance, Task: c.Task, Scopes: c.Scopes()}, nil
}
