package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/writ-dev/writ/internal/store"
)

// testCA is a CA certificate and key made for a test.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// makeCA makes a CA certificate for key, signed by parent (self-signed when
// parent is nil).
func makeCA(t testing.TB, name string, key crypto.Signer, parent *testCA, notAfter time.Time, edit func(*x509.Certificate)) *testCA {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if edit != nil {
		edit(tmpl)
	}
	p, pk := tmpl, key
	if parent != nil {
		p, pk = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p, key.Public(), pk)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: c, key: key}
}

func certPEM(cs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range cs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

func pkcs8PEM(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func writeFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func rsaKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestUpstream(t *testing.T) {
	year := time.Now().Add(365 * 24 * time.Hour)
	root := makeCA(t, "Example Root", workloadKey(t), nil, year, nil)
	mid := makeCA(t, "Example Issuing CA", workloadKey(t), root, year, nil)
	rsaRoot := makeCA(t, "RSA Root", rsaKey(t), nil, year, nil)
	sec1, err := x509.MarshalECPrivateKey(mid.key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		certs      []byte
		key        []byte
		root       *x509.Certificate
		issuer     *x509.Certificate
		wantChainN int // leaf + intermediates
	}{
		{"root with PKCS8 key", certPEM(root.cert), pkcs8PEM(t, root.key), root.cert, root.cert, 2},
		{"issuing CA with chain and SEC1 key", certPEM(mid.cert, root.cert),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), root.cert, mid.cert, 3},
		{"RSA root with PKCS1 key", certPEM(rsaRoot.cert),
			pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaRoot.key.(*rsa.PrivateKey))}), rsaRoot.cert, rsaRoot.cert, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) {
				c.UpstreamCertFile = writeFile(t, "ca.pem", tt.certs)
				c.UpstreamKeyFile = writeFile(t, "ca.key", tt.key)
			})
			auth := e.a.Bundle().X509Authorities()
			if len(auth) != 1 || !auth[0].Equal(tt.root) {
				t.Fatalf("bundle X.509 authorities %d, want only the upstream root", len(auth))
			}
			chain := e.svid(t)
			if len(chain) != tt.wantChainN {
				t.Fatalf("chain of %d certificates, want %d", len(chain), tt.wantChainN)
			}
			inter := chain[1]
			if !inter.IsCA || inter.CheckSignatureFrom(tt.issuer) != nil {
				t.Error("intermediate is not a CA signed by the upstream CA")
			}
			if len(inter.URIs) != 1 || inter.URIs[0].String() != "spiffe://writ.test" {
				t.Errorf("intermediate URI SANs %v, want the trust domain ID", inter.URIs)
			}
			if !inter.MaxPathLenZero {
				t.Error("intermediate may sign further CAs")
			}
			id, _, err := x509svid.Verify(chain, e.a.X509Bundle(), x509svid.WithTime(e.clock.Now()))
			if err != nil || id != drafter {
				t.Fatalf("x509svid.Verify = %s, %v", id, err)
			}

			// Rotation makes a new intermediate; the bundle still holds the
			// root alone and the sequence does not move.
			s := seq(t, e.a)
			if err := e.a.Rotate(context.Background(), store.KeyX509CA); err != nil {
				t.Fatal(err)
			}
			if n := len(e.a.Bundle().X509Authorities()); n != 1 {
				t.Errorf("%d X.509 authorities after rotation, want 1", n)
			}
			if got := seq(t, e.a); got != s {
				t.Errorf("sequence %d after an intermediate rotation, want %d", got, s)
			}
			chain2 := e.svid(t)
			if chain2[1].Equal(inter) {
				t.Error("rotation did not switch the intermediate")
			}
			if _, _, err := x509svid.Verify(chain2, e.a.X509Bundle(), x509svid.WithTime(e.clock.Now())); err != nil {
				t.Error(err)
			}
			if !e.restart(t).Bundle().Equal(e.a.Bundle()) {
				t.Error("bundle changed across a restart in upstream mode")
			}
		})
	}
}

