package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
	"github.com/google/go-tpm/tpm2/transport/tcp"
)

// TPMConfig names a TPM 2.0: a character device (the kernel's resource
// manager /dev/tpmrm0) or a TPM simulator speaking the TCG simulator
// protocol over TCP (swtpm socket --server type=tcp, or the reference
// simulator). Exactly one of Device and TCP is set.
type TPMConfig struct {
	Device string
	// TCP is the simulator's command address, host:port; TCPPlatform its
	// platform (control) address, by default the next port.
	TCP         string
	TCPPlatform string
}

// TPM keeps keys in a TPM 2.0. Every key is an ECDSA P-256 signing key
// created by the TPM under its storage root key (the TCG reference ECC
// SRK, derived from the owner hierarchy's seed, so it is the same after a
// restart without being stored). The handle in writ's store holds the
// key's public area and its private area as the TPM wraps it: that blob
// can be loaded only into this TPM, and the private key never leaves it.
// Signing loads the key, signs and flushes it, so any number of keys work
// within the TPM's few object slots.
type TPM struct {
	mu     sync.Mutex
	closed bool
	t      transport.TPMCloser
	srk    tpm2.NamedHandle
	where  string
}

var _ Provider = (*TPM)(nil)

// OpenTPM connects to the TPM and creates the storage root key.
func OpenTPM(c TPMConfig) (*TPM, error) {
	t, where, err := DialTPM(c, "keys.tpm")
	if err != nil {
		return nil, err
	}
	p := &TPM{t: t, where: where}
	if err := p.createSRK(); err != nil {
		t.Close()
		return nil, err
	}
	return p, nil
}

// DialTPM opens the TPM c names and returns it with a description of
// where it is. key is the configuration key errors name (keys.tpm,
// node.tpm).
func DialTPM(c TPMConfig, key string) (transport.TPMCloser, string, error) {
	switch {
	case (c.Device == "") == (c.TCP == ""):
		return nil, "", fmt.Errorf("%s: set exactly one of device and tcp", key)
	case c.Device != "":
		if _, err := os.Stat(c.Device); err != nil {
			return nil, "", fmt.Errorf("%s.device: %v (is a TPM 2.0 present and its driver loaded? the kernel's resource manager is /dev/tpmrm0)", key, err)
		}
		t, err := linuxtpm.Open(c.Device)
		if err != nil {
			return nil, "", fmt.Errorf("%s.device: open %s: %v (writ's user needs read-write access, e.g. the tss group)", key, c.Device, err)
		}
		return t, c.Device, nil
	}
	plat := c.TCPPlatform
	if plat == "" {
		host, port, err := net.SplitHostPort(c.TCP)
		n, perr := strconv.Atoi(port)
		if err != nil || perr != nil || n <= 0 || n >= 65535 {
			return nil, "", fmt.Errorf("%s.tcp: %q is not host:port", key, c.TCP)
		}
		plat = net.JoinHostPort(host, strconv.Itoa(n+1))
	}
	t, err := tcp.Open(tcp.Config{CommandAddress: c.TCP, PlatformAddress: plat})
	if err != nil {
		return nil, "", fmt.Errorf("%s.tcp: %v (is the TPM simulator running, e.g. swtpm socket --tpm2 --server type=tcp,port=2321 --ctrl type=tcp,port=2322 --flags startup-clear?)", key, err)
	}
	return t, c.TCP, nil
}

func (p *TPM) createSRK() error {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(p.t)
	if err != nil {
		return fmt.Errorf("keys.tpm: create the storage root key in %s: %v (writ needs the owner hierarchy with an empty authorization)", p.where, err)
	}
	p.srk = tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name}
	return nil
}

// Kind returns KindTPM.
func (p *TPM) Kind() string { return KindTPM }

// signingTemplate is an unrestricted ECDSA P-256 / SHA-256 signing key
// that is generated in the TPM and cannot be duplicated out of it.
var signingTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgECC,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		NoDA:                true,
		SignEncrypt:         true,
	},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		CurveID: tpm2.TPMECCNistP256,
		Scheme: tpm2.TPMTECCScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
		},
	}),
}

