// Package nodeserver is the server side of the link between a writ server
// and its nodes: join tokens and the node registry (list, evict), the
// node API that attests nodes and issues their node SVIDs, the signing of
// workload SVIDs for nodes, the stream of changes to every node, and the
// ingestion of the audit events nodes spool. internal/server composes it;
// nodes reach it over mTLS with their node SVID (see internal/node).
package nodeserver

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/node/nodeattest"
	"github.com/writ-dev/writ/internal/store"
)

// DefaultTokenTTL is the lifetime of a join token created without one.
const DefaultTokenTTL = time.Hour

// MaxTokenTTL bounds a join token's lifetime: a join token is a bearer
// secret, meant to be used soon after it is made.
const MaxTokenTTL = 30 * 24 * time.Hour

// Registry is the set of nodes and join tokens: it creates tokens,
// records attested nodes and evicts them. Its in-memory view of which
// attestations are current is what the node API checks on every call, so
// an eviction takes effect at once on this server; other servers learn it
// from the change feed.
type Registry struct {
	store   store.NodeStore
	emit    audit.Emitter
	now     func() time.Time
	td      spiffeid.TrustDomain
	changed func(context.Context)

	mu      sync.RWMutex
	current map[string]string // attestation id -> node name, for nodes not evicted
}

// RegistryConfig configures a Registry.
type RegistryConfig struct {
	TrustDomain spiffeid.TrustDomain
	Store       store.NodeStore
	Emitter     audit.Emitter
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// Changed is called after the registry appended to the change feed
	// (an eviction), to wake the hub. Optional.
	Changed func(context.Context)
}

