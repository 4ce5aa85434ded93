package nodeattest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-attestation/attest"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/store"
)

// TPMAttestor is the name of the TPM attestor.
const TPMAttestor = "tpm"

// PCRsVerified is the selector of a node whose quoted PCRs the server
// checked against its PCR allow list.
var PCRsVerified = store.Selector{Type: TPMAttestor, Value: "pcrs:verified"}

// RequiresTPM reports whether a node selector value (an entry's
// node:... without the prefix) can be carried only by a TPM-attested
// node.
func RequiresTPM(gate string) bool {
	return gate == "attestor:"+TPMAttestor || strings.HasPrefix(gate, TPMAttestor+":")
}

// An Activator is a Verifier whose evidence takes two rounds (credential
// activation). Begin checks the first payload and returns the challenge
// the node must answer and the state Verify needs to check the answer;
// the node API keeps that state with the nonce (single-use, expiring)
// and hands it back in [Request.State].
type Activator interface {
	Verifier
	Begin(ctx context.Context, req Request) (challenge []byte, state any, err error)
}

// An ActivationProver is a Prover whose evidence takes two rounds: Prove
// returns the first payload, Answer the second, given the server's
// challenge for the same [Challenge].
type ActivationProver interface {
	Prover
	Answer(ctx context.Context, ch Challenge, challenge []byte) ([]byte, error)
	// Abort ends an attestation whose first round the server refused.
	Abort()
}

// Begin runs the first round of a two-round attestor.
func (s *Verifiers) Begin(ctx context.Context, req Request) ([]byte, any, error) {
	v, ok := s.m[req.Attestor]
	if !ok {
		return nil, nil, fmt.Errorf("%w: attestor %q is not configured on this server (configured: %v)", ErrRefused, req.Attestor, s.Names())
	}
	a, ok := v.(Activator)
	if !ok {
		return nil, nil, fmt.Errorf("%w: attestor %q takes one round; post the evidence to the attest path", ErrRefused, req.Attestor)
	}
	if len(req.Nonce) != NonceSize || len(req.Key) == 0 {
		return nil, nil, fmt.Errorf("%w: malformed challenge", ErrRefused)
	}
	ch, st, err := a.Begin(ctx, req)
	if err != nil {
		if errors.Is(err, ErrRefused) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrRefused, req.Attestor, err)
	}
	return ch, st, nil
}

// PCRPolicy is the PCR allow list of TPM attestation: by bank (sha1,
// sha256, sha384, sha512), by PCR index, the digests the PCR may hold. A
// node whose quote does not cover a listed PCR, or shows a digest not
// listed for it, is refused.
type PCRPolicy map[string]map[int][][]byte

var pcrBanks = map[string]attest.HashAlg{"sha1": attest.HashSHA1, "sha256": attest.HashSHA256, "sha384": attest.HashSHA384, "sha512": attest.HashSHA512}

func bankHash(bank string) (crypto.Hash, attest.HashAlg, error) {
	a, ok := pcrBanks[bank]
	if !ok {
		return 0, 0, fmt.Errorf("PCR bank %q: use sha1, sha256, sha384 or sha512", bank)
	}
	h := map[string]crypto.Hash{"sha1": crypto.SHA1, "sha256": crypto.SHA256, "sha384": crypto.SHA384, "sha512": crypto.SHA512}[bank]
	return h, a, nil
}

// ParsePCRPolicy reads a policy written as bank -> PCR index -> hex
// digests (writ.yaml's node.tpm_attestation.pcrs).
func ParsePCRPolicy(in map[string]map[int][]string) (PCRPolicy, error) {
	out := PCRPolicy{}
	for bank, pcrs := range in {
		h, _, err := bankHash(bank)
		if err != nil {
			return nil, err
		}
		out[bank] = map[int][][]byte{}
		for idx, digests := range pcrs {
			if idx < 0 || idx > 23 {
				return nil, fmt.Errorf("PCR %s:%d: PCR indexes are 0 to 23", bank, idx)
			}
			if len(digests) == 0 {
				return nil, fmt.Errorf("PCR %s:%d: list at least one allowed digest (hex)", bank, idx)
			}
			for _, d := range digests {
				b, err := hex.DecodeString(strings.TrimSpace(d))
				if err != nil || len(b) != h.Size() {
					return nil, fmt.Errorf("PCR %s:%d: %q is not a %d-byte hex digest", bank, idx, d, h.Size())
				}
				out[bank][idx] = append(out[bank][idx], b)
			}
		}
	}
	return out, nil
}

