// Package server composes writ's control plane and, in the default
// all-in-one role, the node: it opens the store, unseals the keys, starts
// the signing authorities, the registry, the attestor and the SPIFFE
// Workload API, and serves the HTTP surface (health, metrics, the SPIFFE
// bundle endpoint and the authenticated admin API used by the CLI).
//
// [New] builds everything and fails before anything listens if any part
// cannot start; [Server.Run] serves until its context ends and then shuts
// down in order, so the store is never left half-written.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/account"
	"github.com/writ-dev/writ/internal/api"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/attest"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/ca"
	"github.com/writ-dev/writ/internal/config"
	"github.com/writ-dev/writ/internal/graph"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/registry"
	"github.com/writ-dev/writ/internal/store"
	"github.com/writ-dev/writ/internal/store/postgres"
	"github.com/writ-dev/writ/internal/web"
	"github.com/writ-dev/writ/internal/workload"
)

// Options are the parts of a server that are not configuration.
type Options struct {
	Log *slog.Logger
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// KEK is the base64 key-encryption key from the environment, if any.
	KEK string
	// Argon2 is the cost of new console password hashes; zero is the
	// recommended default. Tests lower it; it is not configuration.
	Argon2 account.Params
}

// Server is a running control plane (and node, in the all-in-one role).
type Server struct {
	cfg  config.Config
	log  *slog.Logger
	lock *dirLock // the data directory's, held until the store is closed
	now  func() time.Time
	db   backingStore
	// holder names this server in the store's leases.
	holder string
	emit   audit.Emitter
	// auditLog is the durable, tamper-evident event log; emit is it.
	auditLog *auditlog.Log

	// keys are the key providers (devices stay open until shutdown).
	keys      *keys.Set
	authority *ca.Authority
	attestor  *attest.Attestor
	registry  *registry.Registry
	policy    *policy.Engine
	policyMu  sync.Mutex // serialises installing policy snapshots
	promoteMu sync.Mutex // serialises `writ policy promote`
	workload  *workload.Server
	metrics   *prometheus.Registry
	admin     *api.AdminAuth
	accounts  *account.Service
	web       *web.Console
	api       *api.API
	px        proxyPart
	dbc       dbcredsPart
	mcp       mcpPart
	tok       tokenPart
	disc      discoverPart
	nodes     nodesPart
	lineage   *graph.Lineage
	alerts    alertsPart

	httpLn     net.Listener
	workloadLn net.Listener
	httpSrv    *http.Server

	// AdminTokenFile is where the admin credential was written.
	AdminTokenFile string
	// NewAdminToken is set when this start generated the credential.
	NewAdminToken bool
}

