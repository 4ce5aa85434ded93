// Package nodeattest is how a writ node proves to a server which host it
// is, before the server issues it a node SVID. It defines the plugin point
// every node attestor fills — a [Verifier] on the server and a [Prover] on
// the node, paired by name — and the built-in attestors: single-use join
// tokens ([JoinTokens], "join_token"), x509pop ([X509PoP], "x509pop": a
// machine certificate chaining to a configured CA proves the node by
// signing the server's nonce) and tpm ([TPMVerifier], "tpm": credential
// activation of the TPM's endorsement key in two rounds, see
// [Activator]).
//
// # The handshake
//
// The node asks the server for a [Challenge]: a fresh random nonce. It
// generates the key pair of its node SVID, and its prover produces a
// payload over the challenge and that public key ([Binding]). The server's
// [Verifiers] dispatches the payload to the verifier of the same name,
// which returns the node's name and selectors, or an error. A payload is
// therefore good once, for one key: replaying it for another key or
// another nonce fails.
//
// # Gated issuance
//
// An entry's selectors of type [GateType] ("node:attestor:x509pop",
// "node:x509pop:subject:cn:host-1") must be carried by the attestation of
// the node that asks for its SVID ([Gates], [Required], [Satisfied]); the
// server checks it before signing.
//
// # Adding an attestor
//
// To add one: write a type implementing
// [Verifier] (server side) and one implementing [Prover] (node side) with
// the same Name, e.g. "tpm"; decode the payload strictly and refuse
// anything unexpected with an error naming what was wrong (the error
// reaches the node's operator; never put a secret in it); bind the
// evidence to [Binding] of the challenge (for a TPM: the quote's
// qualifying data); return a [Result] whose Name the evidence vouches for
// (or "" to take the node's requested name) and selectors prefixed by the
// attestor's name. An attestor that needs a challenge of its own (the
// TPM's credential activation) also implements [Activator] and
// [ActivationProver]: the node API runs its first round and keeps the
// state it returns with the nonce. Register the verifier in the server's
// [Verifiers]
// (internal/node/nodeserver composes them from config) and the prover in
// the node's choice of prover (internal/node). Add a fuzz test of the
// payload decoder. Nothing else changes: the node API, SVIDs, eviction and
// the audit events are the same for every attestor.
package nodeattest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"sort"

	"github.com/writ-dev/writ/internal/store"
)

// NonceSize is the size of a challenge nonce in bytes.
const NonceSize = 32

// Challenge is what a node's evidence must be bound to.
type Challenge struct {
	// Nonce is the server's fresh random nonce (NonceSize bytes).
	Nonce []byte
	// Key is the PKIX DER encoding of the public key the node wants its
	// node SVID for.
	Key []byte
}

// NewNonce returns a fresh random nonce.
func NewNonce() []byte {
	b := make([]byte, NonceSize)
	rand.Read(b) // never fails (crypto/rand)
	return b
}

// Binding returns the digest evidence signs or quotes: SHA-256 over a
// domain separator, the nonce and the key.
func Binding(ch Challenge) []byte {
	h := sha256.New()
	h.Write([]byte("writ node attestation v1\x00"))
	h.Write(ch.Nonce)
	h.Write(ch.Key)
	return h.Sum(nil)
}

// Request is one attestation as the server sees it.
type Request struct {
	Challenge
	// Attestor names the verifier ("join_token", "x509pop", ...).
	Attestor string
	// Payload is the prover's evidence.
	Payload []byte
	// Name is the name the node asked for; an attestor may override it.
	Name string
	// State is what an [Activator]'s Begin returned for this nonce (two
	// rounds); nil for one-round attestors.
	State any
}

// Result is what a verifier vouches for.
type Result struct {
	// Name is the node's name when the evidence names it; "" to take the
	// node's requested name.
	Name      string
	Selectors []store.Selector
	// Vouched is set by [Verifiers.Verify] when the evidence named the
	// node (rather than the node choosing its name): only such evidence
	// may take over the name of a node that is attested already.
	Vouched bool
	// Identity, when set, is the selector of a hardware identity (a TPM's
	// EK): a node attested again with the same attestor and identity may
	// keep its name (a restarted host), another may not take it.
	Identity store.Selector
}

// Verifier checks one kind of node evidence on the server.
type Verifier interface {
	// Name is the attestor's name, as the node's prover sends it.
	Name() string
	// Verify checks req.Payload against req.Challenge. name is the name
	// the node will get if the evidence does not set one (already
	// validated). An error means the node is refused; its text reaches
	// the node.
	Verify(ctx context.Context, req Request) (Result, error)
}

// Prover produces one kind of node evidence on the node.
type Prover interface {
	Name() string
	// Prove returns the payload for ch.
	Prove(ctx context.Context, ch Challenge) ([]byte, error)
}

// ErrRefused wraps every verification failure.
var ErrRefused = errors.New("node attestation refused")

// Verifiers dispatches attestations to the verifier of their attestor's
// name. The zero value refuses everything.
type Verifiers struct {
	m map[string]Verifier
}

// NewVerifiers returns the set of vs; two verifiers of one name are an
// error.
func NewVerifiers(vs ...Verifier) (*Verifiers, error) {
	s := &Verifiers{m: map[string]Verifier{}}
	for _, v := range vs {
		if _, dup := s.m[v.Name()]; dup {
			return nil, fmt.Errorf("node attestor %q configured twice", v.Name())
		}
		s.m[v.Name()] = v
	}
	return s, nil
}

// Names returns the configured attestors' names, sorted.
func (s *Verifiers) Names() []string {
	out := make([]string, 0, len(s.m))
	for n := range s.m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// CheckName reports whether name can be a node name: 1 to 63 lower-case
// letters, digits, '.', '_' or '-', starting with a letter or digit (it
// becomes a SPIFFE ID path segment).
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("node name %q: use 1 to 63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// Verify checks req with the verifier it names and returns the node's
// final name and selectors.
func (s *Verifiers) Verify(ctx context.Context, req Request) (Result, error) {
	v, ok := s.m[req.Attestor]
	if !ok {
		return Result{}, fmt.Errorf("%w: attestor %q is not configured on this server (configured: %v)", ErrRefused, req.Attestor, s.Names())
	}
	if len(req.Nonce) != NonceSize || len(req.Key) == 0 {
		return Result{}, fmt.Errorf("%w: malformed challenge", ErrRefused)
	}
	if req.Name != "" {
		if err := CheckName(req.Name); err != nil {
			return Result{}, fmt.Errorf("%w: %v", ErrRefused, err)
		}
	}
	res, err := v.Verify(ctx, req)
	if err != nil {
		if errors.Is(err, ErrRefused) {
			return Result{}, err
		}
		return Result{}, fmt.Errorf("%w: %s: %v", ErrRefused, req.Attestor, err)
	}
	res.Vouched = res.Name != ""
	if !res.Vouched {
		res.Name = req.Name
	}
	if err := CheckName(res.Name); err != nil {
		return Result{}, fmt.Errorf("%w: %s: %v", ErrRefused, req.Attestor, err)
	}
	return res, nil
}