// banks returns the banks the policy names, sorted; sha256 when it names
// none (a quote is needed anyway: it binds the AK to the challenge).
func (p PCRPolicy) banks() []string {
	var out []string
	for b := range p {
		out = append(out, b)
	}
	if len(out) == 0 {
		return []string{"sha256"}
	}
	sort.Strings(out)
	return out
}

// TPMVerifier verifies TPM 2.0 node attestation by credential activation,
// as SPIRE's TPM attestors, Keylime and go-attestation do:
//
// Round 1 ([TPMVerifier.Begin]): the node sends its endorsement key (EK:
// public key, and certificate when its TPM holds one) and the parameters
// of a fresh attestation key (AK: its public area and the TPM's creation
// attestation, which shows it is a restricted signing key that never
// leaves the TPM). The server admits the EK if its SHA-256 (over the PKIX
// DER of its public key) is in EKHashes, or if its certificate chains to
// EKRoots (the TPM manufacturers' CAs); then it encrypts a fresh secret
// to the EK, bound to the AK's name (TPM2_MakeCredential).
//
// Round 2 ([TPMVerifier.Verify]): only the TPM that holds that EK can
// recover the secret, and only for an AK with that name loaded in it
// (TPM2_ActivateCredential). The node returns the secret and a quote,
// signed by the AK, over [Binding] of the challenge (the server's nonce
// and the node SVID's key) and its PCRs in the banks the server asked
// for. The server checks the secret, the quote's signature with the AK,
// its nonce, and the PCRs against PCRs, the allow list.
//
// The node's selectors are tpm:ek:HEX (the EK hash), and, when they
// apply, tpm:ek_ca:fingerprint:HEX (the root the EK certificate chains
// to) and tpm:pcrs:verified (the PCR allow list was checked).
type TPMVerifier struct {
	// EKHashes are the allowed EKs, lower-case hex SHA-256 of the PKIX
	// DER of the EK public key.
	EKHashes map[string]bool
	// EKRoots are the TPM manufacturers' CA certificates EK certificates
	// may chain to; nil: EK certificates are not enough.
	EKRoots *x509.CertPool
	// PCRs is the PCR allow list; empty: PCRs are not checked.
	PCRs PCRPolicy
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
}

// Name implements Verifier.
func (*TPMVerifier) Name() string { return TPMAttestor }

// EKHash returns the hash the EK allow list holds for an EK public key:
// lower-case hex SHA-256 of its PKIX DER.
func EKHash(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:]), nil
}

// tpmBegin is the node's first payload.
type tpmBegin struct {
	// EKPublic is the PKIX DER of the EK public key.
	EKPublic []byte `json:"ek_public"`
	// EKCert is the EK certificate (DER) when the TPM holds one.
	EKCert []byte `json:"ek_cert,omitempty"`
	// AK is the attestation key's public area (TPMT_PUBLIC) and its
	// creation data, attestation (TPMS_ATTEST) and signature.
	AK tpmAK `json:"ak"`
}

type tpmAK struct {
	Public            []byte `json:"public"`
	CreateData        []byte `json:"create_data"`
	CreateAttestation []byte `json:"create_attestation"`
	CreateSignature   []byte `json:"create_signature"`
}

// tpmChallenge is the server's answer to round 1.
type tpmChallenge struct {
	// Credential and Secret are TPM2_MakeCredential's output (with their
	// TPM2B size prefixes).
	Credential []byte `json:"credential"`
	Secret     []byte `json:"secret"`
	// Banks are the PCR banks to quote.
	Banks []string `json:"banks"`
}

// tpmAnswer is the node's second payload.
type tpmAnswer struct {
	// Secret is what TPM2_ActivateCredential recovered.
	Secret []byte     `json:"secret"`
	Quotes []tpmQuote `json:"quotes"`
}

