package nodeserver

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/ca"
	"github.com/writ-dev/writ/internal/node/nodeapi"
	"github.com/writ-dev/writ/internal/node/nodeattest"
	"github.com/writ-dev/writ/internal/store"
)

// Authority signs SVIDs for nodes and their workloads.
type Authority interface {
	SignX509SVID(ctx context.Context, p ca.X509SVIDParams) ([]*x509.Certificate, error)
	SignJWTSVID(ctx context.Context, p ca.JWTSVIDParams) (string, time.Time, error)
}

// Config configures the node API.
type Config struct {
	TrustDomain spiffeid.TrustDomain
	Registry    *Registry
	Verifiers   *nodeattest.Verifiers
	Authority   Authority
	Publisher   *Publisher
	Store       store.NodeStore
	// Audit receives the events nodes send (deduplicated by event id).
	Audit   audit.Emitter
	Emitter audit.Emitter
	// Discovery serves the runtime sensors of nodes (what they need, and
	// the inventories they report); optional: without it both paths
	// answer 501.
	Discovery Discovery
	// MCP and Approvals serve the MCP gateways of nodes (tool checks
	// against the deployment's pins, upstream credentials, approvals of
	// held calls); optional: without them those paths answer 501.
	MCP       MCP
	Approvals Approvals
	Log       *slog.Logger
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// NodeSVIDTTL is the lifetime of a node SVID; default 1h.
	NodeSVIDTTL time.Duration
	// Heartbeat is how often an idle stream carries a heartbeat; default
	// 5s.
	Heartbeat time.Duration
}

// API serves the node API. Mount [API.Register] on a mux served over
// TLS with client certificates verified against the trust bundle.
type API struct {
	c Config

	nonceMu sync.Mutex
	nonces  map[string]*pending // outstanding challenges

	ackMu sync.Mutex
	acks  map[string]int64 // attestation id -> acked seq

	done     chan struct{} // closed by End
	doneOnce sync.Once

	// lines holds recent changes encoded as stream lines, by sequence:
	// a change is encoded once for every stream that sends it.
	linesMu sync.Mutex
	lines   map[int64][]byte
}

// maxLines bounds the encoded changes kept (the hub's ring size).
const maxLines = hubRing

// changeLine returns c encoded as a stream line, encoding it once.
func (a *API) changeLine(c *store.Change) ([]byte, error) {
	a.linesMu.Lock()
	if l, ok := a.lines[c.Seq]; ok {
		a.linesMu.Unlock()
		return l, nil
	}
	a.linesMu.Unlock()
	l, err := json.Marshal(nodeapi.Message{Type: nodeapi.MsgChange, Seq: c.Seq, Change: c})
	if err != nil {
		return nil, err
	}
	l = append(l, '\n')
	a.linesMu.Lock()
	defer a.linesMu.Unlock()
	if a.lines == nil || len(a.lines) >= maxLines {
		// Dropped wholesale: the next changes are encoded afresh.
		a.lines = make(map[int64][]byte, 256)
	}
	a.lines[c.Seq] = l
	return l, nil
}

// End ends every open stream (before the HTTP server shuts down, which
// would otherwise wait for them).
func (a *API) End() { a.doneOnce.Do(func() { close(a.done) }) }

