package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/writ-dev/writ/internal/account"
	"github.com/writ-dev/writ/internal/approval"
	"github.com/writ-dev/writ/internal/ca"
	"github.com/writ-dev/writ/internal/revoke"
	"github.com/writ-dev/writ/internal/task"
	"github.com/writ-dev/writ/internal/token"
)

// tokenPart is the kill switch, approvals, tasks and the OAuth token
// service, with the TLS listener where agents authenticate by X.509-SVID.
type tokenPart struct {
	revoke    *revoke.List
	approvals *approval.Service
	tasks     *task.Service
	bundle    *token.Bundle
	auth      *token.Authenticator
	verifier  *token.Verifier
	issuer    *token.Issuer
	tlsLn     net.Listener
	tlsSrv    *http.Server
	cert      serverCert
}

// initTokens builds the token service and its parts. It runs before the
// Workload API is built, which consults the kill switch.
func (s *Server) initTokens(ctx context.Context, closers *[]func()) error {
	tp := &s.tok
	var err error
	log := s.log.With("component", "token")
	tp.revoke, err = revoke.New(ctx, revoke.Config{Store: s.db, Emitter: s.emit, Log: log, Now: s.now})
	if err != nil {
		return err
	}
	tp.approvals, err = approval.New(ctx, approval.Config{Store: s.db, Emitter: s.emit, Log: s.log.With("component", "approval"), Now: s.now,
		Groups: account.GroupsIn(s.db)})
	if err != nil {
		return err
	}
	tp.tasks, err = task.New(ctx, task.Config{Store: s.db, Policy: s.policy, Approvals: tp.approvals, Revoke: tp.revoke,
		Emitter: s.emit, Log: s.log.With("component", "task"), Now: s.now})
	if err != nil {
		return err
	}
	tp.bundle = &token.Bundle{}
	tp.bundle.Set(s.authority.Bundle())
	issuer := s.cfg.Server.PublicURL
	tp.auth = &token.Authenticator{Bundle: tp.bundle, Audience: issuer, Labels: s.identityLabels, Revocations: tp.revoke, Now: s.now}
	tp.verifier, err = token.NewVerifier(token.VerifierConfig{Issuer: issuer, Keys: tp.bundle, Revocations: tp.revoke, Emitter: s.emit, Now: s.now})
	if err != nil {
		return err
	}
	tp.issuer, err = token.NewIssuer(token.IssuerConfig{Issuer: issuer, Signer: s.authority, Tasks: tp.tasks, Policy: s.policy,
		Auth: tp.auth, Verifier: tp.verifier, Revoker: tp.revoke, Emitter: s.emit, Log: log, Now: s.now, JWKS: tp.bundle.JWKS})
	if err != nil {
		return err
	}
	if s.cfg.Server.TLSListen == "off" {
		return nil
	}
	tp.cert = serverCert{authority: s.authority, id: spiffeid.RequireFromPath(s.authority.TrustDomain(), "/writ/server"), now: s.now}
	if _, err := tp.cert.get(); err != nil {
		return fmt.Errorf("issue the server's TLS certificate: %w", err)
	}
	tp.tlsLn, err = net.Listen("tcp", s.cfg.Server.TLSListen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (choose another address with server.tls_listen, or set it to off)", s.cfg.Server.TLSListen, err)
	}
	*closers = append(*closers, func() { tp.tlsLn.Close() })
	return nil
}

// identityLabels returns the labels of the registration entry for a SPIFFE
// ID (merged when several entries name it), from the registry's index, so
// that authenticating an agent does not scan the registry.
func (s *Server) identityLabels(spiffeID string) map[string]string {
	return s.registry.Labels(spiffeID)
}

// Revocations returns the kill switch, for in-process enforcement points.
func (s *Server) Revocations() *revoke.List { return s.tok.revoke }

// TokenVerifier returns the access token verifier bound to this server's
// keys and kill switch, for in-process resource servers.
func (s *Server) TokenVerifier() *token.Verifier { return s.tok.verifier }

// Tasks returns the task service.
func (s *Server) Tasks() *task.Service { return s.tok.tasks }

// Approvals returns the approval service.
func (s *Server) Approvals() *approval.Service { return s.tok.approvals }

// TLSAddr is the address of the mTLS listener ("" when it is off).
func (s *Server) TLSAddr() string {
	if s.tok.tlsLn == nil {
		return ""
	}
	return s.tok.tlsLn.Addr().String()
}

// startTokens runs the background loops (bundle refresh, revocation
// pruning, approval and task expiry) and the TLS listener. The returned
// function stops the listener.
func (s *Server) startTokens(ctx context.Context, errc chan<- error) func(context.Context) {
	tp := &s.tok
	report := func(what string, err error) {
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, http.ErrServerClosed) {
			select {
			case errc <- fmt.Errorf("%s: %w", what, err):
			default:
				s.log.Error(what, "error", err)
			}
		}
	}
	go func() {
		ch, cancel := s.authority.Subscribe()
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				tp.bundle.Set(s.authority.Bundle())
			}
		}
	}()
	go func() { report("revocation pruning", tp.revoke.Run(ctx)) }()
	go func() { report("approval expiry", tp.approvals.Run(ctx)) }()
	go func() { report("task expiry", tp.tasks.Run(ctx)) }()
	if tp.tlsLn == nil {
		return func(context.Context) {}
	}
	tp.tlsSrv = &http.Server{
		Handler:           s.httpSrv.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return tp.cert.get() },
			// Client certificates are optional (JWT-SVID bearers use this
			// listener too); one that is sent must be a valid X.509-SVID.
			ClientAuth: tls.RequestClientCert,
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 {
					return nil
				}
				_, _, err := x509svid.ParseAndVerify(raw, tp.bundle, x509svid.WithTime(s.now()))
				return err
			},
		},
	}
	go func() { report("HTTPS server", tp.tlsSrv.ServeTLS(tp.tlsLn, "", "")) }()
	return func(ctx context.Context) {
		if err := tp.tlsSrv.Shutdown(ctx); err != nil {
			s.log.Warn("HTTPS shutdown", "error", err)
		}
	}
}

// serverCert is writ's own X.509-SVID for its TLS listener, renewed at
// half life.
type serverCert struct {
	authority *ca.Authority
	id        spiffeid.ID
	now       func() time.Time

	mu    sync.Mutex
	cert  *tls.Certificate
	renew time.Time
}

func (c *serverCert) get() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.cert != nil && now.Before(c.renew) {
		return c.cert, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	chain, err := c.authority.SignX509SVID(context.Background(), ca.X509SVIDParams{ID: c.id, PublicKey: &key.PublicKey})
	if err != nil {
		if c.cert != nil && now.Before(c.cert.Leaf.NotAfter) {
			return c.cert, nil // keep serving the old one until it expires
		}
		return nil, err
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, crt := range chain {
		tc.Certificate = append(tc.Certificate, crt.Raw)
	}
	c.cert = tc
	c.renew = chain[0].NotBefore.Add(chain[0].NotAfter.Sub(chain[0].NotBefore) / 2)
	return tc, nil
}

// agentAuth authenticates agents on the tasks API.
type agentAuth struct{ s *Server }

func (a agentAuth) Request(r *http.Request) (token.Caller, error) { return a.s.tok.auth.Request(r) }
func (a agentAuth) Labels(spiffeID string) map[string]string      { return a.s.identityLabels(spiffeID) }

// closeTokens releases the TLS listener of a server that will not Run.
func (s *Server) closeTokens() {
	if s.tok.tlsLn != nil {
		s.tok.tlsLn.Close()
	}
}