type tpmQuote struct {
	Bank string `json:"bank"`
	// Quote is the TPMS_ATTEST, Signature its TPMT_SIGNATURE by the AK.
	Quote     []byte `json:"quote"`
	Signature []byte `json:"signature"`
	// PCRs are the bank's PCR values, by index.
	PCRs map[int][]byte `json:"pcrs"`
}

// tpmState is what the server keeps between the rounds.
type tpmState struct {
	secret   []byte
	akPublic []byte
	ekHash   string
	ekRoot   string // hex SHA-256 of the root the EK certificate chains to, if that admitted it
	banks    []string
}

// OID of the subject alternative name, which EK certificates mark
// critical (it holds the TPM's manufacturer, model and version).
var oidSAN = asn1.ObjectIdentifier{2, 5, 29, 17}

// Begin implements Activator.
func (v *TPMVerifier) Begin(_ context.Context, req Request) ([]byte, any, error) {
	var p tpmBegin
	if err := decodeStrict(req.Payload, &p); err != nil {
		return nil, nil, err
	}
	ekPub, err := x509.ParsePKIXPublicKey(p.EKPublic)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: tpm: ek_public is not a PKIX public key: %v", ErrRefused, err)
	}
	ekHash, err := EKHash(ekPub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: tpm: EK: %v", ErrRefused, err)
	}
	st := &tpmState{ekHash: ekHash, banks: v.PCRs.banks()}
	if len(p.EKCert) > 0 {
		root, err := v.checkEKCert(p.EKCert, p.EKPublic)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: tpm: EK sha256:%s: %v", ErrRefused, ekHash, err)
		}
		st.ekRoot = root
	}
	if !v.EKHashes[ekHash] && st.ekRoot == "" {
		how := "add it to node.tpm_attestation.ek_hashes"
		if v.EKRoots != nil {
			how += ", or give the TPM an EK certificate from a manufacturer CA in node.tpm_attestation.ek_ca"
		}
		return nil, nil, fmt.Errorf("%w: tpm: EK sha256:%s is not allowed on this server: %s", ErrRefused, ekHash, how)
	}
	ap := attest.ActivationParameters{EK: ekPub, AK: attest.AttestationParameters{Public: p.AK.Public, CreateData: p.AK.CreateData,
		CreateAttestation: p.AK.CreateAttestation, CreateSignature: p.AK.CreateSignature}}
	secret, ec, err := generateActivation(&ap)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: tpm: attestation key: %v", ErrRefused, err)
	}
	st.secret, st.akPublic = secret, p.AK.Public
	b, err := json.Marshal(tpmChallenge{Credential: ec.Credential, Secret: ec.Secret, Banks: st.banks})
	if err != nil {
		return nil, nil, err
	}
	return b, st, nil
}

// generateActivation checks the AK and makes the credential; go-tpm's
// legacy decoders panic on some malformed structures, which must refuse
// the node rather than crash the server.
func generateActivation(ap *attest.ActivationParameters) (secret []byte, ec *attest.EncryptedCredential, err error) {
	defer func() {
		if r := recover(); r != nil {
			secret, ec, err = nil, nil, fmt.Errorf("malformed TPM structure (%v)", r)
		}
	}()
	return ap.Generate()
}