// NewAPI returns the node API of c.
func NewAPI(c Config) (*API, error) {
	if c.Registry == nil || c.Verifiers == nil || c.Authority == nil || c.Publisher == nil || c.Store == nil {
		return nil, errors.New("node API: registry, verifiers, authority, publisher and store are required")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Emitter == nil {
		c.Emitter = audit.Discard
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NodeSVIDTTL <= 0 {
		c.NodeSVIDTTL = time.Hour
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 5 * time.Second
	}
	return &API{c: c, nonces: map[string]*pending{}, acks: map[string]int64{}, done: make(chan struct{})}, nil
}

// Register mounts the node API on mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST "+nodeapi.PathChallenge, a.tlsOnly(a.challenge))
	mux.HandleFunc("POST "+nodeapi.PathAttest, a.tlsOnly(a.attest))
	mux.HandleFunc("POST "+nodeapi.PathActivate, a.tlsOnly(a.activate))
	mux.HandleFunc("POST "+nodeapi.PathRenew, a.node(a.renew))
	mux.HandleFunc("POST "+nodeapi.PathX509SVID, a.node(a.x509SVID))
	mux.HandleFunc("POST "+nodeapi.PathJWTSVID, a.node(a.jwtSVID))
	mux.HandleFunc("GET "+nodeapi.PathStream, a.node(a.stream))
	mux.HandleFunc("POST "+nodeapi.PathAck, a.node(a.ack))
	mux.HandleFunc("POST "+nodeapi.PathAudit, a.node(a.audit))
	mux.HandleFunc("GET "+nodeapi.PathDiscovery, a.node(a.discoveryConfig))
	mux.HandleFunc("POST "+nodeapi.PathInventory, a.node(a.inventory))
	a.registerMCP(mux)
}

// nodeID is an authenticated node.
type nodeID struct {
	name, attestation string
	id                spiffeid.ID
}

func fail(w http.ResponseWriter, code int, format string, args ...any) {
	http.Error(w, fmt.Sprintf(format, args...), code)
}

func (a *API) tlsOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			fail(w, http.StatusForbidden, "the node API is served over HTTPS only (server.tls_listen)")
			return
		}
		h(w, r)
	}
}

// node authenticates the caller by its node SVID: a certificate the TLS
// layer verified against the bundle, for spiffe://TD/writ/node/NAME, whose
// attestation (subject serialNumber) is the node's current one.
func (a *API) node(h func(http.ResponseWriter, *http.Request, nodeID)) http.HandlerFunc {
	return a.tlsOnly(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 {
			fail(w, http.StatusUnauthorized, "no node SVID: present the node's X.509-SVID (join first)")
			return
		}
		leaf := r.TLS.PeerCertificates[0]
		id, err := x509svid.IDFromCert(leaf)
		if err != nil {
			fail(w, http.StatusUnauthorized, "client certificate: %v", err)
			return
		}
		segs := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
		if id.TrustDomain() != a.c.TrustDomain || len(segs) != 3 || segs[0] != "writ" || segs[1] != "node" {
			fail(w, http.StatusForbidden, "%s is not a node SVID of %s", id, a.c.TrustDomain)
			return
		}
		n := nodeID{name: segs[2], attestation: leaf.Subject.SerialNumber, id: id}
		if !a.c.Registry.Check(r.Context(), n.name, n.attestation) {
			fail(w, http.StatusForbidden, "node %s was evicted or attested again; join again with a new join token", n.name)
			return
		}
		h(w, r, n)
	})
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(w, http.StatusBadRequest, "request body: %v", err)
		return false
	}
	return true
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// maxNonces bounds outstanding challenges (a flood of challenge requests
// cannot grow memory without bound).
const maxNonces = 10_000

// challengeTTL is how long a challenge (and a credential activation
// begun on it) stays answerable.
const challengeTTL = time.Minute

// pending is an outstanding challenge. A two-round attestation keeps its
// first round's state here, in memory: a server restart between the
// rounds loses it and the node simply joins again (its next challenge
// starts over), which is why nothing is stored.
type pending struct {
	expires time.Time
	// Set by the first round of a two-round attestor: its state, and
	// the attestor and key the second round must repeat.
	begun    bool
	attestor string
	key      []byte
	state    any
}

func (a *API) challenge(w http.ResponseWriter, r *http.Request) {
	n := nodeattest.NewNonce()
	now := a.c.Now()
	a.nonceMu.Lock()
	for k, p := range a.nonces {
		if now.After(p.expires) {
			delete(a.nonces, k)
		}
	}
	if len(a.nonces) >= maxNonces {
		a.nonceMu.Unlock()
		fail(w, http.StatusServiceUnavailable, "too many joins in progress; retry shortly")
		return
	}
	a.nonces[string(n)] = &pending{expires: now.Add(challengeTTL)}
	a.nonceMu.Unlock()
	reply(w, nodeapi.Challenge{Nonce: n})
}