func TestUpstreamCapsCALife(t *testing.T) {
	end := time.Now().Add(10 * time.Hour).Truncate(time.Second)
	root := makeCA(t, "Short Root", workloadKey(t), nil, end, nil)
	e := newEnv(t, func(c *Config) {
		c.UpstreamCertFile = writeFile(t, "ca.pem", certPEM(root.cert))
		c.UpstreamKeyFile = writeFile(t, "ca.key", pkcs8PEM(t, root.key))
	})
	ca := e.storeKeys(t, store.KeyX509CA)[0]
	if !ca.NotAfter.Equal(end) {
		t.Errorf("intermediate NotAfter %s, want the upstream's %s", ca.NotAfter, end)
	}
	// A successor would expire no later: none is prepared, and nothing
	// is due until the key ends.
	e.clock.Set(e.clock.Now().Add(9 * time.Hour))
	e.tick(t)
	if n := len(e.storeKeys(t, store.KeyX509CA)); n != 1 {
		t.Errorf("%d x509-ca keys, want 1: a successor capped at the same upstream expiry is useless", n)
	}
	if next := e.a.snapshot().next; next.After(end) {
		t.Errorf("next transition %s after the key ends at %s", next, end)
	}
	// Once the upstream has expired, signing stops with a clear error.
	e.clock.Set(end.Add(time.Minute))
	err := e.a.reconcile(context.Background(), "")
	if err == nil || !strings.Contains(err.Error(), "renew the upstream CA") {
		t.Errorf("reconcile after the upstream expired: %v", err)
	}
}

func TestModeSwitch(t *testing.T) {
	year := time.Now().Add(365 * 24 * time.Hour)
	root := makeCA(t, "Example Root", workloadKey(t), nil, year, nil)
	e := newEnv(t, nil)
	selfRoot := e.a.Bundle().X509Authorities()[0]

	// Self-signed to upstream: the old root stays published and signing
	// until the rotation; then both roots are published.
	e.cfg.UpstreamCertFile = writeFile(t, "ca.pem", certPEM(root.cert))
	e.cfg.UpstreamKeyFile = writeFile(t, "ca.key", pkcs8PEM(t, root.key))
	e.a = e.restart(t)
	if got := e.a.Bundle().X509Authorities(); len(got) != 1 || !got[0].Equal(selfRoot) {
		t.Fatal("switching to an upstream CA dropped the self-signed root before its rotation")
	}
	if err := e.a.Rotate(context.Background(), store.KeyX509CA); err != nil {
		t.Fatal(err)
	}
	b := e.a.Bundle()
	if len(b.X509Authorities()) != 2 || !b.HasX509Authority(selfRoot) || !b.HasX509Authority(root.cert) {
		t.Fatalf("bundle after the switch has %d authorities, want the old self-signed root and the upstream root", len(b.X509Authorities()))
	}
	if len(e.svid(t)) != 2 {
		t.Error("SVID after the switch is not leaf + intermediate")
	}

	// Upstream back to self-signed: the intermediate can no longer be
	// vouched for, so it is neither used nor published.
	e.cfg.UpstreamCertFile, e.cfg.UpstreamKeyFile = "", ""
	e.a = e.restart(t)
	b = e.a.Bundle()
	if b.HasX509Authority(root.cert) {
		t.Error("the unconfigured upstream root is still published")
	}
	chain := e.svid(t)
	if len(chain) != 1 {
		t.Errorf("SVID chain of %d after switching back, want the leaf of a self-signed CA", len(chain))
	}
	if _, _, err := x509svid.Verify(chain, e.a.X509Bundle(), x509svid.WithTime(e.clock.Now())); err != nil {
		t.Error(err)
	}
	var untrusted int
	for _, k := range e.a.Keys() {
		if !k.Published {
			untrusted++
			if k.State != store.KeyRetired {
				t.Errorf("untrusted key %s is %s, want retired", k.ID, k.State)
			}
		}
	}
	if untrusted != 1 {
		t.Errorf("%d unpublished keys, want the one intermediate", untrusted)
	}
}