// checkEKCert verifies an EK certificate against EKRoots and that it is
// for ekPublic; it returns the hex SHA-256 of the root.
func (v *TPMVerifier) checkEKCert(der, ekPublic []byte) (string, error) {
	if v.EKRoots == nil {
		return "", nil // certificates are not used: the hash decides
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return "", fmt.Errorf("EK certificate: %v", err)
	}
	if !bytes.Equal(c.RawSubjectPublicKeyInfo, ekPublic) {
		return "", errors.New("the EK certificate is for another key than ek_public")
	}
	// The SAN of an EK certificate is a directory name Go does not
	// process; that is not a reason to refuse it.
	c.UnhandledCriticalExtensions = slices.DeleteFunc(slices.Clone(c.UnhandledCriticalExtensions),
		func(o asn1.ObjectIdentifier) bool { return o.Equal(oidSAN) })
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	chains, err := c.Verify(x509.VerifyOptions{Roots: v.EKRoots, CurrentTime: now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return "", fmt.Errorf("EK certificate: %v", err)
	}
	root := chains[0][len(chains[0])-1]
	s := sha256.Sum256(root.Raw)
	return hex.EncodeToString(s[:]), nil
}

// Verify implements Verifier: the second round.
func (v *TPMVerifier) Verify(_ context.Context, req Request) (Result, error) {
	st, ok := req.State.(*tpmState)
	if !ok || st == nil {
		return Result{}, fmt.Errorf("%w: tpm: no credential activation under way for this nonce; post the EK and AK first (two rounds)", ErrRefused)
	}
	var p tpmAnswer
	if err := decodeStrict(req.Payload, &p); err != nil {
		return Result{}, err
	}
	if subtle.ConstantTimeCompare(p.Secret, st.secret) != 1 {
		return Result{}, fmt.Errorf("%w: tpm: EK sha256:%s: the activated credential is wrong: the AK is not in the TPM that holds this EK", ErrRefused, st.ekHash)
	}
	ak, err := attest.ParseAKPublic(st.akPublic)
	if err != nil {
		return Result{}, fmt.Errorf("%w: tpm: AK: %v", ErrRefused, err)
	}
	if len(p.Quotes) != len(st.banks) {
		return Result{}, fmt.Errorf("%w: tpm: want one quote for each of the PCR banks %v, got %d", ErrRefused, st.banks, len(p.Quotes))
	}
	nonce := Binding(req.Challenge)
	verified := map[string]map[int][]byte{}
	for i, q := range p.Quotes {
		if q.Bank != st.banks[i] {
			return Result{}, fmt.Errorf("%w: tpm: quote %d is of bank %q, want %q", ErrRefused, i, q.Bank, st.banks[i])
		}
		h, _, _ := bankHash(q.Bank)
		if len(q.PCRs) > 24 {
			return Result{}, fmt.Errorf("%w: tpm: quote %d: %d PCRs; a bank has 24", ErrRefused, i, len(q.PCRs))
		}
		pcrs := make([]attest.PCR, 0, len(q.PCRs))
		for idx, d := range q.PCRs {
			if idx < 0 || idx > 23 || len(d) != h.Size() {
				return Result{}, fmt.Errorf("%w: tpm: quote %d: PCR %d: not a %s PCR", ErrRefused, i, idx, q.Bank)
			}
			pcrs = append(pcrs, attest.PCR{Index: idx, Digest: d, DigestAlg: h})
		}
		if err := verifyQuote(ak, attest.Quote{Quote: q.Quote, Signature: q.Signature}, pcrs, nonce); err != nil {
			return Result{}, fmt.Errorf("%w: tpm: EK sha256:%s: quote %d (%s): %v", ErrRefused, st.ekHash, i, q.Bank, err)
		}
		verified[q.Bank] = q.PCRs
	}
	if err := v.checkPCRs(verified); err != nil {
		return Result{}, fmt.Errorf("%w: tpm: EK sha256:%s: %v", ErrRefused, st.ekHash, err)
	}
	sel := []store.Selector{{Type: TPMAttestor, Value: "ek:" + st.ekHash}}
	if st.ekRoot != "" {
		sel = append(sel, store.Selector{Type: TPMAttestor, Value: "ek_ca:fingerprint:" + st.ekRoot})
	}
	if len(v.PCRs) > 0 {
		sel = append(sel, PCRsVerified)
	}
	return Result{Selectors: sel, Identity: sel[0]}, nil
}

// verifyQuote checks a quote's signature, nonce and PCR digest (every
// PCR given must be covered by it); it refuses rather than crash on
// structures go-tpm's decoders cannot take.
func verifyQuote(ak *attest.AKPublic, q attest.Quote, pcrs []attest.PCR, nonce []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed TPM structure (%v)", r)
		}
	}()
	if len(q.Quote) == 0 {
		return errors.New("no quote")
	}
	if err := ak.VerifyAll([]attest.Quote{q}, pcrs, nonce); err != nil {
		return err
	}
	// VerifyAll accepts a quote covering fewer PCRs than given only if
	// each given one is covered; a PCR the node left out is simply
	// absent, which checkPCRs refuses when the policy names it.
	return nil
}

