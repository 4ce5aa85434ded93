package nodeattest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// X509PoPAttestor is the name of the x509pop attestor.
const X509PoPAttestor = "x509pop"

// X509PoP verifies x509pop evidence: the node holds the private key of a
// machine certificate that chains to one of Roots and is valid for client
// authentication, and proves it by signing [Binding] of the challenge.
// The node's name is the certificate's subject common name.
type X509PoP struct {
	Roots *x509.CertPool
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
}

// LoadX509PoP returns an x509pop verifier trusting the CA certificates in
// the PEM file path.
func LoadX509PoP(path string) (*X509PoP, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("x509pop CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("x509pop CA bundle %s: no PEM certificate in it", path)
	}
	return &X509PoP{Roots: pool}, nil
}

type x509PoPPayload struct {
	// Chain is the machine certificate followed by its intermediates,
	// DER.
	Chain [][]byte `json:"chain"`
	// Signature is over Binding(challenge): ASN.1 ECDSA, PKCS#1 v1.5 RSA
	// with SHA-256 or Ed25519.
	Signature []byte `json:"signature"`
}

// Name implements Verifier.
func (*X509PoP) Name() string { return X509PoPAttestor }

// Verify implements Verifier.
func (x *X509PoP) Verify(_ context.Context, req Request) (Result, error) {
	var p x509PoPPayload
	if err := decodeStrict(req.Payload, &p); err != nil {
		return Result{}, err
	}
	if len(p.Chain) == 0 || len(p.Chain) > 8 {
		return Result{}, fmt.Errorf("%w: x509pop: want the machine certificate and at most 7 intermediates, got %d certificates", ErrRefused, len(p.Chain))
	}
	certs := make([]*x509.Certificate, len(p.Chain))
	for i, der := range p.Chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return Result{}, fmt.Errorf("%w: x509pop: certificate %d: %v", ErrRefused, i, err)
		}
		certs[i] = c
	}
	now := time.Now
	if x.Now != nil {
		now = x.Now
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	leaf := certs[0]
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: x.Roots, Intermediates: inter, CurrentTime: now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return Result{}, fmt.Errorf("%w: x509pop: machine certificate %q: %v", ErrRefused, leaf.Subject.CommonName, err)
	}
	if err := checkSignature(leaf.PublicKey, Binding(req.Challenge), p.Signature); err != nil {
		return Result{}, fmt.Errorf("%w: x509pop: machine certificate %q: %v", ErrRefused, leaf.Subject.CommonName, err)
	}
	root := chains[0][len(chains[0])-1]
	rootSum := sha256.Sum256(root.Raw)
	return Result{
		Name: leaf.Subject.CommonName,
		Selectors: []store.Selector{
			{Type: X509PoPAttestor, Value: "subject:cn:" + leaf.Subject.CommonName},
			{Type: X509PoPAttestor, Value: "ca:fingerprint:" + hex.EncodeToString(rootSum[:])},
			{Type: X509PoPAttestor, Value: "serialnumber:" + leaf.SerialNumber.Text(16)},
		},
	}, nil
}

func checkSignature(pub crypto.PublicKey, digest, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if ecdsa.VerifyASN1(k, digest, sig) {
			return nil
		}
	case *rsa.PublicKey:
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig) == nil {
			return nil
		}
	case ed25519.PublicKey:
		if ed25519.Verify(k, digest, sig) {
			return nil
		}
	default:
		return fmt.Errorf("key type %T is not supported; use ECDSA, RSA or Ed25519", pub)
	}
	return errors.New("the signature over the challenge does not verify: the node does not hold the certificate's key")
}

// X509PoPProver proves a node with a machine certificate and its key.
type X509PoPProver struct {
	Cert tls.Certificate
}

// LoadX509PoPProver reads the machine certificate (PEM, with any
// intermediates) and its private key (PEM).
func LoadX509PoPProver(certFile, keyFile string) (*X509PoPProver, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("x509pop machine certificate %s and key %s: %w", certFile, keyFile, err)
	}
	if _, ok := c.PrivateKey.(crypto.Signer); !ok {
		return nil, fmt.Errorf("x509pop key %s: cannot sign", keyFile)
	}
	return &X509PoPProver{Cert: c}, nil
}

// Name implements Prover.
func (*X509PoPProver) Name() string { return X509PoPAttestor }

// Prove implements Prover.
func (p *X509PoPProver) Prove(_ context.Context, ch Challenge) ([]byte, error) {
	signer, ok := p.Cert.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("x509pop: the machine key cannot sign")
	}
	digest := Binding(ch)
	var opts crypto.SignerOpts = crypto.SHA256
	if _, ok := signer.Public().(ed25519.PublicKey); ok {
		opts = crypto.Hash(0)
	}
	sig, err := signer.Sign(rand.Reader, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("x509pop: sign the challenge: %w", err)
	}
	return json.Marshal(x509PoPPayload{Chain: p.Cert.Certificate, Signature: sig})
}

// PEMCerts encodes certificates as PEM, for tests and tools that write a
// CA bundle.
func PEMCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}
