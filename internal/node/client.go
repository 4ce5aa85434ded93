package node

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/node/nodeattest"
)

// client is the node's client of the node API. It trusts the server's
// X.509-SVID (spiffe://TD/writ/server) against the bundle it holds and
// presents its node SVID once it has one.
type client struct {
	// bases are the servers' node APIs, tried in turn: a call that
	// cannot reach one (a network error, not a refusal) goes to the next.
	bases    []string
	cur      atomic.Int32 // index in bases of the server in use
	td       spiffeid.TrustDomain
	serverID spiffeid.ID
	dir      string // where the node SVID is kept

	mu     sync.RWMutex
	bundle *spiffebundle.Bundle
	svid   *x509svid.SVID

	hc     *http.Client // calls with the node SVID (with a timeout)
	stream *http.Client // the change stream (no timeout)
	anon   *http.Client // the join, without a client certificate
	tr     *http.Transport
}

func newClient(bases []string, td spiffeid.TrustDomain, dir string) *client {
	c := &client{td: td, serverID: spiffeid.RequireFromPath(td, "/writ/server"), dir: dir}
	for _, b := range bases {
		c.bases = append(c.bases, strings.TrimSuffix(b, "/"))
	}
	newTransport := func() *http.Transport {
		return &http.Transport{ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second, MaxIdleConnsPerHost: 4}
	}
	// The TLS configurations' certificate and roots follow the node's
	// current SVID and bundle. Connections made before the node had an
	// SVID (the join) are never reused for calls that need one.
	c.tr = newTransport()
	c.tr.TLSClientConfig = tlsconfig.MTLSClientConfig(c, c, tlsconfig.AuthorizeID(c.serverID))
	c.hc = &http.Client{Transport: c.tr, Timeout: 30 * time.Second}
	c.stream = &http.Client{Transport: c.tr}
	anon := newTransport()
	anon.TLSClientConfig = tlsconfig.TLSClientConfig(c, tlsconfig.AuthorizeID(c.serverID))
	c.anon = &http.Client{Transport: anon, Timeout: 30 * time.Second}
	return c
}

// base is the node API of the server in use; at is its index.
func (c *client) base() (url string, at int32) {
	at = c.cur.Load()
	return c.bases[at], at
}

// failover moves to the next server if the one at index from is still
// the one in use (concurrent failures move once), and reports whether
// there is another server to move to.
func (c *client) failover(from int32) bool {
	if len(c.bases) < 2 {
		return false
	}
	c.cur.CompareAndSwap(from, (from+1)%int32(len(c.bases)))
	return true
}

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (c *client) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.bundle == nil || td != c.td {
		return nil, fmt.Errorf("no trust bundle for %s (configure node.server_bundle)", td)
	}
	return c.bundle.X509Bundle(), nil
}

// GetX509SVID implements x509svid.Source.
func (c *client) GetX509SVID() (*x509svid.SVID, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.svid == nil {
		return nil, errors.New("the node has no SVID yet")
	}
	return c.svid, nil
}

func (c *client) setBundle(b *spiffebundle.Bundle) {
	c.mu.Lock()
	c.bundle = b
	c.mu.Unlock()
}

func (c *client) currentSVID() *x509svid.SVID {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.svid
}

// loadBundleFile reads a SPIFFE bundle document or PEM CA certificates.
func loadBundleFile(td spiffeid.TrustDomain, path string) (*spiffebundle.Bundle, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("node.server_bundle: %w", err)
	}
	if bytes.Contains(b, []byte("-----BEGIN")) {
		xb, err := x509bundle.Parse(td, b)
		if err != nil {
			return nil, fmt.Errorf("node.server_bundle %s: %w", path, err)
		}
		return spiffebundle.FromX509Bundle(xb), nil
	}
	sb, err := spiffebundle.Parse(td, b)
	if err != nil {
		return nil, fmt.Errorf("node.server_bundle %s: not PEM certificates nor a SPIFFE bundle document: %w", path, err)
	}
	return sb, nil
}

// svidFile is where the node keeps its SVID (chain and key, PEM, 0600).
func (c *client) svidFile() string { return filepath.Join(c.dir, "node-svid.pem") }

// loadSVID reads the stored node SVID; nil without error when there is
// none.
func (c *client) loadSVID() (*x509svid.SVID, error) {
	b, err := os.ReadFile(c.svidFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s, err := x509svid.ParseRaw(pemBlocks(b, "CERTIFICATE"), pemBlocks(b, "PRIVATE KEY"))
	if err != nil {
		return nil, fmt.Errorf("node SVID %s: %w (remove it and join again)", c.svidFile(), err)
	}
	return s, nil
}

func pemBlocks(b []byte, typ string) []byte {
	var out []byte
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		if blk.Type == typ {
			out = append(out, blk.Bytes...)
		}
	}
}

func (c *client) saveSVID(key crypto.Signer, chain []*x509.Certificate) (*x509svid.SVID, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	var out []byte
	var raw []byte
	for _, crt := range chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: crt.Raw})...)
		raw = append(raw, crt.Raw...)
	}
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...)
	s, err := x509svid.ParseRaw(raw, der)
	if err != nil {
		return nil, fmt.Errorf("node SVID from the server: %w", err)
	}
	tmp := c.svidFile() + ".tmp"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, c.svidFile()); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.svid = s
	c.mu.Unlock()
	// New connections present the new SVID.
	c.tr.CloseIdleConnections()
	return s, nil
}