// checkPCRs checks quoted PCR values against the allow list.
func (v *TPMVerifier) checkPCRs(got map[string]map[int][]byte) error {
	for _, bank := range v.PCRs.banks() {
		for idx, allowed := range v.PCRs[bank] {
			d, ok := got[bank][idx]
			if !ok {
				return fmt.Errorf("PCR %s:%d is in the PCR allow list but the quote does not cover it", bank, idx)
			}
			if !slices.ContainsFunc(allowed, func(a []byte) bool { return bytes.Equal(a, d) }) {
				return fmt.Errorf("PCR %s:%d is %x, which node.tpm_attestation.pcrs does not allow", bank, idx, d)
			}
		}
	}
	return nil
}

// LoadTPMVerifier builds the verifier from writ.yaml's settings: EK
// hashes (hex), a PEM bundle of EK manufacturer CAs (optional) and the
// PCR allow list.
func LoadTPMVerifier(ekHashes []string, ekCA string, pcrs map[string]map[int][]string) (*TPMVerifier, error) {
	v := &TPMVerifier{EKHashes: map[string]bool{}}
	for _, h := range ekHashes {
		h = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(h), "sha256:"))
		if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("ek_hashes: %q is not a hex SHA-256 (writ node tpm ek prints a TPM's)", h)
		}
		v.EKHashes[h] = true
	}
	if ekCA != "" {
		b, err := os.ReadFile(ekCA)
		if err != nil {
			return nil, fmt.Errorf("ek_ca: %w", err)
		}
		v.EKRoots = x509.NewCertPool()
		if !v.EKRoots.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("ek_ca %s: no PEM certificate in it", ekCA)
		}
	}
	if len(v.EKHashes) == 0 && v.EKRoots == nil {
		return nil, errors.New("set ek_hashes or ek_ca: a TPM attestor that admits no EK admits no node")
	}
	var err error
	if v.PCRs, err = ParsePCRPolicy(pcrs); err != nil {
		return nil, err
	}
	return v, nil
}

// TPMProver proves a node with its TPM 2.0 (go-attestation over the same
// connection writ's TPM key provider uses: a device or swtpm over TCP).
// It creates a fresh AK for every join; the EK is the TPM's RSA EK.
type TPMProver struct {
	Config keys.TPMConfig

	mu      sync.Mutex
	pending *tpmSession
}

type tpmSession struct {
	nonce []byte
	tpm   *attest.TPM
	ak    *attest.AK
}

func (s *tpmSession) close() {
	if s.ak != nil {
		s.ak.Close(s.tpm)
	}
	s.tpm.Close()
}

// channel adapts a go-tpm transport to go-attestation's command channel
// (io.ReadWriter carrying one command and its response). go-tpm's own
// transport.ToReadWriter returns io.EOF with the last bytes of a
// response, which go-tpm's legacy command runner, under go-attestation,
// takes for an error.
type channel struct {
	t    transport.TPMCloser
	resp []byte
}

func (c *channel) Write(p []byte) (int, error) {
	r, err := c.t.Send(p)
	if err != nil {
		return 0, err
	}
	c.resp = r
	return len(p), nil
}

func (c *channel) Read(p []byte) (int, error) {
	if len(c.resp) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.resp)
	c.resp = c.resp[n:]
	return n, nil
}

func (c *channel) Close() error { return c.t.Close() }
func (*channel) MeasurementLog() ([]byte, error) {
	return nil, errors.New("no measurement log over this channel")
}

// OpenAttestTPM opens the TPM c names for go-attestation.
func OpenAttestTPM(c keys.TPMConfig) (*attest.TPM, error) {
	t, _, err := keys.DialTPM(c, "node.tpm")
	if err != nil {
		return nil, err
	}
	tpm, err := attest.OpenTPM(&attest.OpenConfig{CommandChannel: &channel{t: t}})
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("node.tpm: %v", err)
	}
	return tpm, nil
}

// EK returns the TPM's endorsement key (with its certificate when the
// TPM holds one).
func tpmEK(tpm *attest.TPM) (attest.EK, error) {
	eks, err := tpm.EKs()
	if err != nil {
		return attest.EK{}, fmt.Errorf("read the endorsement key: %v", err)
	}
	if len(eks) == 0 {
		return attest.EK{}, errors.New("the TPM has no endorsement key")
	}
	return eks[0], nil
}

