package keys

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
	"strings"
)

// Purpose names one kind of key writ signs with. Each purpose is configured
// with its own provider in writ.yaml (keys.x509_ca, keys.jwt, ...).
type Purpose string

// The purposes a provider can be chosen for.
const (
	PurposeX509CA  Purpose = "x509_ca"
	PurposeJWT     Purpose = "jwt"
	PurposeProxyCA Purpose = "proxy_ca"
)

// Provider kinds, as written in writ.yaml.
const (
	KindSoftware = "software"
	KindPKCS11   = "pkcs11"
	KindTPM      = "tpm"
)

// A Provider makes ECDSA P-256 signing keys and loads them again from the
// handle it returned. What a handle holds depends on the provider: for
// software keys the PKCS#8 private key sealed under the KEK; for a
// PKCS#11 token the key's CKA_ID inside the token; for a TPM the key's
// public area and its private area encrypted by the TPM's storage key.
// A device provider never has the private key in memory: it is generated
// inside the device and every signature is made there.
type Provider interface {
	// Kind is KindSoftware, KindPKCS11 or KindTPM.
	Kind() string
	// Generate makes a new key named id. ad binds a software key's sealed
	// blob to its use (devices bind the key by id).
	Generate(ctx context.Context, id string, ad []byte) (crypto.Signer, []byte, error)
	// Load returns the signer of a key made by Generate.
	Load(ctx context.Context, id string, ad, handle []byte) (crypto.Signer, error)
	// Destroy removes the key from the device. For software keys it does
	// nothing: deleting the stored handle deletes the key.
	Destroy(ctx context.Context, id string, handle []byte) error
}

// handleMagic starts the handle of every device key. A software handle is
// a sealed blob, which starts with sealVersion (1), so the two never meet.
const handleMagic = "WK1:"

// deviceHandle returns the handle of a key of kind with payload.
func deviceHandle(kind string, payload []byte) []byte {
	h := make([]byte, 0, len(handleMagic)+len(kind)+1+len(payload))
	h = append(h, handleMagic...)
	h = append(h, kind...)
	h = append(h, ':')
	return append(h, payload...)
}

// HandleKind returns the provider kind that made handle.
func HandleKind(handle []byte) (string, error) {
	if len(handle) > 0 && handle[0] == sealVersion {
		return KindSoftware, nil
	}
	rest, ok := bytes.CutPrefix(handle, []byte(handleMagic))
	if !ok {
		return "", errors.New("key handle is neither a sealed key nor a device key (the store was modified outside writ)")
	}
	kind, _, ok := bytes.Cut(rest, []byte{':'})
	if !ok {
		return "", errors.New("device key handle has no provider kind")
	}
	switch string(kind) {
	case KindPKCS11, KindTPM:
		return string(kind), nil
	}
	return "", fmt.Errorf("device key handle names unknown provider %q", kind)
}

// handlePayload returns the provider-specific part of a device handle of kind.
func handlePayload(kind string, handle []byte) ([]byte, error) {
	p, ok := bytes.CutPrefix(handle, []byte(handleMagic+kind+":"))
	if !ok {
		return nil, fmt.Errorf("key handle is not a %s key", kind)
	}
	return p, nil
}

// Software is the default provider: keys are made in memory and kept in
// the store as PKCS#8 sealed under the KEK.
type Software struct{ Sealer *Sealer }

var _ Provider = Software{}

// Kind returns KindSoftware.
func (Software) Kind() string { return KindSoftware }

// Generate makes a P-256 key and seals it bound to ad.
func (s Software) Generate(_ context.Context, id string, ad []byte) (crypto.Signer, []byte, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key %s: %w", id, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal private key %s: %w", id, err)
	}
	sealed := s.Sealer.Seal(der, ad)
	clear(der)
	return priv, sealed, nil
}

// Load unseals a key made by Generate.
func (s Software) Load(_ context.Context, id string, ad, handle []byte) (crypto.Signer, error) {
	der, err := s.Sealer.Open(handle, ad)
	if err != nil {
		return nil, fmt.Errorf("open sealed key %s: %w (restore the WRIT_KEK value or key-encryption key that sealed it)", id, err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("parse key %s: %w", id, err)
	}
	ec, ok := priv.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("parse key %s: %T is not an ECDSA P-256 key", id, priv)
	}
	return ec, nil
}

