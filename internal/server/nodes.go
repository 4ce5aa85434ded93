package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/node/nodeattest"
	"github.com/writ-dev/writ/internal/node/nodeserver"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/store"
)

// nodesPart is the server side of scale-out: the registry of nodes and
// join tokens, the change feed's publisher and hub, and the node API
// (served on the TLS listener).
type nodesPart struct {
	registry  *nodeserver.Registry
	hub       *nodeserver.Hub
	publisher *nodeserver.Publisher
	api       *nodeserver.API
}

// initNodes starts the registry of scale-out nodes and join tokens.
func (s *Server) initNodes(ctx context.Context, td spiffeid.TrustDomain) error {
	var err error
	np := &s.nodes
	if np.hub, err = nodeserver.NewHub(ctx, s.db); err != nil {
		return fmt.Errorf("change feed: %w", err)
	}
	np.registry, err = nodeserver.NewRegistry(ctx, nodeserver.RegistryConfig{TrustDomain: td, Store: s.db, Emitter: s.emit, Now: s.now,
		Changed: func(ctx context.Context) {
			if err := np.hub.Poke(ctx); err != nil {
				s.log.Error("read the change feed", "error", err)
			}
		}})
	return err
}

// initNodeAPI builds the publisher and the node API once the services
// they serve exist.
func (s *Server) initNodeAPI(ctx context.Context, td spiffeid.TrustDomain) error {
	np := &s.nodes
	verifiers := []nodeattest.Verifier{nodeattest.JoinTokens{Store: s.db, Now: s.now}}
	if s.cfg.Node.X509PoPCA != "" {
		x, err := nodeattest.LoadX509PoP(s.cfg.Node.X509PoPCA)
		if err != nil {
			return fmt.Errorf("node.x509pop_ca: %w", err)
		}
		x.Now = s.now
		verifiers = append(verifiers, x)
	}
	if ta := s.cfg.Node.TPMAttestation; ta.Enabled() {
		t, err := nodeattest.LoadTPMVerifier(ta.EKHashes, ta.EKCA, ta.PCRs)
		if err != nil {
			return fmt.Errorf("node.tpm_attestation: %w", err)
		}
		t.Now = s.now
		verifiers = append(verifiers, t)
	}
	vs, err := nodeattest.NewVerifiers(verifiers...)
	if err != nil {
		return err
	}
	np.publisher = &nodeserver.Publisher{Store: s.db, Hub: np.hub, Entries: s.registry, Revocations: s.tok.revoke,
		Bundles: s.authority, Resources: s.followedResources, Log: s.log.With("component", "nodes"),
		Pins: func(ctx context.Context) ([]store.Pin, error) { return s.db.ListPins(ctx, "") }}
	if err := np.publisher.Start(ctx); err != nil {
		return err
	}
	records := s.db.AuditBackend()
	np.api, err = nodeserver.NewAPI(nodeserver.Config{
		TrustDomain: td,
		Registry:    np.registry,
		Verifiers:   vs,
		Authority:   s.authority,
		Publisher:   np.publisher,
		Store:       s.db,
		Audit: &nodeserver.Dedup{Log: s.auditLog, Has: func(ctx context.Context, id string) (bool, error) {
			_, err := records.RecordByID(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		}},
		Emitter:     s.emit,
		Discovery:   nodeDiscovery{s},
		MCP:         nodeMCP{s},
		Approvals:   s.tok.approvals,
		Log:         s.log.With("component", "nodes"),
		Now:         s.now,
		NodeSVIDTTL: s.cfg.CA.X509SVIDTTL,
	})
	return err
}

// startNodes runs the publisher, the follower of the other servers'
// changes and the feed's pruning.
func (s *Server) startNodes(ctx context.Context, errc chan<- error) {
	go func() {
		if err := s.nodes.publisher.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			errc <- fmt.Errorf("change publisher: %w", err)
		}
	}()
	go func() {
		if err := s.nodes.publisher.Follow(ctx, s.refreshFromFeed); err != nil && !errors.Is(err, context.Canceled) {
			errc <- fmt.Errorf("change follower: %w", err)
		}
	}()
	go s.nodes.publisher.Prune(ctx)
}

// followedKinds are the stored document kinds published on the change
// feed: what nodes enforce and other servers reload.
var followedKinds = []string{resource.KindAccessPolicy, resource.KindService, resource.KindMCPServer}

// followedResources lists the documents of followedKinds.
func (s *Server) followedResources(ctx context.Context) ([]store.Resource, error) {
	var out []store.Resource
	for _, k := range followedKinds {
		rs, err := s.db.ListResources(ctx, k)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// resourcesChanged tells nodes and the other servers that stored
// documents changed (after an apply, a delete, a promotion).
func (s *Server) resourcesChanged(ctx context.Context) {
	if s.nodes.publisher != nil {
		s.nodes.publisher.ResourcesChanged(ctx)
	}
}

// refreshFromFeed reloads, from the store, the parts of this server's
// state that another server on the same store changed (kinds of the
// change feed): entries, revocations, policies, services, MCP servers,
// node evictions. The key reload is NOTIFY writ_keys's job.
func (s *Server) refreshFromFeed(ctx context.Context, kinds map[string]bool) error {
	var errs []error
	if kinds[nodeapi.KindEntry] {
		errs = append(errs, s.registry.Reload(ctx))
	}
	if kinds[nodeapi.KindRevocation] {
		errs = append(errs, s.tok.revoke.Reload(ctx))
	}
	if kinds[nodeapi.KindResource] {
		errs = append(errs, s.reloadPolicy(ctx), s.reloadServices(ctx), s.reloadMCP(ctx))
	}
	if kinds[nodeapi.KindPin] && s.mcp.gw != nil {
		// A quarantine or approval made through another server.
		errs = append(errs, s.mcp.gw.Recheck(ctx, ""))
	}
	if kinds[nodeserver.KindNodeEvicted] {
		errs = append(errs, s.nodes.registry.Reload(ctx))
	}
	return errors.Join(errs...)
}

// NodeAPI returns the node API (for tests that wait for a node's
// acknowledgement).
func (s *Server) NodeAPI() *nodeserver.API { return s.nodes.api }