// Generate creates a signing key in the TPM.
func (p *TPM) Generate(_ context.Context, id string, _ []byte) (crypto.Signer, []byte, error) {
	if err := checkID(id); err != nil {
		return nil, nil, err
	}
	p.mu.Lock()
	rsp, err := tpm2.Create{
		ParentHandle: tpm2.AuthHandle{Handle: p.srk.Handle, Name: p.srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InPublic:     tpm2.New2B(signingTemplate),
	}.Execute(p.t)
	p.mu.Unlock()
	if err != nil {
		return nil, nil, fmt.Errorf("generate key %s in tpm %s: %v", id, p.where, err)
	}
	pubBytes := tpm2.Marshal(rsp.OutPublic)
	privBytes := tpm2.Marshal(rsp.OutPrivate)
	s, err := p.signer(id, pubBytes, privBytes)
	if err != nil {
		return nil, nil, err
	}
	return s, deviceHandle(KindTPM, append(pubBytes, privBytes...)), nil
}

// Load returns the signer of a key blob made by Generate. The blob is
// loaded into the TPM once to check that it is this TPM's.
func (p *TPM) Load(_ context.Context, id string, _, handle []byte) (crypto.Signer, error) {
	payload, err := handlePayload(KindTPM, handle)
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", id, err)
	}
	pubBytes, privBytes, err := splitTPMBlob(payload)
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", id, err)
	}
	s, err := p.signer(id, pubBytes, privBytes)
	if err != nil {
		return nil, err
	}
	if err := s.withLoaded(func(tpm2.NamedHandle) error { return nil }); err != nil {
		return nil, fmt.Errorf("load key %s into tpm %s: %v (is this the TPM that made it, and was it not cleared?)", id, p.where, err)
	}
	return s, nil
}

// splitTPMBlob splits a handle payload into the marshalled TPM2B_PUBLIC
// and TPM2B_PRIVATE.
func splitTPMBlob(b []byte) (pub, priv []byte, err error) {
	if len(b) < 2 {
		return nil, nil, errors.New("tpm key blob is too short")
	}
	n := 2 + int(binary.BigEndian.Uint16(b))
	if len(b) < n+2 || len(b) != n+2+int(binary.BigEndian.Uint16(b[n:])) {
		return nil, nil, errors.New("tpm key blob is malformed (the store was modified outside writ)")
	}
	return b[:n], b[n:], nil
}

// signer checks a key's public area and returns its signer.
func (p *TPM) signer(id string, pubBytes, privBytes []byte) (*tpmSigner, error) {
	pub2b, err := tpm2.Unmarshal[tpm2.TPM2BPublic](pubBytes)
	if err != nil {
		return nil, fmt.Errorf("load key %s: parse tpm public area: %v", id, err)
	}
	priv2b, err := tpm2.Unmarshal[tpm2.TPM2BPrivate](privBytes)
	if err != nil {
		return nil, fmt.Errorf("load key %s: parse tpm private area: %v", id, err)
	}
	pub, err := pub2b.Contents()
	if err != nil {
		return nil, fmt.Errorf("load key %s: parse tpm public area: %v", id, err)
	}
	a := pub.ObjectAttributes
	if pub.Type != tpm2.TPMAlgECC || !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin || !a.SignEncrypt {
		return nil, fmt.Errorf("load key %s: the tpm key is not a non-exportable ECC signing key made in the TPM", id)
	}
	parms, err := pub.Parameters.ECCDetail()
	if err != nil || parms.CurveID != tpm2.TPMECCNistP256 {
		return nil, fmt.Errorf("load key %s: the tpm key is not on P-256", id)
	}
	point, err := pub.Unique.ECC()
	if err != nil {
		return nil, fmt.Errorf("load key %s: tpm public area has no ECC point: %v", id, err)
	}
	ecpub, err := tpm2.ECDSAPub(parms, point)
	if err != nil {
		return nil, fmt.Errorf("load key %s: %v", id, err)
	}
	return &tpmSigner{p: p, id: id, pub: ecpub, public: *pub2b, private: *priv2b}, nil
}

// Destroy does nothing: a TPM key exists only as its wrapped blob, which
// the caller deletes.
func (p *TPM) Destroy(context.Context, string, []byte) error { return nil }

// Close flushes the storage root key and closes the connection.
func (p *TPM) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	tpm2.FlushContext{FlushHandle: p.srk.Handle}.Execute(p.t)
	return p.t.Close()
}

// tpmSigner signs with one TPM key.
type tpmSigner struct {
	p       *TPM
	id      string
	pub     *ecdsa.PublicKey
	public  tpm2.TPM2BPublic
	private tpm2.TPM2BPrivate
}