// takeNonce consumes an outstanding, unexpired challenge; a challenge on
// which a first round was begun must be answered with the same attestor
// and key. It returns the first round's state.
func (a *API) takeNonce(n []byte, attestor string, key []byte) (any, error) {
	a.nonceMu.Lock()
	defer a.nonceMu.Unlock()
	p, ok := a.nonces[string(n)]
	delete(a.nonces, string(n))
	if !ok || a.c.Now().After(p.expires) {
		return nil, errors.New("nonce: unknown, used or expired; ask for a new challenge")
	}
	if p.begun && (p.attestor != attestor || !slices.Equal(p.key, key)) {
		return nil, errors.New("nonce: its first round was for another attestor or public key; ask for a new challenge")
	}
	return p.state, nil
}

// beginNonce marks an outstanding challenge as begun by a first round;
// a challenge has one first round only.
func (a *API) beginNonce(n []byte, attestor string, key []byte) error {
	a.nonceMu.Lock()
	defer a.nonceMu.Unlock()
	p, ok := a.nonces[string(n)]
	if !ok || a.c.Now().After(p.expires) {
		delete(a.nonces, string(n))
		return errors.New("nonce: unknown, used or expired; ask for a new challenge")
	}
	if p.begun {
		delete(a.nonces, string(n))
		return errors.New("nonce: a credential activation was begun on it already; ask for a new challenge")
	}
	p.begun, p.attestor, p.key = true, attestor, slices.Clone(key)
	return nil
}

// setState records the first round's state on a begun challenge (if it
// is still outstanding) and reports whether it is.
func (a *API) setState(n []byte, st any) bool {
	a.nonceMu.Lock()
	defer a.nonceMu.Unlock()
	p, ok := a.nonces[string(n)]
	if ok {
		p.state = st
	}
	return ok
}

// dropNonce forgets a challenge whose first round failed.
func (a *API) dropNonce(n []byte) {
	a.nonceMu.Lock()
	delete(a.nonces, string(n))
	a.nonceMu.Unlock()
}

// refused records and answers a refused attestation.
func (a *API) refused(w http.ResponseWriter, r *http.Request, req nodeapi.AttestRequest, err error) {
	a.c.Emitter.Emit(r.Context(), audit.Event{Type: audit.NodeRefused, Node: req.Name, Source: r.RemoteAddr, Reason: err.Error(),
		Details: map[string]string{"attestor": req.Attestor}})
	if errors.Is(err, nodeattest.ErrRefused) {
		fail(w, http.StatusForbidden, "%v", err)
		return
	}
	a.c.Log.Error("node attestation", "error", err)
	fail(w, http.StatusInternalServerError, "node attestation failed on the server; see its log")
}

// activate serves the first round of a two-round attestor.
func (a *API) activate(w http.ResponseWriter, r *http.Request) {
	var req nodeapi.AttestRequest
	if !decode(w, r, &req) {
		return
	}
	if _, err := x509.ParsePKIXPublicKey(req.PublicKey); err != nil {
		fail(w, http.StatusBadRequest, "public_key: not a PKIX public key: %v", err)
		return
	}
	if err := a.beginNonce(req.Nonce, req.Attestor, req.PublicKey); err != nil {
		fail(w, http.StatusForbidden, "%v", err)
		return
	}
	ch, st, err := a.c.Verifiers.Begin(r.Context(), nodeattest.Request{Challenge: nodeattest.Challenge{Nonce: req.Nonce, Key: req.PublicKey},
		Attestor: req.Attestor, Payload: req.Payload, Name: req.Name})
	if err != nil {
		a.dropNonce(req.Nonce)
		a.refused(w, r, req, err)
		return
	}
	if !a.setState(req.Nonce, st) {
		fail(w, http.StatusForbidden, "nonce: expired during the first round; ask for a new challenge")
		return
	}
	reply(w, nodeapi.ActivateAnswer{Challenge: ch})
}

