package ca

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/writ-dev/writ/internal/store"
)

// BundleResourceKind is the resource kind of the stored bundle document.
// Its version is the bundle's sequence number.
const BundleResourceKind = "TrustBundle"

// bundleActor is the actor recorded on the stored bundle document.
const bundleActor = "writ-ca"

// bundleDoc is what the stored bundle document records: the fingerprints
// of the published authorities. It changes exactly when the published
// authorities do, so its version counts bundle changes.
type bundleDoc struct {
	TrustDomain     string   `json:"trust_domain"`
	X509Authorities []string `json:"x509_authorities"` // SHA-256 of each root certificate, hex
	JWTAuthorities  []string `json:"jwt_authorities"`  // "kid:SHA-256 of the PKIX public key, hex"
}

// publish builds the snapshot of the keys after reconciliation, records
// the bundle document to obtain the sequence number, swaps the snapshot in
// and notifies subscribers when something they care about changed.
func (a *Authority) publish(ctx context.Context, cas, jwts []*entry) error {
	b := spiffebundle.New(a.td)
	doc := bundleDoc{TrustDomain: a.td.Name(), X509Authorities: []string{}, JWTAuthorities: []string{}}
	s := &snapshot{}
	for _, e := range cas {
		if e.rec.State == store.KeyActive {
			s.x509 = e.k
		}
		if !e.k.trusted {
			continue
		}
		root := e.k.root()
		if !b.HasX509Authority(root) {
			b.AddX509Authority(root)
			sum := sha256.Sum256(root.Raw)
			doc.X509Authorities = append(doc.X509Authorities, hex.EncodeToString(sum[:]))
		}
	}
	for _, e := range jwts {
		if e.rec.State == store.KeyActive {
			s.jwt = e.k
		}
		if err := b.AddJWTAuthority(e.k.id, e.k.public); err != nil {
			return fmt.Errorf("publish jwt key %s: %w", e.k.id, err)
		}
		pub, err := x509.MarshalPKIXPublicKey(e.k.public)
		if err != nil {
			return fmt.Errorf("publish jwt key %s: %w", e.k.id, err)
		}
		sum := sha256.Sum256(pub)
		doc.JWTAuthorities = append(doc.JWTAuthorities, e.k.id+":"+hex.EncodeToString(sum[:]))
	}
	if s.x509 == nil || s.jwt == nil {
		// advance always leaves an active key of each kind.
		return fmt.Errorf("publish keys: no active key after rotation (x509-ca %v, jwt %v)", s.x509 != nil, s.jwt != nil)
	}
	slices.Sort(doc.X509Authorities)
	slices.Sort(doc.JWTAuthorities)
	spec, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode bundle document: %w", err)
	}
	res, _, err := a.resources.PutResource(ctx, store.Resource{Kind: BundleResourceKind, Name: a.td.Name(), Spec: spec, Actor: bundleActor})
	if err != nil {
		return fmt.Errorf("record trust bundle: %w", err)
	}
	if res.Version <= 0 {
		return fmt.Errorf("record trust bundle: store returned version %d", res.Version)
	}
	b.SetSequenceNumber(uint64(res.Version))
	b.SetRefreshHint(a.refreshHint)
	s.bundle = b

	for _, es := range [...][]*entry{cas, jwts} {
		for _, e := range es {
			s.keys = append(s.keys, KeyInfo{
				ID: e.k.id, Kind: e.k.kind, State: e.rec.State, Published: e.k.trusted,
				NotBefore: e.k.notBefore, NotAfter: e.k.notAfter, CreatedAt: e.rec.CreatedAt,
			})
		}
		s.next = a.nextTransition(es, s.next)
	}

	a.mu.Lock()
	old := a.st
	a.st = s
	a.mu.Unlock()
	if old == nil || old.x509 != s.x509 || old.jwt != s.jwt || !old.bundle.Equal(s.bundle) {
		a.notify()
	}
	return nil
}
