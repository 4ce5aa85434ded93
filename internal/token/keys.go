package token

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"

	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// KeySource finds the public key that signed a token by its kid.
// *jwtbundle.Bundle implements it.
type KeySource interface {
	FindJWTAuthority(kid string) (crypto.PublicKey, bool)
}

var _ KeySource = (*jwtbundle.Bundle)(nil)

// Bundle holds writ's current trust bundle for in-process verifiers. It
// is a [KeySource] for access tokens and an x509bundle/jwtbundle source for
// SVIDs; Set replaces the bundle atomically (on CA rotation) and lookups
// take no lock.
type Bundle struct {
	p atomic.Pointer[spiffebundle.Bundle]
}

// Set replaces the bundle.
func (b *Bundle) Set(sb *spiffebundle.Bundle) { b.p.Store(sb) }

// Get returns the current bundle (nil before the first Set).
func (b *Bundle) Get() *spiffebundle.Bundle { return b.p.Load() }

// FindJWTAuthority implements KeySource.
func (b *Bundle) FindJWTAuthority(kid string) (crypto.PublicKey, bool) {
	sb := b.p.Load()
	if sb == nil {
		return nil, false
	}
	return sb.FindJWTAuthority(kid)
}

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (b *Bundle) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	sb := b.p.Load()
	if sb == nil {
		return nil, errors.New("no trust bundle loaded yet")
	}
	return sb.GetX509BundleForTrustDomain(td)
}

// GetJWTBundleForTrustDomain implements jwtbundle.Source.
func (b *Bundle) GetJWTBundleForTrustDomain(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	sb := b.p.Load()
	if sb == nil {
		return nil, errors.New("no trust bundle loaded yet")
	}
	return sb.GetJWTBundleForTrustDomain(td)
}

// RemoteKeys is a KeySource over a JWKS document fetched from a URL (writ's
// /jwks.json), for resource servers outside the writ process. It fetches
// on first use and again when a kid is unknown (a rotation), at most once
// per MinRefresh.
type RemoteKeys struct {
	URL    string
	Client *http.Client // default http.DefaultClient
	// MinRefresh is the least time between fetches; default 30s.
	MinRefresh time.Duration
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time

	mu      sync.RWMutex
	keys    map[string]crypto.PublicKey
	fetched time.Time
	fetchMu sync.Mutex
}

// Refresh fetches the JWKS now.
func (k *RemoteKeys) Refresh(ctx context.Context) error {
	c := k.Client
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.URL, nil)
	if err != nil {
		return fmt.Errorf("fetch JWKS %s: %w", k.URL, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("fetch JWKS %s: %w", k.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch JWKS %s: server answered %s", k.URL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("fetch JWKS %s: %w", k.URL, err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return fmt.Errorf("decode JWKS from %s: %w", k.URL, err)
	}
	keys := map[string]crypto.PublicKey{}
	for _, jwk := range set.Keys {
		if jwk.KeyID == "" || !jwk.IsPublic() || !jwk.Valid() {
			continue
		}
		keys[jwk.KeyID] = jwk.Key
	}
	if len(keys) == 0 {
		return fmt.Errorf("decode JWKS from %s: no usable public keys", k.URL)
	}
	k.mu.Lock()
	k.keys, k.fetched = keys, k.now()
	k.mu.Unlock()
	return nil
}

func (k *RemoteKeys) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

// FindJWTAuthority implements KeySource. An unknown kid triggers a
// refetch (rate limited), so a rotated key is picked up.
func (k *RemoteKeys) FindJWTAuthority(kid string) (crypto.PublicKey, bool) {
	k.mu.RLock()
	key, ok := k.keys[kid]
	last := k.fetched
	k.mu.RUnlock()
	if ok {
		return key, true
	}
	min := k.MinRefresh
	if min <= 0 {
		min = 30 * time.Second
	}
	if !last.IsZero() && k.now().Sub(last) < min {
		return nil, false
	}
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	k.mu.RLock()
	again := k.fetched != last
	k.mu.RUnlock()
	if !again {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := k.Refresh(ctx)
		cancel()
		if err != nil {
			k.mu.Lock()
			k.fetched = k.now() // back off
			k.mu.Unlock()
			return nil, false
		}
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	key, ok = k.keys[kid]
	return key, ok
}

// JWKS returns the JWT signing keys of the current bundle as a JSON Web Key
// Set (RFC 7517) with kid, alg ES256 and use sig, the /jwks.json document
// that third-party JOSE libraries verify writ tokens with.
func (b *Bundle) JWKS() ([]byte, error) {
	sb := b.p.Load()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	if sb != nil {
		for kid, key := range sb.JWTAuthorities() {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"})
		}
	}
	slices.SortFunc(set.Keys, func(a, b jose.JSONWebKey) int { return strings.Compare(a.KeyID, b.KeyID) })
	return json.Marshal(set)
}