func (a *API) attest(w http.ResponseWriter, r *http.Request) {
	var req nodeapi.AttestRequest
	if !decode(w, r, &req) {
		return
	}
	pub, err := x509.ParsePKIXPublicKey(req.PublicKey)
	if err != nil {
		fail(w, http.StatusBadRequest, "public_key: not a PKIX public key: %v", err)
		return
	}
	st, err := a.takeNonce(req.Nonce, req.Attestor, req.PublicKey)
	if err != nil {
		fail(w, http.StatusForbidden, "%v", err)
		return
	}
	ctx := r.Context()
	res, err := a.c.Verifiers.Verify(ctx, nodeattest.Request{Challenge: nodeattest.Challenge{Nonce: req.Nonce, Key: req.PublicKey},
		Attestor: req.Attestor, Payload: req.Payload, Name: req.Name, State: st})
	var n store.Node
	if err == nil {
		n, err = a.c.Registry.Attested(ctx, res, req.Attestor)
	}
	if err != nil {
		a.refused(w, r, req, err)
		return
	}
	a.issueNodeSVID(w, r, n.Name, n.ID, pub)
}

func (a *API) issueNodeSVID(w http.ResponseWriter, r *http.Request, name, attestation string, pub any) {
	chain, err := a.c.Authority.SignX509SVID(r.Context(), ca.X509SVIDParams{ID: a.c.Registry.SpiffeID(name), PublicKey: pub,
		TTL: a.c.NodeSVIDTTL, Instance: attestation})
	if err != nil {
		a.c.Log.Error("sign node SVID", "node", name, "error", err)
		fail(w, http.StatusInternalServerError, "sign the node SVID failed on the server; see its log")
		return
	}
	reply(w, nodeapi.SVIDAnswer{Name: name, Chain: ders(chain), Bundle: a.c.Publisher.BundleDoc()})
}

func ders(chain []*x509.Certificate) [][]byte {
	out := make([][]byte, len(chain))
	for i, c := range chain {
		out[i] = c.Raw
	}
	return out
}

func (a *API) renew(w http.ResponseWriter, r *http.Request, n nodeID) {
	var req nodeapi.RenewRequest
	if !decode(w, r, &req) {
		return
	}
	pub, err := x509.ParsePKIXPublicKey(req.PublicKey)
	if err != nil {
		fail(w, http.StatusBadRequest, "public_key: not a PKIX public key: %v", err)
		return
	}
	a.issueNodeSVID(w, r, n.name, n.attestation, pub)
}

// authorize checks that node n may get an SVID for id: an entry names it
// whose node selectors n's attestation satisfies, and it is not revoked.
func (a *API) authorize(w http.ResponseWriter, r *http.Request, n nodeID, raw, instance string) (spiffeid.ID, bool) {
	id, err := spiffeid.FromString(raw)
	if err != nil {
		fail(w, http.StatusBadRequest, "spiffe_id %q: %v", raw, err)
		return id, false
	}
	if !a.c.Publisher.Registered(id.String()) {
		fail(w, http.StatusForbidden, "spiffe_id %s: no registration entry names it", id)
		return id, false
	}
	have, err := a.c.Registry.Gates(r.Context(), n.name)
	if err != nil {
		fail(w, http.StatusServiceUnavailable, "node %s: read its attestation: %v", n.name, err)
		return id, false
	}
	if !a.c.Publisher.AllowedOn(id.String(), have) {
		fail(w, http.StatusForbidden, "spiffe_id %s: its entries require node selectors that node %s's attestation (%s) does not carry",
			id, n.name, strings.Join(have, ", "))
		return id, false
	}
	rv := a.c.Publisher.Revocations
	if rv.Revoked(store.RevokeSpiffeID, id.String()) || (instance != "" && rv.Revoked(store.RevokeInstance, instance)) {
		fail(w, http.StatusForbidden, "spiffe_id %s: revoked", id)
		return id, false
	}
	return id, true
}