// Destroy does nothing: the sealed blob is the key.
func (Software) Destroy(context.Context, string, []byte) error { return nil }

// Set is the providers of one writ process and which one makes the keys of
// each purpose. A key is always loaded by the provider that made it (told
// by its handle), so changing a purpose's provider in writ.yaml takes
// effect at the next rotation while the old keys keep signing until then.
type Set struct {
	Software Software
	PKCS11   *PKCS11 // nil unless keys.pkcs11 is configured
	TPM      *TPM    // nil unless keys.tpm is configured
	// Use maps a purpose to the kind of provider that generates its keys.
	// A purpose missing from Use uses software keys.
	Use map[Purpose]string
}

// NewSoftwareSet returns a Set that makes every key in software.
func NewSoftwareSet(s *Sealer) *Set { return &Set{Software: Software{Sealer: s}} }

// provider returns the configured provider of kind.
func (s *Set) provider(kind string) (Provider, error) {
	switch kind {
	case KindSoftware, "":
		if s.Software.Sealer == nil {
			return nil, errors.New("software keys need the key-encryption key, which is not set")
		}
		return s.Software, nil
	case KindPKCS11:
		if s.PKCS11 == nil {
			return nil, errors.New("the key lives in a PKCS#11 token but keys.pkcs11 is not configured; configure the token that holds it")
		}
		return s.PKCS11, nil
	case KindTPM:
		if s.TPM == nil {
			return nil, errors.New("the key lives in a TPM but keys.tpm is not configured; configure the TPM that holds it")
		}
		return s.TPM, nil
	}
	return nil, fmt.Errorf("unknown key provider %q", kind)
}

// For returns the provider that generates keys of purpose p.
func (s *Set) For(p Purpose) (Provider, error) {
	prov, err := s.provider(s.Use[p])
	if err != nil {
		return nil, fmt.Errorf("keys.%s: %w", p, err)
	}
	return prov, nil
}

// Hardware reports whether keys of purpose p are made in a device.
func (s *Set) Hardware(p Purpose) bool {
	k := s.Use[p]
	return k == KindPKCS11 || k == KindTPM
}

// Generate makes a key of purpose p with the purpose's provider.
func (s *Set) Generate(ctx context.Context, p Purpose, id string, ad []byte) (crypto.Signer, []byte, error) {
	prov, err := s.For(p)
	if err != nil {
		return nil, nil, err
	}
	return prov.Generate(ctx, id, ad)
}

// Load returns the signer of a stored key, from the provider that made it.
func (s *Set) Load(ctx context.Context, id string, ad, handle []byte) (crypto.Signer, error) {
	kind, err := HandleKind(handle)
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", id, err)
	}
	prov, err := s.provider(kind)
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", id, err)
	}
	return prov.Load(ctx, id, ad, handle)
}

// Destroy removes a stored key from its device.
func (s *Set) Destroy(ctx context.Context, id string, handle []byte) error {
	kind, err := HandleKind(handle)
	if err != nil {
		return fmt.Errorf("destroy key %s: %w", id, err)
	}
	prov, err := s.provider(kind)
	if err != nil {
		return fmt.Errorf("destroy key %s: %w", id, err)
	}
	return prov.Destroy(ctx, id, handle)
}

// Describe returns a short text naming where keys of purpose p are made,
// for logs and status ("software", "pkcs11 token writ", "tpm /dev/tpmrm0").
func (s *Set) Describe(p Purpose) string {
	switch s.Use[p] {
	case KindPKCS11:
		if s.PKCS11 != nil {
			return "pkcs11 " + s.PKCS11.where
		}
	case KindTPM:
		if s.TPM != nil {
			return "tpm " + s.TPM.where
		}
	}
	return KindSoftware
}

// Close releases the devices.
func (s *Set) Close() error {
	var errs []error
	if s.PKCS11 != nil {
		errs = append(errs, s.PKCS11.Close())
	}
	if s.TPM != nil {
		errs = append(errs, s.TPM.Close())
	}
	return errors.Join(errs...)
}

// checkID refuses key ids a device could not hold as a label.
func checkID(id string) error {
	if id == "" || len(id) > 64 || strings.ContainsAny(id, "\x00\n") {
		return fmt.Errorf("key id %q: want 1 to 64 printable characters", id)
	}
	return nil
}