// New builds a server from a validated configuration. It listens on the
// HTTP address and the Workload API socket but serves nothing until Run.
func New(ctx context.Context, cfg config.Config, opts Options) (_ *Server, err error) {
	if cfg.Role != "all" && cfg.Role != "server" {
		return nil, fmt.Errorf("role %q: server.New runs the roles all and server; a node is started by internal/node", cfg.Role)
	}
	if cfg.Role == "server" {
		// The control plane only: workloads are served by the nodes
		// (writ serve --role node on each host), so this host runs no
		// Workload API socket, no access proxy and no discovery sensor.
		// The admin API, the console and the mTLS listener (token
		// service and the node API) stay.
		cfg.Proxy.Listen, cfg.Proxy.TLSListen, cfg.Proxy.PostgresListen = "off", "", "off"
		cfg.Discovery.Disabled = true
	}
	s := &Server{cfg: cfg, log: opts.Log, now: opts.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	var closers []func()
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()

	if err := prepareDataDir(cfg.DataDir, s.log); err != nil {
		return nil, err
	}
	// Before the store opens: a second server on the same data directory
	// would break the running one's audit log and socket.
	if s.lock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	closers = append(closers, s.lock.release)
	td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("trust_domain %q: %w", cfg.TrustDomain, err)
	}
	keySet, kek, err := s.openKeys(cfg, opts.KEK)
	if err != nil {
		return nil, err
	}
	s.keys = keySet
	closers = append(closers, func() { keySet.Close() })
	sealer := keySet.Software.Sealer
	s.db, err = openStore(ctx, cfg.Store, s.now)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { s.db.Close() })
	s.holder = leaseHolder(cfg.NodeName)
	// Until the CA and the admin credential exist: another server
	// starting on the same (PostgreSQL) store waits meanwhile.
	releaseBootstrap, err := holdLease(ctx, s.db, bootstrapLease, s.holder, bootstrapLeaseTTL, s.now, s.log)
	if err != nil {
		return nil, err
	}
	bootstrapped := false
	defer func() {
		if !bootstrapped {
			releaseBootstrap()
		}
	}()
	var caKeys store.Keys = s.db
	if n, ok := s.db.(notifier); ok {
		caKeys = announcingKeys{Keys: s.db, n: n, log: s.log}
	}

	witnesses, err := auditWitnesses(cfg.Audit.Witnesses)
	if err != nil {
		return nil, err
	}
	deliveries := witnessDeliveries()
	s.auditLog, err = auditlog.Open(ctx, auditlog.Config{
		Backend:            s.db.AuditBackend(),
		Keys:               s.db,
		Sealer:             sealer,
		Origin:             td.Name() + "/audit",
		Now:                s.now,
		Log:                s.log.With("component", "audit"),
		CheckpointEvery:    cfg.Audit.CheckpointEvery,
		CheckpointInterval: cfg.Audit.CheckpointInterval,
		Published:          publishedCheckpointFile(cfg.DataDir),
		Witnesses:          witnesses,
		WitnessDone: func(name string, err error) {
			result := "ok"
			if err != nil {
				result = "error"
			}
			deliveries.WithLabelValues(name, result).Inc()
		},
	})
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	closers = append(closers, func() { s.auditLog.Close(context.Background()) })
	// Events go to the durable log; with log.level debug they also appear
	// in the process log.
	s.emit = auditlog.Tee{Durable: s.auditLog, Also: audit.SlogEmitter{Log: s.log, Level: slog.LevelDebug}}

	s.metrics = prometheus.NewRegistry()
	s.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.metrics.MustRegister(
		deliveries,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "writ_audit_events", Help: "Events in the audit log that are on disk."},
			func() float64 { return float64(s.auditLog.Size()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "writ_audit_index_lag_events", Help: "Audit events not yet in the search index (searches read them from the log)."},
			func() float64 { return float64(max(s.auditLog.Size()-s.db.AuditIndexed(s.auditLog.Size()), 0)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "writ_api_streams", Help: "Long-lived admin API answers in progress (audit tails, waits for an approval)."},
			func() float64 {
				if s.api == nil {
					return 0
				}
				return float64(s.api.OpenStreams())
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "writ_audit_failed", Help: "1 if the audit log refuses events after a failed sync (restart writ), else 0."},
			func() float64 {
				if s.auditLog.Failed() != nil {
					return 1
				}
				return 0
			}),
	)

	s.authority, err = ca.New(ctx, ca.Config{
		TrustDomain:      td,
		Keys:             caKeys,
		Leases:           s.db,
		LeaseHolder:      s.holder,
		Resources:        s.db,
		Providers:        keySet,
		Emitter:          s.emit,
		Log:              s.log.With("component", "ca"),
		Now:              s.now,
		CATTL:            cfg.CA.TTL,
		X509SVIDTTL:      cfg.CA.X509SVIDTTL,
		JWTSVIDTTL:       cfg.CA.JWTSVIDTTL,
		JWTKeyTTL:        cfg.CA.JWTKeyTTL,
		UpstreamCertFile: cfg.CA.UpstreamCert,
		UpstreamKeyFile:  cfg.CA.UpstreamKey,
	})
	if err != nil {
		return nil, fmt.Errorf("start certificate authority: %w", err)
	}
	s.attestor, err = attest.New(attest.Config{Instances: s.db, Log: s.log.With("component", "attest"), Now: s.now})
	if err != nil {
		return nil, fmt.Errorf("start attestor: %w", err)
	}
	closers = append(closers, func() { s.attestor.Close() })
	if err := s.attestor.FollowProcessEvents(); err != nil {
		s.log.Info("every Workload API call will scan /proc for the holders of its socket (slower), and proxy connections are not re-checked after a fork", "error", err)
	}
	if err := s.attestor.SocketIndex(); err != nil {
		s.log.Info("the first proxy request on each new connection will scan every process's open files for its process (slower)", "error", err)
	}
	if err := attest.ProbeUnixDiag(); err != nil {
		// Fail closed, loudly: the check that a Workload API socket was
		// not handed to another process cannot be made.
		s.log.Error("the Workload API will refuse every call: it cannot check who holds a connection's socket", "error", err)
	}
	s.registry, err = registry.New(ctx, registry.Config{TrustDomain: td, Store: s.db, Emitter: s.emit, Log: s.log})
	if err != nil {
		return nil, err
	}
	if err := s.initNodes(ctx, td); err != nil {
		return nil, err
	}
	if err := s.initPolicy(ctx); err != nil {
		return nil, err
	}
	// Bound before the token service, whose issuer is the public URL:
	// by default the bound address (see config.Server.PublicURL).
	s.httpLn, err = net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (is another writ running? choose another address with server.listen)", cfg.Server.Listen, err)
	}
	closers = append(closers, func() { s.httpLn.Close() })
	if s.cfg.Server.PublicURL == "" {
		s.cfg.Server.PublicURL = "http://" + s.httpLn.Addr().String()
	}
	if err := s.initTokens(ctx, &closers); err != nil {
		return nil, err
	}
	if err := s.initProxy(ctx, sealer, &closers); err != nil {
		return nil, err
	}
	if err := s.initDiscover(ctx, kek); err != nil {
		return nil, fmt.Errorf("start runtime discovery: %w", err)
	}
	if err := s.initNodeAPI(ctx, td); err != nil {
		return nil, fmt.Errorf("start the node API: %w", err)
	}
	s.workload, err = workload.New(workload.Config{
		TrustDomain:     td,
		Attestor:        s.attestor,
		Authority:       s.authority,
		Registry:        s.registry,
		Emitter:         s.emit,
		Log:             s.log.With("component", "workload"),
		Metrics:         workload.NewMetrics(s.metrics),
		Now:             s.now,
		Revoked:         s.tok.revoke.InstanceRevoked,
		RevocationWatch: s.tok.revoke.Watch,
	})
	if err != nil {
		return nil, err
	}
	s.initLineage()
	if err := s.initAlerts(); err != nil {
		return nil, err
	}
	s.admin, err = api.NewAdminAuth(ctx, s.db, s.emit, s.log)
	if err != nil {
		return nil, err
	}
	s.AdminTokenFile = filepath.Join(cfg.DataDir, "admin.token")
	s.NewAdminToken, err = s.admin.Ensure(ctx, s.AdminTokenFile)
	if err != nil {
		return nil, err
	}
	bootstrapped = true
	releaseBootstrap()
	s.accounts, err = account.New(account.Config{Users: s.db, Sessions: s.db, Emitter: s.emit,
		Log: s.log.With("component", "account"), Now: s.now, Argon2: opts.Argon2})
	if err != nil {
		return nil, err
	}
	s.api, err = api.New(api.Config{
		Log:         s.log.With("component", "api"),
		Now:         s.now,
		Admin:       s.admin,
		Agents:      agentAuth{s},
		Entries:     s.registry,
		Resources:   resources{s},
		Instances:   s.db,
		Tasks:       s.tok.tasks,
		Approvals:   s.tok.approvals,
		Revocations: s.tok.revoke,
		Targets:     revokeTargets{s},
		Credentials: s.px.broker,
		ProxyCA:     s.px.ca.PEM,
		Audit:       s.auditLog,
		Processes:   processes{s},
		Discovery:   s,
		Inventory:   s.db,
		MCP:         mcpAdmin{s},
		Nodes:       s.nodes.registry,
		Policies:    policies{s},
		Lineage:     s.lineage,
		Alerts:      alertsService{s},
		Posture:     postureService{s},
		Users:       s.accounts,
		Scans:       scans{s},
	})
	if err != nil {
		return nil, err
	}

	oidcLogin, err := s.consoleOIDC(ctx)
	if err != nil {
		return nil, err
	}
	s.web, err = web.New(web.Config{
		OIDC:      oidcLogin,
		Log:       s.log.With("component", "web"),
		Now:       s.now,
		Accounts:  s.accounts,
		Approvals: s.tok.approvals,
		Audit:     s.api,
		Resources: resources{s},
		Tasks:     s.tok.tasks,
		Inventory: func(ctx context.Context) (apitypes.Inventory, error) {
			return s.api.Inventory(ctx, api.InventoryQuery{})
		},
		MCP:      mcpAdmin{s},
		Lineage:  s.lineage,
		Alerts:   alertsService{s},
		Posture:  postureService{s},
		Policies: policies{s},
		History:  s.db.ResourceHistory,
	})
	if err != nil {
		return nil, err
	}

	if cfg.Role != "server" {
		s.workloadLn, err = workload.Listen(cfg.Workload.Socket, cfg.Workload.SocketFileMode())
		if err != nil {
			return nil, err
		}
		s.warnUnreachableSocket()
		closers = append(closers, func() { s.workloadLn.Close() })
	}
	s.httpSrv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// StoreDescription names the store (driver and file or database, never a