func (a *API) x509SVID(w http.ResponseWriter, r *http.Request, n nodeID) {
	var req nodeapi.X509SVIDRequest
	if !decode(w, r, &req) {
		return
	}
	id, ok := a.authorize(w, r, n, req.SpiffeID, req.Instance)
	if !ok {
		return
	}
	pub, err := x509.ParsePKIXPublicKey(req.PublicKey)
	if err != nil {
		fail(w, http.StatusBadRequest, "public_key: not a PKIX public key: %v", err)
		return
	}
	chain, err := a.c.Authority.SignX509SVID(r.Context(), ca.X509SVIDParams{ID: id, PublicKey: pub, TTL: req.TTL, Instance: req.Instance})
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	reply(w, nodeapi.SVIDAnswer{Chain: ders(chain)})
}

func (a *API) jwtSVID(w http.ResponseWriter, r *http.Request, n nodeID) {
	var req nodeapi.JWTSVIDRequest
	if !decode(w, r, &req) {
		return
	}
	id, ok := a.authorize(w, r, n, req.SpiffeID, req.Instance)
	if !ok {
		return
	}
	tok, exp, err := a.c.Authority.SignJWTSVID(r.Context(), ca.JWTSVIDParams{ID: id, Audience: req.Audience, TTL: req.TTL, Instance: req.Instance})
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	reply(w, nodeapi.JWTSVIDAnswer{Token: tok, Expires: exp})
}

func (a *API) ack(w http.ResponseWriter, r *http.Request, n nodeID) {
	var req nodeapi.AckRequest
	if !decode(w, r, &req) {
		return
	}
	a.ackMu.Lock()
	if req.Seq > a.acks[n.attestation] {
		a.acks[n.attestation] = req.Seq
	}
	a.ackMu.Unlock()
	if err := a.c.Store.TouchNode(r.Context(), n.attestation, a.c.Now(), req.Seq); err != nil {
		a.c.Log.Warn("record a node's acknowledgement", "node", n.name, "error", err)
	}
	w.WriteHeader(http.StatusNoContent)
}

// Acked returns the highest sequence the node with attestation id
// acknowledged on this server since it started (0 if none).
func (a *API) Acked(attestation string) int64 {
	a.ackMu.Lock()
	defer a.ackMu.Unlock()
	return a.acks[attestation]
}

