package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store"
)

// key is one loaded signing key. Its fields never change after load, so
// signers may use a *key without locks; the key's rotation state lives in
// the store record that reconcile tracks separately.
type key struct {
	id        string
	kind      string
	signer    crypto.Signer
	public    crypto.PublicKey
	notBefore time.Time
	notAfter  time.Time
	createdAt time.Time

	// X.509 CA keys: chain[0] is the key's CA certificate, followed by any
	// upstream intermediates, ending with the root that the bundle
	// publishes. A self-signed CA has a chain of one.
	chain []*x509.Certificate
	// trusted is false for an X.509 CA key whose root is neither its own
	// self-signed certificate nor the configured upstream root. Such a key
	// is neither published nor used, and is deleted at its NotAfter.
	trusted bool

	// JWT keys: a JOSE signer for typ "JWT" (JWT-SVIDs) and the opaque
	// signer (which carries the kid) to build signers for other types.
	opaque jose.OpaqueSigner
	jws    jose.Signer
}

// root returns the certificate a verifier must trust for k's signatures.
func (k *key) root() *x509.Certificate { return k.chain[len(k.chain)-1] }

// newKeyID returns a fresh random key id (also used as the JWT kid).
func newKeyID() string { return rand.Text() }

// generateKey makes a new ECDSA P-256 private key (the callers' keys in
// tests and benchmarks; the authority's own keys come from its providers).
func generateKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// purposes maps a key kind to the provider purpose that makes its keys.
var purposes = map[string]keys.Purpose{store.KeyX509CA: keys.PurposeX509CA, store.KeyJWT: keys.PurposeJWT}

// unsealKey loads rec's private key from the provider that made it (the
// sealed blob in the store, a PKCS#11 token or a TPM) and checks that it
// matches the record's public key, so a store edited outside writ is
// noticed.
func (a *Authority) unsealKey(ctx context.Context, rec store.Key) (crypto.Signer, error) {
	signer, err := a.providers.Load(ctx, rec.ID, []byte(rec.ID), rec.Sealed)
	if err != nil {
		return nil, fmt.Errorf("load %s key %s: %w", rec.Kind, rec.ID, err)
	}
	ec, ok := signer.Public().(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("load %s key %s: %T is not an ECDSA P-256 key", rec.Kind, rec.ID, signer.Public())
	}
	pub, err := x509.MarshalPKIXPublicKey(ec)
	if err != nil {
		return nil, fmt.Errorf("marshal public key %s: %w", rec.ID, err)
	}
	if !bytes.Equal(pub, rec.Public) {
		return nil, fmt.Errorf("check %s key %s: the stored public key does not match the private key; the store was modified outside writ", rec.Kind, rec.ID)
	}
	return signer, nil
}

// loadKey builds a *key from a stored record: unseal, check, and for X.509
// keys parse and verify the certificate chain.
func (a *Authority) loadKey(ctx context.Context, rec store.Key) (*key, error) {
	signer, err := a.unsealKey(ctx, rec)
	if err != nil {
		return nil, err
	}
	k := &key{
		id:        rec.ID,
		kind:      rec.Kind,
		signer:    signer,
		public:    signer.Public(),
		notBefore: rec.NotBefore,
		notAfter:  rec.NotAfter,
		createdAt: rec.CreatedAt,
		trusted:   true,
	}
	switch rec.Kind {
	case store.KeyX509CA:
		chain, err := x509.ParseCertificates(rec.Cert)
		if err != nil || len(chain) == 0 {
			return nil, fmt.Errorf("parse certificate of x509-ca key %s: %v", rec.ID, errOr(err, "no certificate"))
		}
		if err := checkChain(chain, k.public); err != nil {
			return nil, fmt.Errorf("check certificate of x509-ca key %s: %w; the store was modified outside writ", rec.ID, err)
		}
		k.chain = chain
		k.trusted = a.trustedRoot(k)
	case store.KeyJWT:
		if err := k.makeJOSE(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("load key %s: unknown kind %q", rec.ID, rec.Kind)
	}
	return k, nil
}

// checkChain verifies that chain[0] certifies pub and that each
// certificate is signed by the next.
func checkChain(chain []*x509.Certificate, pub crypto.PublicKey) error {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if p, ok := chain[0].PublicKey.(equaler); !ok || !p.Equal(pub) {
		return errors.New("certificate does not certify the sealed key")
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return fmt.Errorf("certificate %d is not signed by certificate %d: %w", i, i+1, err)
		}
	}
	if len(chain) == 1 {
		if err := chain[0].CheckSignatureFrom(chain[0]); err != nil {
			return fmt.Errorf("certificate is not self-signed: %w", err)
		}
	}
	return nil
}

// trustedRoot reports whether k's chain ends in a root writ may publish:
// its own self-signed certificate (which only the sealed key could make),
// or the configured upstream root.
func (a *Authority) trustedRoot(k *key) bool {
	if len(k.chain) == 1 {
		return true
	}
	return a.upstream != nil && k.root().Equal(a.upstream.root())
}

// makeJOSE prepares the JOSE signers of a JWT key.
func (k *key) makeJOSE() error {
	k.opaque = kidSigner{OpaqueSigner: cryptosigner.Opaque(k.signer), jwk: &jose.JSONWebKey{Key: k.public, KeyID: k.id, Algorithm: string(jose.ES256), Use: "sig"}}
	s, err := k.newJOSESigner("JWT")
	if err != nil {
		return err
	}
	k.jws = s
	return nil
}

// newJOSESigner returns an ES256 signer whose header carries kid and typ.
func (k *key) newJOSESigner(typ string) (jose.Signer, error) {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.opaque},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return nil, fmt.Errorf("create JWS signer for key %s: %w", k.id, err)
	}
	return s, nil
}

// kidSigner is a JOSE opaque signer over a crypto.Signer whose public JWK
// carries the key id, so that go-jose writes "kid" into every header.
type kidSigner struct {
	jose.OpaqueSigner
	jwk *jose.JSONWebKey
}

func (s kidSigner) Public() *jose.JSONWebKey { return s.jwk }

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}