// password).
func (s *Server) StoreDescription() string { return s.db.Describe() }

// consoleOIDC sets up console login through the configured OpenID
// Connect provider; nil when console.oidc.issuer is unset.
func (s *Server) consoleOIDC(ctx context.Context) (*web.OIDC, error) {
	o := s.cfg.Console.OIDC
	if o.Issuer == "" {
		return nil, nil
	}
	secret := os.Getenv("WRIT_OIDC_CLIENT_SECRET")
	if secret == "" && o.ClientSecretFile != "" {
		b, err := os.ReadFile(o.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("console.oidc.client_secret_file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	redirect := o.RedirectURL
	if redirect == "" {
		redirect = strings.TrimRight(s.cfg.Server.PublicURL, "/") + "/ui/oidc/callback"
	}
	return web.NewOIDC(ctx, web.OIDCConfig{Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: secret, RedirectURL: redirect,
		UsernameClaim: o.UsernameClaim, RoleClaim: o.RoleClaim, GroupsClaim: o.GroupsClaim,
		Roles: map[string][]string{store.RoleAdmin: o.Roles.Admin, store.RoleApprover: o.Roles.Approver, store.RoleViewer: o.Roles.Viewer}})
}

// AuditLog is the server's audit log (benchmarks fill it).
func (s *Server) AuditLog() *auditlog.Log { return s.auditLog }

// HTTPAddr is the address the HTTP listener is bound to.
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

// PublicURL returns the issuer URL of tokens and discovery documents
// (server.public_url, or the bound admin address by default).
func (s *Server) PublicURL() string { return s.cfg.Server.PublicURL }

// SocketPath is the Workload API socket path ("" for role server, which
// serves no workloads itself).
func (s *Server) SocketPath() string {
	if s.workloadLn == nil {
		return ""
	}
	return s.cfg.Workload.Socket
}

// Role is the role this server runs: all or server.
func (s *Server) Role() string { return s.cfg.Role }

// Close releases what New acquired, for a server that will not Run.
func (s *Server) Close() error {
	s.httpLn.Close()
	if s.workloadLn != nil {
		s.workloadLn.Close()
	}
	s.closeProxy()
	s.closeDBCreds()
	s.closeTokens()
	s.attestor.Close()
	if s.workloadLn != nil {
		os.Remove(s.cfg.Workload.Socket)
	}
	err := errors.Join(s.auditLog.Close(context.Background()), s.db.Close(), s.keys.Close())
	s.lock.release()
	return err
}

// Run serves until ctx ends, then shuts down gracefully: stop accepting,
// drain HTTP requests and Workload API calls (up to 10s), stop the
// authority's rotation loop and close the store.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 8)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		if err := s.httpSrv.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("HTTP server: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		if s.workloadLn == nil {
			return // role server: no Workload API here
		}
		if err := s.workload.Serve(s.workloadLn); err != nil {
			errc <- fmt.Errorf("workload API: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := s.authority.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			errc <- fmt.Errorf("certificate authority: %w", err)
		}
	}()
	if n, ok := s.db.(notifier); ok {
		// Another server wrote signing keys: load them.
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.Listen(ctx, keysChannel, func(string) {
				if err := s.authority.Reload(ctx); err != nil && ctx.Err() == nil {
					s.log.Error("reload signing keys after another server's change", "error", err)
				}
			})
		}()
	}
	if n, ok := s.db.(notifier); ok && s.nodes.hub != nil {
		// Another server appended to the change feed: stream it to
		// this server's nodes.
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.Listen(ctx, postgres.ChangesChannel, func(string) {
				if err := s.nodes.hub.Poke(ctx); err != nil && ctx.Err() == nil {
					s.log.Warn("read the change feed after another server's change", "error", err)
				}
			})
		}()
	}
	stopProxy := s.startProxy(errc)
	stopDBCreds := s.startDBCreds(ctx, errc)
	stopTokens := s.startTokens(ctx, errc)
	stopDiscovery := s.startDiscovery(ctx)
	s.startNodes(ctx, errc)
	stopAlerts := s.startAlerts(ctx)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		s.log.Error("stopping after failure", "error", runErr)
	}
	cancel()
	// Streams (audit tails, waits for an approval) would hold the drain
	// below for its whole timeout: end them first.
	s.api.EndStreams()
	s.nodes.api.End()
	s.web.Close()
	shutdownCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if err := s.httpSrv.Shutdown(shutdownCtx); err != nil {
		s.log.Warn("HTTP shutdown", "error", err)
	}
	stopProxy(shutdownCtx)
	stopDBCreds()
	stopTokens(shutdownCtx)
	stopDiscovery()
	stopAlerts()
	s.workload.Stop(shutdownCtx)
	wg.Wait()
	s.attestor.Close()
	if s.workloadLn != nil {
		os.Remove(s.cfg.Workload.Socket)
	}
	// Last: every component has stopped emitting; sign the final
	// checkpoint, with time of its own whatever the drain used.
	closeCtx, stopClose := context.WithTimeout(context.Background(), 10*time.Second)
	defer stopClose()
	if err := s.auditLog.Close(closeCtx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("close audit log: %w", err))
	}
	if err := s.db.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("close store: %w", err))
	}
	if err := s.keys.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("close key devices: %w", err))
	}
	s.lock.release()
	return runErr
}