// stream serves the change stream of one node.
func (a *API) stream(w http.ResponseWriter, r *http.Request, n nodeID) {
	after, err := parseSeq(r.URL.Query().Get("after"))
	if err != nil {
		fail(w, http.StatusBadRequest, "after: %v", err)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		fail(w, http.StatusInternalServerError, "streaming is not supported by this connection")
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	send := func(m nodeapi.Message) bool {
		if err := enc.Encode(m); err != nil {
			return false
		}
		flusher.Flush()
		return true
	}
	ctx := r.Context()
	seq := after
	snapshot := func() bool {
		line, at, err := a.c.Publisher.SnapshotLine()
		if err != nil {
			a.c.Log.Error("encode a snapshot for a node", "node", n.name, "error", err)
			return false
		}
		seq = at
		if _, err := w.Write(line); err != nil {
			return false
		}
		flusher.Flush()
		return true
	}
	if after == 0 && !snapshot() {
		return
	}
	beat := time.NewTicker(a.c.Heartbeat)
	defer beat.Stop()
	for {
		if !a.c.Registry.Current(n.name, n.attestation) {
			return // evicted: the stream ends and the node cannot reconnect
		}
		changes, behind, wake := a.c.Publisher.Hub.since(seq)
		if behind {
			if changes, err = a.fromStore(ctx, seq); err != nil {
				if errors.Is(err, errResync) {
					if !snapshot() {
						return
					}
					continue
				}
				a.c.Log.Warn("read the change feed for a node", "node", n.name, "error", err)
				return
			}
		}
		for _, c := range changes {
			if c.Op == store.ChangeResync {
				if !snapshot() {
					return
				}
				break
			}
			line, err := a.changeLine(&c)
			if err != nil {
				a.c.Log.Error("encode a change for a node", "node", n.name, "seq", c.Seq, "error", err)
				return
			}
			if _, err := w.Write(line); err != nil {
				return
			}
			seq = c.Seq
		}
		if len(changes) > 0 {
			flusher.Flush()
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-a.done:
			return
		case <-wake:
		case <-beat.C:
			if !send(nodeapi.Message{Type: nodeapi.MsgHeartbeat, Seq: seq, Time: a.c.Now()}) {
				return
			}
		}
	}
}

var errResync = errors.New("resync needed")

// fromStore reads the changes after seq from the store for a node the hub
// no longer holds in memory; errResync if the store pruned them.
func (a *API) fromStore(ctx context.Context, seq int64) ([]store.Change, error) {
	oldest, err := a.c.Store.OldestChange(ctx)
	if err != nil {
		return nil, err
	}
	if oldest == 0 || seq+1 < oldest {
		return nil, errResync
	}
	return a.c.Store.ChangesSince(ctx, seq, 512)
}

func parseSeq(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil || n < 0 || fmt.Sprint(n) != s {
		return 0, fmt.Errorf("%q is not a sequence number", s)
	}
	return n, nil
}

// Dedup is the AuditSink over the audit log: an event whose id is in the
// log already (a node resent a batch whose acknowledgement it lost) is
// skipped, so every node event is recorded exactly once.
type Dedup struct {
	Log audit.Emitter
	// Has reports whether the log holds an event with id.
	Has func(ctx context.Context, id string) (bool, error)

	mu sync.Mutex // one batch at a time: a resend cannot race its original
}

// Emit implements audit.Emitter.
func (d *Dedup) Emit(ctx context.Context, e audit.Event) error {
	return d.EmitBatch(ctx, []audit.Event{e})
}

// EmitBatch implements audit.BatchEmitter.
func (d *Dedup) EmitBatch(ctx context.Context, es []audit.Event) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	fresh := es[:0:0]
	seen := map[string]bool{}
	for _, e := range es {
		if seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		has, err := d.Has(ctx, e.ID)
		if err != nil {
			return err
		}
		if !has {
			fresh = append(fresh, e)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	return audit.EmitBatch(ctx, d.Log, fresh)
}

// MaxAuditBatch bounds one batch of node events.
const MaxAuditBatch = 1000

func (a *API) audit(w http.ResponseWriter, r *http.Request, n nodeID) {
	if a.c.Audit == nil {
		fail(w, http.StatusNotImplemented, "this server does not take node events")
		return
	}
	var es []audit.Event
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20))
	if err := dec.Decode(&es); err != nil {
		fail(w, http.StatusBadRequest, "events: %v", err)
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		fail(w, http.StatusBadRequest, "events: data after the array")
		return
	}
	if len(es) > MaxAuditBatch {
		fail(w, http.StatusRequestEntityTooLarge, "%d events: at most %d per batch", len(es), MaxAuditBatch)
		return
	}
	for i := range es {
		if id := es[i].ID; !strings.HasPrefix(id, "evt_") || len(id) > 64 || es[i].Type == "" {
			fail(w, http.StatusBadRequest, "event %d: no type, or id %q is not an event id (evt_...)", i, es[i].ID)
			return
		}
		// A node speaks for itself only.
		es[i].Node = n.name
	}
	es = slices.Clip(es)
	if err := audit.EmitBatch(r.Context(), a.c.Audit, es); err != nil {
		a.c.Log.Error("record node events", "node", n.name, "error", err)
		fail(w, http.StatusServiceUnavailable, "events not recorded; retry")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