func (s *tpmSigner) Public() crypto.PublicKey { return s.pub }

// withLoaded loads the key under the SRK, runs f and flushes the key, all
// under the TPM's lock.
func (s *tpmSigner) withLoaded(f func(tpm2.NamedHandle) error) error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	rsp, err := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: s.p.srk.Handle, Name: s.p.srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InPublic:     s.public,
		InPrivate:    s.private,
	}.Execute(s.p.t)
	if err != nil {
		return err
	}
	defer tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}.Execute(s.p.t)
	return f(tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name})
}

// Sign signs a SHA-256 digest in the TPM and returns an ASN.1 ECDSA
// signature, as crypto.Signer requires.
func (s *tpmSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts.HashFunc() != crypto.SHA256 || len(digest) != 32 {
		return nil, fmt.Errorf("sign with tpm key %s: only SHA-256 digests are supported, got %v", s.id, opts.HashFunc())
	}
	var sig []byte
	err := s.withLoaded(func(h tpm2.NamedHandle) error {
		rsp, err := tpm2.Sign{
			KeyHandle: tpm2.AuthHandle{Handle: h.Handle, Name: h.Name, Auth: tpm2.PasswordAuth(nil)},
			Digest:    tpm2.TPM2BDigest{Buffer: digest},
			InScheme: tpm2.TPMTSigScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256}),
			},
			Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
		}.Execute(s.p.t)
		if err != nil {
			return err
		}
		e, err := rsp.Signature.Signature.ECDSA()
		if err != nil {
			return err
		}
		sig, err = asn1.Marshal(struct{ R, S *big.Int }{
			new(big.Int).SetBytes(e.SignatureR.Buffer),
			new(big.Int).SetBytes(e.SignatureS.Buffer),
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sign with tpm key %s in %s: %v", s.id, s.p.where, err)
	}
	return sig, nil
}

// WrapKEK seals kek to the TPM: the returned blob can be unsealed only by
// this TPM.
func (p *TPM) WrapKEK(kek []byte) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rsp, err := tpm2.Create{
		ParentHandle: tpm2.AuthHandle{Handle: p.srk.Handle, Name: p.srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InSensitive: tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
			Data: tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: kek}),
		}},
		InPublic: tpm2.New2B(tpm2.TPMTPublic{
			Type:             tpm2.TPMAlgKeyedHash,
			NameAlg:          tpm2.TPMAlgSHA256,
			ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, UserWithAuth: true, NoDA: true},
		}),
	}.Execute(p.t)
	if err != nil {
		return nil, fmt.Errorf("seal the key-encryption key to tpm %s: %v", p.where, err)
	}
	return append(tpm2.Marshal(rsp.OutPublic), tpm2.Marshal(rsp.OutPrivate)...), nil
}

// UnwrapKEK unseals a KEK sealed by WrapKEK.
func (p *TPM) UnwrapKEK(blob []byte) ([]byte, error) {
	pubBytes, privBytes, err := splitTPMBlob(blob)
	if err != nil {
		return nil, fmt.Errorf("unseal the key-encryption key: %w", err)
	}
	pub, err := tpm2.Unmarshal[tpm2.TPM2BPublic](pubBytes)
	if err != nil {
		return nil, fmt.Errorf("unseal the key-encryption key: %v", err)
	}
	priv, err := tpm2.Unmarshal[tpm2.TPM2BPrivate](privBytes)
	if err != nil {
		return nil, fmt.Errorf("unseal the key-encryption key: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	rsp, err := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: p.srk.Handle, Name: p.srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InPublic:     *pub,
		InPrivate:    *priv,
	}.Execute(p.t)
	if err != nil {
		return nil, fmt.Errorf("unseal the key-encryption key: load it into tpm %s: %v (is this the TPM that sealed it?)", p.where, err)
	}
	defer tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}.Execute(p.t)
	u, err := tpm2.Unseal{ItemHandle: tpm2.AuthHandle{Handle: rsp.ObjectHandle, Name: rsp.Name, Auth: tpm2.PasswordAuth(nil)}}.Execute(p.t)
	if err != nil {
		return nil, fmt.Errorf("unseal the key-encryption key in tpm %s: %v", p.where, err)
	}
	if len(u.OutData.Buffer) != KEKSize {
		return nil, fmt.Errorf("unseal the key-encryption key: %d bytes, want %d", len(u.OutData.Buffer), KEKSize)
	}
	return u.OutData.Buffer, nil
}