// TPMEKHash returns the EK hash of the TPM c names, as the server's
// ek_hashes lists it.
func TPMEKHash(c keys.TPMConfig) (string, error) {
	tpm, err := OpenAttestTPM(c)
	if err != nil {
		return "", err
	}
	defer tpm.Close()
	ek, err := tpmEK(tpm)
	if err != nil {
		return "", fmt.Errorf("node.tpm: %v", err)
	}
	return EKHash(ek.Public)
}

// Name implements Prover.
func (*TPMProver) Name() string { return TPMAttestor }

// Prove implements Prover: round 1, the EK and a fresh AK. The TPM stays
// open (the AK loaded) until Answer or the next Prove.
func (p *TPMProver) Prove(_ context.Context, ch Challenge) ([]byte, error) {
	p.Abort()
	p.mu.Lock()
	defer p.mu.Unlock()
	tpm, err := OpenAttestTPM(p.Config)
	if err != nil {
		return nil, err
	}
	s := &tpmSession{nonce: ch.Nonce, tpm: tpm}
	ek, err := tpmEK(tpm)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("tpm: %v", err)
	}
	ekDER, err := x509.MarshalPKIXPublicKey(ek.Public)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("tpm: EK: %v", err)
	}
	if s.ak, err = tpm.NewAK(&attest.AKConfig{Algorithm: attest.ECDSA}); err != nil {
		s.close()
		return nil, fmt.Errorf("tpm: create an attestation key: %v (writ needs the owner hierarchy with an empty authorization)", err)
	}
	ap := s.ak.AttestationParameters()
	b := tpmBegin{EKPublic: ekDER, AK: tpmAK{Public: ap.Public, CreateData: ap.CreateData, CreateAttestation: ap.CreateAttestation, CreateSignature: ap.CreateSignature}}
	if ek.Certificate != nil {
		b.EKCert = ek.Certificate.Raw
	}
	p.pending = s
	return json.Marshal(b)
}

// Abort implements ActivationProver: it closes the TPM and the AK of an
// attestation the server refused after round 1.
func (p *TPMProver) Abort() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending != nil {
		p.pending.close()
		p.pending = nil
	}
}

// Answer implements ActivationProver: round 2, the activated secret and
// the quotes over Binding(ch).
func (p *TPMProver) Answer(_ context.Context, ch Challenge, challenge []byte) ([]byte, error) {
	p.mu.Lock()
	s := p.pending
	p.pending = nil
	p.mu.Unlock()
	if s == nil || !bytes.Equal(s.nonce, ch.Nonce) {
		if s != nil {
			s.close()
		}
		return nil, errors.New("tpm: no attestation under way for this challenge")
	}
	defer s.close()
	var c tpmChallenge
	if err := json.Unmarshal(challenge, &c); err != nil {
		return nil, fmt.Errorf("tpm: the server's challenge: %v", err)
	}
	secret, err := s.ak.ActivateCredential(s.tpm, attest.EncryptedCredential{Credential: c.Credential, Secret: c.Secret})
	if err != nil {
		return nil, fmt.Errorf("tpm: activate the server's credential: %v", err)
	}
	a := tpmAnswer{Secret: secret}
	nonce := Binding(ch)
	for _, bank := range c.Banks {
		_, alg, err := bankHash(bank)
		if err != nil {
			return nil, fmt.Errorf("tpm: the server asked for %v", err)
		}
		pcrs, err := s.tpm.PCRs(alg)
		if err != nil {
			return nil, fmt.Errorf("tpm: read the %s PCRs: %v", bank, err)
		}
		q, err := s.ak.Quote(s.tpm, nonce, alg)
		if err != nil {
			return nil, fmt.Errorf("tpm: quote the %s PCRs: %v", bank, err)
		}
		m := make(map[int][]byte, len(pcrs))
		for _, pc := range pcrs {
			m[pc.Index] = pc.Digest
		}
		a.Quotes = append(a.Quotes, tpmQuote{Bank: bank, Quote: q.Quote, Signature: q.Signature, PCRs: m})
	}
	return json.Marshal(a)
}