// NewRegistry loads the nodes of c.Store.
func NewRegistry(ctx context.Context, c RegistryConfig) (*Registry, error) {
	r := &Registry{store: c.Store, emit: c.Emitter, now: c.Now, td: c.TrustDomain, changed: c.Changed}
	if r.now == nil {
		r.now = time.Now
	}
	if r.emit == nil {
		r.emit = audit.Discard
	}
	if err := r.Reload(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the current attestations from the store again (after a
// change another server made).
func (r *Registry) Reload(ctx context.Context) error {
	nodes, err := r.store.ListNodes(ctx)
	if err != nil {
		return fmt.Errorf("load nodes: %w", err)
	}
	cur := make(map[string]string, len(nodes))
	for _, n := range nodes {
		if n.EvictedAt.IsZero() {
			cur[n.ID] = n.Name
		}
	}
	r.mu.Lock()
	r.current = cur
	r.mu.Unlock()
	return nil
}

// SpiffeID returns the SPIFFE ID of the node name:
// spiffe://TD/writ/node/NAME.
func (r *Registry) SpiffeID(name string) spiffeid.ID {
	id, _ := spiffeid.FromSegments(r.td, "writ", "node", name)
	return id
}

// Current reports whether id is the current attestation of node name
// (the node was not evicted or attested again since).
func (r *Registry) Current(name, id string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return id != "" && r.current[id] == name
}

// Check is Current, and on a miss asks the store: a node attested
// through another server on the same store (one that failed over to
// this one) is current there. An eviction another server made reaches
// this one through the change feed ([Registry.Reload]).
func (r *Registry) Check(ctx context.Context, name, id string) bool {
	if id == "" || r.Current(name, id) {
		return id != ""
	}
	n, err := r.store.GetNode(ctx, name)
	if err != nil || n.ID != id || !n.EvictedAt.IsZero() {
		return false
	}
	r.mu.Lock()
	for old, nm := range r.current {
		if nm == name {
			delete(r.current, old)
		}
	}
	r.current[id] = name
	r.mu.Unlock()
	return true
}

// Gates returns the node selectors (nodeattest.Gates) the current
// attestation of node name satisfies.
func (r *Registry) Gates(ctx context.Context, name string) ([]string, error) {
	n, err := r.store.GetNode(ctx, name)
	if err != nil {
		return nil, err
	}
	return nodeattest.Gates(n), nil
}

// CreateJoinToken makes a join token valid for ttl (DefaultTokenTTL when
// 0) and returns its secret, shown once, and its record.
func (r *Registry) CreateJoinToken(ctx context.Context, ttl time.Duration, node, actor string) (string, store.JoinToken, error) {
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl > MaxTokenTTL {
		return "", store.JoinToken{}, fmt.Errorf("join token TTL %v: longer than the maximum of %v; a join token is a secret meant to be used soon", ttl, MaxTokenTTL)
	}
	secret, rec, err := nodeattest.NewJoinToken(r.now(), ttl, node)
	if err != nil {
		return "", store.JoinToken{}, err
	}
	if err := r.store.CreateJoinToken(ctx, rec); err != nil {
		return "", store.JoinToken{}, err
	}
	r.emit.Emit(ctx, audit.Event{Type: audit.NodeTokenCreated, Actor: actor, Target: rec.ID,
		Details: map[string]string{"node": rec.Node, "expires_at": rec.ExpiresAt.Format(time.RFC3339)}})
	return secret, rec, nil
}

// ListJoinTokens lists join tokens (never their secrets: only hashes are
// stored).
func (r *Registry) ListJoinTokens(ctx context.Context) ([]store.JoinToken, error) {
	return r.store.ListJoinTokens(ctx)
}

// DeleteJoinToken deletes a token, so it can no longer be used.
func (r *Registry) DeleteJoinToken(ctx context.Context, id, actor string) error {
	if err := r.store.DeleteJoinToken(ctx, id); err != nil {
		return err
	}
	r.emit.Emit(ctx, audit.Event{Type: audit.NodeTokenDeleted, Actor: actor, Target: id})
	return nil
}

// ListNodes lists the attested nodes.
func (r *Registry) ListNodes(ctx context.Context) ([]store.Node, error) {
	return r.store.ListNodes(ctx)
}

// Evict evicts the node name: its SVIDs stop working on every call the
// node makes from now on, it gets no new ones, and it must attest again
// with fresh evidence (a new join token) to return.
func (r *Registry) Evict(ctx context.Context, name, actor, reason string) (store.Node, error) {
	n, err := r.store.EvictNode(ctx, name, r.now().UTC())
	if err != nil {
		return n, err
	}
	r.mu.Lock()
	delete(r.current, n.ID)
	r.mu.Unlock()
	if _, err := r.store.AppendChange(ctx, store.Change{Kind: KindNodeEvicted, Key: n.ID, Op: store.ChangePut}); err != nil {
		return n, fmt.Errorf("evict node %q: announce to other servers: %w", name, err)
	}
	if r.changed != nil {
		r.changed(ctx)
	}
	if err := r.emit.Emit(ctx, audit.Event{Type: audit.NodeEvicted, Actor: actor, Node: name, Target: r.SpiffeID(name).String(),
		Reason: reason, Details: map[string]string{"attestation": n.ID}}); err != nil {
		return n, err
	}
	return n, nil
}

// Attested records a node that passed attestation and returns it with its
// new attestation id.
func (r *Registry) Attested(ctx context.Context, res nodeattest.Result, attestor string) (store.Node, error) {
	if !res.Vouched {
		old, err := r.store.GetNode(ctx, res.Name)
		if err == nil && old.EvictedAt.IsZero() && !sameIdentity(old, res, attestor) {
			return store.Node{}, fmt.Errorf("%w: node %q is attested already; to replace it, evict it first or create a join token bound to its name (writ node token create --node %s)",
				nodeattest.ErrRefused, res.Name, res.Name)
		}
	}
	now := r.now().UTC()
	n := store.Node{Name: res.Name, ID: "natt_" + rand.Text(), Attestor: attestor, Selectors: res.Selectors, AttestedAt: now, LastSeen: now}
	if err := r.store.PutNode(ctx, n); err != nil {
		return n, err
	}
	r.mu.Lock()
	for id, name := range r.current {
		if name == n.Name {
			delete(r.current, id) // the previous attestation of this name
		}
	}
	r.current[n.ID] = n.Name
	r.mu.Unlock()
	sel := make([]string, len(n.Selectors))
	for i, s := range n.Selectors {
		sel[i] = s.String()
	}
	r.emit.Emit(ctx, audit.Event{Type: audit.NodeAttested, Node: n.Name, SpiffeID: r.SpiffeID(n.Name).String(),
		Details: map[string]string{"attestor": attestor, "attestation": n.ID, "selectors": fmt.Sprint(sel)}})
	return n, nil
}

// sameIdentity reports whether res is an attestation of the same hardware
// (a TPM's EK) as old's: such a node keeps its name when it joins again.
func sameIdentity(old store.Node, res nodeattest.Result, attestor string) bool {
	if res.Identity == (store.Selector{}) || old.Attestor != attestor {
		return false
	}
	return slices.Contains(old.Selectors, res.Identity)
}

// Change kinds that concern the node registry itself.
const (
	// KindNodeEvicted: Key is the evicted attestation id.
	KindNodeEvicted = "node_evicted"
)