func TestUpstreamErrors(t *testing.T) {
	year := time.Now().Add(365 * 24 * time.Hour)
	root := makeCA(t, "Example Root", workloadKey(t), nil, year, nil)
	otherKey := workloadKey(t)
	leafish := makeCA(t, "Not A CA", workloadKey(t), root, year, func(c *x509.Certificate) { c.IsCA = false; c.KeyUsage = x509.KeyUsageDigitalSignature })
	pathZero := makeCA(t, "Path Zero", workloadKey(t), nil, year, func(c *x509.Certificate) { c.MaxPathLenZero = true })
	expired := makeCA(t, "Expired", workloadKey(t), nil, time.Now().Add(-time.Minute), nil)
	unrelated := makeCA(t, "Unrelated", workloadKey(t), nil, year, nil)
	tests := []struct {
		name       string
		cert, key  []byte
		certFile   string // overrides cert when set
		keyMissing bool
		want       string
	}{
		{"key of another certificate", certPEM(root.cert), pkcs8PEM(t, otherKey), "", false, "does not belong"},
		{"not a CA", certPEM(leafish.cert), pkcs8PEM(t, leafish.key), "", false, "not a CA certificate"},
		{"pathlen zero", certPEM(pathZero.cert), pkcs8PEM(t, pathZero.key), "", false, "pathlen 0"},
		{"expired", certPEM(expired.cert), pkcs8PEM(t, expired.key), "", false, "renew the upstream CA"},
		{"broken chain", certPEM(root.cert, unrelated.cert), pkcs8PEM(t, root.key), "", false, "is not signed by certificate 2"},
		{"no certificate", []byte("hello"), pkcs8PEM(t, root.key), "", false, "no PEM CERTIFICATE block"},
		{"key in the certificate file", append(certPEM(root.cert), pkcs8PEM(t, root.key)...), pkcs8PEM(t, root.key), "", false, `unexpected PEM block "PRIVATE KEY"`},
		{"encrypted key", certPEM(root.cert), pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), "", false, "encrypted"},
		{"certificate as key", certPEM(root.cert), certPEM(root.cert), "", false, `unexpected PEM block "CERTIFICATE"`},
		{"missing certificate file", nil, pkcs8PEM(t, root.key), "/nonexistent/ca.pem", false, "read upstream CA certificate"},
		{"key file not configured", certPEM(root.cert), nil, "", true, "both a certificate file and a key file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{TrustDomain: testTD, Keys: newStore(t), Sealer: newSealer(t, 1)}
			cfg.Resources = cfg.Keys.(store.Resources)
			cfg.UpstreamCertFile = tt.certFile
			if cfg.UpstreamCertFile == "" {
				cfg.UpstreamCertFile = writeFile(t, "ca.pem", tt.cert)
			}
			if !tt.keyMissing {
				cfg.UpstreamKeyFile = writeFile(t, "ca.key", tt.key)
			}
			_, err := New(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func FuzzParseUpstream(f *testing.F) {
	year := time.Now().Add(365 * 24 * time.Hour)
	root := makeCA(f, "Root", workloadKey(f), nil, year, nil)
	mid := makeCA(f, "Mid", workloadKey(f), root, year, nil)
	f.Add(certPEM(root.cert), pkcs8PEM(f, root.key))
	f.Add(certPEM(mid.cert, root.cert), pkcs8PEM(f, mid.key))
	f.Add(certPEM(root.cert), pkcs8PEM(f, mid.key))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, certs, key []byte) {
		u, err := parseUpstream(certs, key)
		if err != nil {
			return
		}
		if len(u.chain) == 0 || !u.chain[0].IsCA {
			t.Fatal("accepted an upstream without a CA certificate")
		}
		if !u.signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(u.chain[0].PublicKey) {
			t.Fatal("accepted a key that does not match the certificate")
		}
	})
}
