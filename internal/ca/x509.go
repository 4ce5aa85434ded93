package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// X509SVIDParams describes one X.509-SVID to sign.
type X509SVIDParams struct {
	// ID is the SPIFFE ID, carried as the certificate's only URI SAN. It
	// must be in the authority's trust domain.
	ID spiffeid.ID
	// PublicKey is the workload's public key (the workload keeps the
	// private half).
	PublicKey crypto.PublicKey
	// TTL is the requested lifetime; 0 means the configured default. It is
	// capped at the signing CA key's NotAfter.
	TTL time.Duration
	// Instance is the instance ID (e.g. "inst_01J..."), carried as the
	// subject serialNumber. Optional.
	Instance string
}

// SignX509SVID signs an X.509-SVID for p with the active CA key. It returns
// the leaf followed by the intermediates a verifier needs to reach a bundle
// authority: none for the self-signed root, writ's intermediate (and any
// upstream intermediates) with an upstream CA.
func (a *Authority) SignX509SVID(ctx context.Context, p X509SVIDParams) ([]*x509.Certificate, error) {
	if err := a.checkID(p.ID); err != nil {
		return nil, fmt.Errorf("sign X.509-SVID: %w", err)
	}
	if err := checkInstance(p.Instance); err != nil {
		return nil, fmt.Errorf("sign X.509-SVID for %s: %w", p.ID, err)
	}
	if p.PublicKey == nil {
		return nil, fmt.Errorf("sign X.509-SVID for %s: no public key given", p.ID)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sign X.509-SVID for %s: %w", p.ID, err)
	}
	ca := a.snapshot().x509
	now := a.now()
	notBefore, notAfter, err := a.lifetime(ca, now, p.TTL, a.x509SVIDTTL)
	if err != nil {
		return nil, fmt.Errorf("sign X.509-SVID for %s: %w", p.ID, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("sign X.509-SVID for %s: %w", p.ID, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{SerialNumber: p.Instance},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{p.ID.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.chain[0], p.PublicKey, ca.signer)
	if err != nil {
		return nil, fmt.Errorf("sign X.509-SVID for %s: %w", p.ID, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse X.509-SVID for %s: %w", p.ID, err)
	}
	out := make([]*x509.Certificate, 0, len(ca.chain))
	out = append(out, leaf)
	return append(out, ca.chain[:len(ca.chain)-1]...), nil
}

// lifetime returns the validity of a credential signed by k at now: ttl (or
// def when ttl is 0) capped at k's NotAfter, starting slightly in the past.
func (a *Authority) lifetime(k *key, now time.Time, ttl, def time.Duration) (time.Time, time.Time, error) {
	switch {
	case ttl < 0:
		return time.Time{}, time.Time{}, fmt.Errorf("TTL %v is negative; use 0 for the default", ttl)
	case ttl == 0:
		ttl = def
	}
	notAfter := now.Add(ttl)
	if notAfter.After(k.notAfter) {
		notAfter = k.notAfter
	}
	if !notAfter.After(now) {
		return time.Time{}, time.Time{}, fmt.Errorf("%s key %s expired at %s and was not replaced; check that the authority's rotation loop (Run) is running and see its errors", k.kind, k.id, k.notAfter.UTC().Format(time.RFC3339))
	}
	notBefore := now.Add(-backdate)
	if notBefore.Before(k.notBefore) {
		notBefore = k.notBefore
	}
	return notBefore, notAfter, nil
}

// checkID checks that id is a SPIFFE ID in the authority's trust domain.
func (a *Authority) checkID(id spiffeid.ID) error {
	switch {
	case id.IsZero():
		return errors.New("no SPIFFE ID given")
	case id.TrustDomain() != a.td:
		return fmt.Errorf("SPIFFE ID %s is not in trust domain %s", id, a.td)
	}
	return nil
}

// maxInstanceLen is the upper bound of an X.520 serialNumber.
const maxInstanceLen = 64

// checkInstance checks an instance ID: at most 64 printable ASCII
// characters without spaces.
func checkInstance(s string) error {
	if len(s) > maxInstanceLen {
		return fmt.Errorf("instance ID is %d bytes; at most %d are allowed", len(s), maxInstanceLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return fmt.Errorf("instance ID %q has byte %#x at %d; only printable ASCII without spaces is allowed", s, s[i], i)
		}
	}
	return nil
}

// randomSerial returns a random positive 128-bit certificate serial.
func randomSerial() (*big.Int, error) {
	var b [16]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if n := new(big.Int).SetBytes(b[:]); n.Sign() > 0 {
			return n, nil
		}
	}
}

// makeCACert certifies a new CA key: self-signed, or signed by the upstream
// CA. It returns the key's chain, ending with the root the bundle
// publishes.
func (a *Authority) makeCACert(id string, priv crypto.Signer, now time.Time) ([]*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(a.caTTL)
	parent, signer := (*x509.Certificate)(nil), priv
	if a.upstream != nil {
		if ua := a.upstream.notAfter(); ua.Before(notAfter) {
			notAfter = ua
		}
		if !notAfter.After(now.Add(MinKeyTTL)) {
			return nil, fmt.Errorf("create x509-ca key: the upstream CA chain expires at %s, too soon to issue an intermediate; renew the upstream CA certificate", notAfter.UTC().Format(time.RFC3339))
		}
		parent, signer = a.upstream.chain[0], a.upstream.signer
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{"writ"},
			CommonName:   "writ CA " + a.td.Name(),
			SerialNumber: id,
		},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// writ's CA signs only leaves.
		MaxPathLenZero: true,
		URIs:           []*url.URL{a.td.ID().URL()},
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, priv.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("create x509-ca certificate %s: %w", id, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse x509-ca certificate %s: %w", id, err)
	}
	chain := []*x509.Certificate{cert}
	if a.upstream != nil {
		chain = append(chain, a.upstream.chain...)
	}
	return chain, nil
}
