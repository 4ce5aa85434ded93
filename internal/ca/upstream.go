package ca

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"
)

// upstream is an operator-provided CA that signs writ's intermediate CA
// keys.
type upstream struct {
	// chain is the upstream CA certificate followed by its chain; the last
	// certificate is the root that the bundle publishes.
	chain  []*x509.Certificate
	signer crypto.Signer
}

func (u *upstream) root() *x509.Certificate { return u.chain[len(u.chain)-1] }

// notAfter is the earliest expiry in the upstream chain: no intermediate
// writ makes can be valid longer.
func (u *upstream) notAfter() time.Time {
	t := u.chain[0].NotAfter
	for _, c := range u.chain[1:] {
		if c.NotAfter.Before(t) {
			t = c.NotAfter
		}
	}
	return t
}

// loadUpstream reads and checks the upstream CA files.
func loadUpstream(certFile, keyFile string, now time.Time) (*upstream, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read upstream CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read upstream CA key: %w", err)
	}
	u, err := parseUpstream(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load upstream CA from %s and %s: %w", certFile, keyFile, err)
	}
	if na := u.notAfter(); !now.Before(na) {
		return nil, fmt.Errorf("load upstream CA from %s: the chain expired at %s; renew the upstream CA certificate", certFile, na.UTC().Format(time.RFC3339))
	}
	return u, nil
}

// parseUpstream parses a PEM certificate chain (upstream CA first) and the
// PEM private key of its first certificate, and checks that they fit: the
// first certificate is a CA allowed to sign certificates, its public key
// matches the private key, and each certificate is signed by the next.
func parseUpstream(certPEM, keyPEM []byte) (*upstream, error) {
	var chain []*x509.Certificate
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("certificate file: unexpected PEM block %q; want only CERTIFICATE blocks", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate file: parse certificate %d: %w", len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("certificate file: no PEM CERTIFICATE block found")
	}
	ca := chain[0]
	if !ca.BasicConstraintsValid || !ca.IsCA {
		return nil, fmt.Errorf("certificate file: %q is not a CA certificate (basicConstraints CA:TRUE missing)", ca.Subject)
	}
	if ca.KeyUsage != 0 && ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("certificate file: %q may not sign certificates (keyUsage lacks keyCertSign)", ca.Subject)
	}
	if ca.MaxPathLenZero {
		return nil, fmt.Errorf("certificate file: %q has pathlen 0 and cannot sign writ's intermediate CA", ca.Subject)
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return nil, fmt.Errorf("certificate file: certificate %d (%q) is not signed by certificate %d (%q): %w; list the upstream CA first and its issuers after it", i+1, chain[i].Subject, i+2, chain[i+1].Subject, err)
		}
	}
	signer, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if p, ok := signer.Public().(equaler); !ok || !p.Equal(ca.PublicKey) {
		return nil, fmt.Errorf("key file: the private key does not belong to %q", ca.Subject)
	}
	return &upstream{chain: chain, signer: signer}, nil
}

// parsePrivateKey parses one PEM private key: PKCS#8, SEC 1 (EC) or
// PKCS#1 (RSA). Encrypted keys are refused.
func parsePrivateKey(keyPEM []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, errors.New("no PEM block found")
	}
	if _, ok := b.Headers["DEK-Info"]; ok || b.Type == "ENCRYPTED PRIVATE KEY" {
		return nil, errors.New("the private key is encrypted; provide it unencrypted in a file readable only by writ")
	}
	var (
		k   any
		err error
	)
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q; want PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", b.Type, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("parse %s: %T cannot sign", b.Type, k)
	}
	return s, nil
}
