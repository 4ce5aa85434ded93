package proxy

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store"
)

// KeyKind is the store.Key kind of the proxy's interception CA.
const KeyKind = "proxy-ca"

// CA is the proxy's dedicated interception authority. It is separate from
// writ's SPIFFE CA: trusting it (SSL_CERT_FILE) lets agents accept the
// leaf certificates the proxy presents for intercepted hosts and for its
// own TLS listener, and nothing else. Its key is sealed in the store.
type CA struct {
	cert *x509.Certificate
	key  crypto.Signer
	now  func() time.Time

	mu     sync.Mutex
	leaves map[string]*tls.Certificate
}

// caLife is the life of a generated interception CA; leafLife of a leaf.
const (
	caLife   = 5 * 365 * 24 * time.Hour
	leafLife = 24 * time.Hour
)

// LoadCA returns the interception CA kept in ks, generating and storing
// one on first use. Its key is made by the providers' proxy_ca provider:
// sealed in the store by default, or inside a PKCS#11 token or TPM.
func LoadCA(ctx context.Context, ks store.Keys, providers *keys.Set, now func() time.Time) (*CA, error) {
	if now == nil {
		now = time.Now
	}
	recs, err := ks.ListKeys(ctx, KeyKind)
	if err != nil {
		return nil, fmt.Errorf("load proxy CA: %w", err)
	}
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if r.State != store.KeyActive || !now().Before(r.NotAfter.Add(-30*24*time.Hour)) {
			continue
		}
		cert, err := x509.ParseCertificate(r.Cert)
		if err != nil {
			return nil, fmt.Errorf("parse proxy CA certificate %s: %w", r.ID, err)
		}
		var key crypto.Signer
		if kind, _ := keys.HandleKind(r.Sealed); kind == keys.KindSoftware {
			// Software proxy CA keys are sealed SEC1 (kept as they were).
			der, err := providers.Software.Sealer.Open(r.Sealed, []byte("writ proxy ca "+r.ID))
			if err != nil {
				return nil, fmt.Errorf("unseal proxy CA key %s: %w", r.ID, err)
			}
			if key, err = x509.ParseECPrivateKey(der); err != nil {
				return nil, fmt.Errorf("parse proxy CA key %s: %w", r.ID, err)
			}
		} else if key, err = providers.Load(ctx, r.ID, nil, r.Sealed); err != nil {
			return nil, fmt.Errorf("load proxy CA key: %w", err)
		}
		if p, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !p.Equal(key.Public()) {
			return nil, fmt.Errorf("load proxy CA key %s: the certificate does not certify the key; the store was modified outside writ", r.ID)
		}
		return &CA{cert: cert, key: key, now: now, leaves: map[string]*tls.Certificate{}}, nil
	}
	id := "proxyca_" + rand.Text()
	var (
		ca     *CA
		sealed []byte
	)
	if providers.Hardware(keys.PurposeProxyCA) {
		signer, handle, err := providers.Generate(ctx, keys.PurposeProxyCA, id, nil)
		if err != nil {
			return nil, fmt.Errorf("generate proxy CA key: %w", err)
		}
		if ca, err = newCA(signer, now); err != nil {
			return nil, err
		}
		sealed = handle
	} else {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate proxy CA key: %w", err)
		}
		if ca, err = newCA(key, now); err != nil {
			return nil, err
		}
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("encode proxy CA key: %w", err)
		}
		sealed = providers.Software.Sealer.Seal(der, []byte("writ proxy ca "+id))
	}
	pub, _ := x509.MarshalPKIXPublicKey(ca.key.Public())
	if err := ks.PutKey(ctx, store.Key{ID: id, Kind: KeyKind, State: store.KeyActive, Sealed: sealed,
		Public: pub, Cert: ca.cert.Raw, NotBefore: ca.cert.NotBefore, NotAfter: ca.cert.NotAfter, CreatedAt: now()}); err != nil {
		return nil, fmt.Errorf("store proxy CA: %w", err)
	}
	return ca, nil
}

// NewCA generates an interception CA that is not stored (for tests).
func NewCA(now func() time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate proxy CA key: %w", err)
	}
	return newCA(key, now)
}

// newCA certifies key as a new interception CA.
func newCA(key crypto.Signer, now func() time.Time) (*CA, error) {
	if now == nil {
		now = time.Now
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"writ"}, CommonName: "writ proxy interception CA"},
		NotBefore:             t.Add(-time.Minute),
		NotAfter:              t.Add(caLife),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("sign proxy CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key, now: now, leaves: map[string]*tls.Certificate{}}, nil
}

// Certificate returns the CA certificate.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// PEM returns the CA certificate PEM-encoded, for SSL_CERT_FILE.
func (c *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})
}

// Leaf returns a certificate for host (a DNS name or IP address), signed
// by the CA and cached until shortly before it expires.
func (c *CA) Leaf(host string) (*tls.Certificate, error) {
	if host == "" {
		return nil, errors.New("issue proxy leaf certificate: no host name (the client sent no SNI)")
	}
	now := c.now()
	c.mu.Lock()
	if l, ok := c.leaves[host]; ok && now.Before(l.Leaf.NotAfter.Add(-time.Hour)) {
		c.mu.Unlock()
		return l, nil
	}
	c.mu.Unlock()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("issue proxy leaf for %s: %w", host, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"writ proxy"}, CommonName: host},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(leafLife),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return nil, fmt.Errorf("issue proxy leaf for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	cert := &tls.Certificate{Certificate: [][]byte{der, c.cert.Raw}, PrivateKey: key, Leaf: leaf}
	c.mu.Lock()
	if len(c.leaves) > 10_000 {
		clear(c.leaves)
	}
	c.leaves[host] = cert
	c.mu.Unlock()
	return cert, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n.Add(n, big.NewInt(1))
}