// call POSTs (or GETs, with a nil body) JSON and decodes the answer into
// out (unless nil).
func (c *client) call(ctx context.Context, method, path string, body, out any) error {
	return c.callWith(ctx, c.hc, method, path, body, out)
}

// callWith makes the call on the server in use and, when that server
// cannot be reached, on each other server in turn.
func (c *client) callWith(ctx context.Context, hc *http.Client, method, path string, body, out any) error {
	var raw []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		raw = b
	}
	var err error
	for range c.bases {
		base, at := c.base()
		var retry bool
		if retry, err = c.callOnce(ctx, hc, base, method, path, raw, out); !retry || ctx.Err() != nil || !c.failover(at) {
			return err
		}
	}
	return err
}

// callOnce makes the call on the server at base; retry reports a failure
// to reach it (another server may answer).
func (c *client) callOnce(ctx context.Context, hc *http.Client, base, method, path string, raw []byte, out any) (retry bool, err error) {
	var rd io.Reader
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return true, fmt.Errorf("%s %s%s: %w", method, base, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		// A server that is shutting down or has lost its store answers
		// 5xx: another may serve.
		return resp.StatusCode >= 500, &serverError{code: resp.StatusCode, msg: strings.TrimSpace(string(msg)), path: path}
	}
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return false, nil
	}
	return false, json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out)
}

// serverError is a refusal of the server.
type serverError struct {
	code int
	msg  string
	path string
}

func (e *serverError) Error() string {
	return fmt.Sprintf("server refused %s (%d): %s", e.path, e.code, e.msg)
}

// refused reports whether err is the server refusing this node (not a
// network failure): an evicted node, a used token.
func refused(err error) bool {
	var se *serverError
	return errors.As(err, &se) && se.code == http.StatusForbidden
}

func newKey() (*ecdsa.PrivateKey, []byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return k, der, err
}

func parseChain(ders [][]byte) ([]*x509.Certificate, error) {
	if len(ders) == 0 {
		return nil, errors.New("empty certificate chain")
	}
	out := make([]*x509.Certificate, len(ders))
	for i, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i, err)
		}
		out[i] = c
	}
	return out, nil
}

// join attests the node with prover and stores the node SVID.
func (c *client) join(ctx context.Context, prover nodeattest.Prover, name string) (*x509svid.SVID, error) {
	var ch nodeapi.Challenge
	if err := c.callWith(ctx, c.anon, http.MethodPost, nodeapi.PathChallenge, struct{}{}, &ch); err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	key, pub, err := newKey()
	if err != nil {
		return nil, err
	}
	nch := nodeattest.Challenge{Nonce: ch.Nonce, Key: pub}
	payload, err := prover.Prove(ctx, nch)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	if ap, ok := prover.(nodeattest.ActivationProver); ok {
		// Two rounds: the first payload earns the attestor's challenge,
		// whose answer is the evidence.
		var act nodeapi.ActivateAnswer
		if err := c.callWith(ctx, c.anon, http.MethodPost, nodeapi.PathActivate, nodeapi.AttestRequest{Nonce: ch.Nonce, PublicKey: pub,
			Attestor: prover.Name(), Payload: payload, Name: name}, &act); err != nil {
			ap.Abort()
			return nil, fmt.Errorf("join: %w", err)
		}
		if payload, err = ap.Answer(ctx, nch, act.Challenge); err != nil {
			return nil, fmt.Errorf("join: %w", err)
		}
	}
	var ans nodeapi.SVIDAnswer
	if err := c.callWith(ctx, c.anon, http.MethodPost, nodeapi.PathAttest, nodeapi.AttestRequest{Nonce: ch.Nonce, PublicKey: pub,
		Attestor: prover.Name(), Payload: payload, Name: name}, &ans); err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	return c.takeSVID(key, ans)
}

// renew gets a fresh node SVID for a new key.
func (c *client) renew(ctx context.Context) (*x509svid.SVID, error) {
	key, pub, err := newKey()
	if err != nil {
		return nil, err
	}
	var ans nodeapi.SVIDAnswer
	if err := c.call(ctx, http.MethodPost, nodeapi.PathRenew, nodeapi.RenewRequest{PublicKey: pub}, &ans); err != nil {
		return nil, fmt.Errorf("renew the node SVID: %w", err)
	}
	return c.takeSVID(key, ans)
}

func (c *client) takeSVID(key crypto.Signer, ans nodeapi.SVIDAnswer) (*x509svid.SVID, error) {
	chain, err := parseChain(ans.Chain)
	if err != nil {
		return nil, fmt.Errorf("node SVID from the server: %w", err)
	}
	if len(ans.Bundle) > 0 {
		b, err := spiffebundle.Parse(c.td, ans.Bundle)
		if err != nil {
			return nil, fmt.Errorf("bundle from the server: %w", err)
		}
		c.setBundle(b)
	}
	return c.saveSVID(key, chain)
}
