package ca

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store"
)

// Authority signs SVIDs and JWTs for one trust domain and rotates its keys.
// It is safe for concurrent use. Create it with [New]; run [Authority.Run]
// for the life of the server so that keys rotate on time.
type Authority struct {
	td          spiffeid.TrustDomain
	keys        store.Keys
	resources   store.Resources
	providers   *keys.Set
	emitter     audit.Emitter
	log         *slog.Logger
	now         func() time.Time
	caTTL       time.Duration
	jwtKeyTTL   time.Duration
	x509SVIDTTL time.Duration
	jwtSVIDTTL  time.Duration
	refreshHint time.Duration
	upstream    *upstream // nil for a self-signed root
	leases      store.Leases
	holder      string

	// rotMu serializes reconciliation (store writes and the loaded cache).
	rotMu  sync.Mutex
	loaded map[string]*key // by key id; guarded by rotMu

	mu sync.RWMutex
	st *snapshot // guarded by mu; replaced whole, never modified

	subMu sync.Mutex
	subs  map[chan struct{}]struct{}
}

// snapshot is the published state: what signs and what verifies.
type snapshot struct {
	x509   *key // active X.509 CA key
	jwt    *key // active JWT key
	bundle *spiffebundle.Bundle
	keys   []KeyInfo
	// next is when the next rotation transition falls due.
	next time.Time
}

// KeyInfo describes one stored signing key, for status displays.
type KeyInfo struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`  // store.KeyX509CA or store.KeyJWT
	State     string    `json:"state"` // store.KeyPrepared, KeyActive or KeyRetired
	Published bool      `json:"published"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	CreatedAt time.Time `json:"created_at"`
}

// New returns an Authority over the keys in c.Keys. It loads and unseals
// the stored keys, creates the first keys of a new store, and catches up on
// every rotation step that fell due while writ was not running.
func New(ctx context.Context, c Config) (*Authority, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	a := &Authority{
		td:          c.TrustDomain,
		keys:        c.Keys,
		resources:   c.Resources,
		providers:   c.Providers,
		emitter:     c.Emitter,
		log:         c.Log,
		now:         c.Now,
		caTTL:       c.CATTL,
		jwtKeyTTL:   c.JWTKeyTTL,
		x509SVIDTTL: c.X509SVIDTTL,
		jwtSVIDTTL:  c.JWTSVIDTTL,
		refreshHint: c.RefreshHint,
		leases:      c.Leases,
		holder:      c.LeaseHolder,
		loaded:      make(map[string]*key),
		subs:        make(map[chan struct{}]struct{}),
	}
	if c.UpstreamCertFile != "" {
		if a.upstream, err = loadUpstream(c.UpstreamCertFile, c.UpstreamKeyFile, a.now()); err != nil {
			return nil, err
		}
	}
	if c.X509SVIDTTL > c.CATTL/6 {
		a.log.Warn("X.509-SVID TTL exceeds a sixth of the CA TTL; SVIDs signed late in a CA key's life will be cut short",
			"x509_svid_ttl", c.X509SVIDTTL, "ca_ttl", c.CATTL)
	}
	if c.JWTSVIDTTL > c.JWTKeyTTL/6 {
		a.log.Warn("JWT-SVID TTL exceeds a sixth of the JWT key TTL; JWT-SVIDs signed late in a key's life will be cut short",
			"jwt_svid_ttl", c.JWTSVIDTTL, "jwt_key_ttl", c.JWTKeyTTL)
	}
	if err := a.reconcile(ctx, ""); err != nil {
		return nil, err
	}
	return a, nil
}

// TrustDomain returns the trust domain the authority signs for.
func (a *Authority) TrustDomain() spiffeid.TrustDomain { return a.td }

func (a *Authority) snapshot() *snapshot {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.st
}

// Bundle returns the trust bundle: every published X.509 authority and JWT
// authority (prepared, active and retired keys), the sequence number and
// the refresh hint. The caller owns the returned copy.
func (a *Authority) Bundle() *spiffebundle.Bundle { return a.snapshot().bundle.Clone() }

// X509Bundle returns the X.509 authorities of [Authority.Bundle].
func (a *Authority) X509Bundle() *x509bundle.Bundle { return a.snapshot().bundle.X509Bundle() }

// JWTBundle returns the JWT authorities of [Authority.Bundle]: verifiers
// find the public key of a token's kid with FindJWTAuthority.
func (a *Authority) JWTBundle() *jwtbundle.Bundle { return a.snapshot().bundle.JWTBundle() }

// Keys describes every stored key, oldest first within each kind.
func (a *Authority) Keys() []KeyInfo {
	return append([]KeyInfo(nil), a.snapshot().keys...)
}

// Subscribe returns a channel that receives a value whenever the bundle or
// an active key changes. Notifications coalesce: a slow subscriber sees one
// pending value, then reads the current state with [Authority.Bundle].
// cancel stops the notifications and closes the channel.
func (a *Authority) Subscribe() (ch <-chan struct{}, cancel func()) {
	c := make(chan struct{}, 1)
	a.subMu.Lock()
	a.subs[c] = struct{}{}
	a.subMu.Unlock()
	var once sync.Once
	return c, func() {
		once.Do(func() {
			a.subMu.Lock()
			delete(a.subs, c)
			a.subMu.Unlock()
			close(c)
		})
	}
}

func (a *Authority) notify() {
	a.subMu.Lock()
	defer a.subMu.Unlock()
	for c := range a.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}
