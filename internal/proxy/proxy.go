// Package proxy is writ's access proxy: the enforcement point agents reach
// services through, with no code change (HTTP_PROXY / HTTPS_PROXY) or by
// reverse route (/svc/NAME/...). For every request it works out who is
// calling — an mTLS client with an X.509-SVID, a writ access token, or the
// local process behind a loopback connection, attested exactly like the
// Workload API attests — asks the policy engine, and on allow strips every
// credential the caller sent, injects the upstream credential from the
// broker and forwards the request with streaming bodies. Each request is
// one audit event attributed to identity, instance and task.
//
// One listener serves all modes: reverse routes (path prefix or Host
// header), absolute-form forward requests, and CONNECT tunnels, which are
// either spliced after a host:port policy check or, for services marked
// intercept, terminated with a leaf from the proxy's own [CA] so that full
// L7 policy and injection apply before TLS is re-originated upstream.
//
// The proxy depends on small interfaces ([Attestor], [Registry], [Decider],
// [Credentials], ...) that the server fills with the real components.
package proxy

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/writ-dev/writ/internal/approval"
	"github.com/writ-dev/writ/internal/attest"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/broker"
	"github.com/writ-dev/writ/internal/journal"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/store"
)

// Attestor identifies the local process behind a loopback TCP connection
// (attest.Attestor).
type Attestor interface {
	PeerFromTCP(ctx context.Context, local, remote netip.AddrPort) (attest.Peer, error)
	Attest(ctx context.Context, p attest.Peer) (attest.Result, error)
}

// Registry maps attested selectors to identities (registry.Registry).
type Registry interface {
	Match(attested []store.Selector) []store.Identity
	List() []store.Identity
}

// Decider answers policy questions (policy.Engine).
type Decider interface {
	Decide(ctx context.Context, req *policy.Request) policy.Decision
}

// Credentials hands out upstream credentials (broker.Broker).
type Credentials interface {
	Get(ctx context.Context, name string) (broker.Info, broker.Secret, error)
}

// Tasks reads and charges tasks (task.Service).
type Tasks interface {
	Get(ctx context.Context, id string) (store.Task, error)
	// Charge counts one call against an open task; it fails with
	// store.ErrPrecondition when the task is not open or its budget is
	// used up.
	Charge(ctx context.Context, id string) (store.Task, error)
}

// Revocations is the kill switch: Revoked reports whether kind/value
// (store.RevokeSpiffeID, RevokeInstance, RevokeTask, RevokeToken) is
// revoked. It must be fast: it runs on every request.
type Revocations interface {
	Revoked(kind, value string) bool
}

// Approvals asks a human (approval.Service). Request files a pending
// approval; Wait blocks until it is decided or expires, or ctx ends.
type Approvals interface {
	Request(ctx context.Context, sp approval.Spec) (store.Approval, error)
	Wait(ctx context.Context, id string) (store.Approval, error)
}

// ErrNotWritToken is returned by a [TokenVerifier] for a credential that
// is not a writ access token at all (an upstream key the agent carries);
// the proxy then ignores it (and strips it) and identifies the caller
// another way.
var ErrNotWritToken = errors.New("not a writ access token")

// TokenClaims is what a verified writ access token says about its caller.
type TokenClaims struct {
	ID       string // jti
	SpiffeID string
	Instance string
	Task     string
	Scopes   []string
}

// TokenVerifier verifies the writ access token a request carries
// (Authorization: Bearer or DPoP, with its proof) for audience.
type TokenVerifier interface {
	VerifyRequest(ctx context.Context, r *http.Request, audience string) (TokenClaims, error)
}

// Config configures a [Proxy]. Policy and Emitter are required; the
// others enable features: without Attestor no process attribution,
// without Bundle no mTLS callers, without Tokens no token callers, without
// CA no interception, without Approvals approval-required calls are
// refused.
type Config struct {
	Attestor    Attestor
	Registry    Registry
	Policy      Decider
	Credentials Credentials
	Tasks       Tasks
	Revocations Revocations
	Tokens      TokenVerifier
	Approvals   Approvals
	// Bundle verifies client X.509-SVIDs on the TLS listener.
	Bundle x509bundle.Source
	// Signer and Issuer mint access tokens for Services with a token block.
	Signer broker.JWTSigner
	Issuer string
	CA     *CA
	// Emitter receives one event per request once it is finished
	// (access.allowed with its outcome, or access.denied), in batches if
	// it is an audit.BatchEmitter. Required.
	Emitter audit.Emitter
	// Journal is the file where an allowed request's decision is written
	// before the request is forwarded, and kept until its event is in the
	// audit log; at start, decisions a crash left there are recorded
	// first (see package journal). Required.
	Journal string
	// DecisionDurability is how far a decision must get before its
	// request is forwarded: audit.Synced (the zero value) waits for the
	// journal's fdatasync, so the access is on record even after a power
	// loss; audit.Written for the write, which survives a crash of writ.
	DecisionDurability audit.Durability
	// Recorded reports whether the audit log holds the event with id; at
	// start it keeps decisions whose outcome was recorded just before a
	// crash from being recorded twice. Default: every decision left in
	// the journal is recorded.
	Recorded func(ctx context.Context, id string) (bool, error)
	// AuditFailed returns why the audit log refuses events, or nil; while
	// it does, no request is forwarded (fail closed). Optional.
	AuditFailed func() error
	Log         *slog.Logger
	Now         func() time.Time
	// ApprovalWait bounds how long a request waits for a human decision
	// (default 5m; also bounded by the rule's approval timeout).
	ApprovalWait time.Duration
	// MaxRequestBody bounds request bodies (default 64 MiB; negative: no
	// limit).
	MaxRequestBody int64
	// LogQueryValues records query values in audit events; by default
	// only parameter names are recorded.
	LogQueryValues bool
	// Node is recorded as the source node of policy requests and events.
	Node string
	// Transport, when set, replaces the upstream transport (tests).
	Transport func(*Service) http.RoundTripper
}

// Proxy is the access proxy handler. It is safe for concurrent use.
type Proxy struct {
	c     Config
	table atomic.Pointer[Table]

	mu         sync.Mutex
	transports map[*Service]http.RoundTripper

	tunnels   sync.WaitGroup
	tunnelMu  sync.Mutex
	openConns map[net.Conn]struct{}
	inner     map[*http.Server]struct{} // servers of intercepted tunnels
	closing   bool

	journal  *journal.Journal
	rec      chan *exchange // finished requests for the recorder
	recDone  chan struct{}  // closed when the recorder stops
	recorded sync.WaitGroup // requests handed to the recorder, not yet recorded
	recMu    sync.RWMutex   // guards stopped and the send on rec
	stopped  bool
}

// New returns a Proxy with an empty service table. It first records the
// decisions a crash left in the journal, and fails if it cannot: requests
// must not be served while accesses that happened are missing from the
// audit log. Stop it with [Proxy.Close].
func New(ctx context.Context, c Config) (*Proxy, error) {
	if c.Policy == nil || c.Emitter == nil || c.Journal == "" {
		return nil, errors.New("create access proxy: a policy decider, an audit emitter and a journal are required")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ApprovalWait == 0 {
		c.ApprovalWait = 5 * time.Minute
	}
	if c.MaxRequestBody == 0 {
		c.MaxRequestBody = 64 << 20
	}
	p := &Proxy{c: c, transports: map[*Service]http.RoundTripper{}, openConns: map[net.Conn]struct{}{}, inner: map[*http.Server]struct{}{},
		rec: make(chan *exchange, maxRecording), recDone: make(chan struct{})}
	if err := p.recover(ctx); err != nil {
		return nil, err
	}
	var err error
	p.journal, err = journal.Open(journal.Config{Path: c.Journal, Sync: c.DecisionDurability == audit.Synced})
	if err != nil {
		return nil, fmt.Errorf("create access proxy: %w", err)
	}
	t, _ := NewTable(nil)
	p.table.Store(t)
	go p.recordLoop()
	return p, nil
}

// SetServices installs a new routing table. Requests in flight keep the
// table they started with; idle upstream connections of replaced services
// are closed.
func (p *Proxy) SetServices(t *Table) {
	old := p.table.Swap(t)
	p.mu.Lock()
	defer p.mu.Unlock()
	for s, rt := range p.transports {
		if old != nil && t.Get(s.Name) != s {
			if tr, ok := rt.(*http.Transport); ok {
				tr.CloseIdleConnections()
			}
			delete(p.transports, s)
		}
	}
}

// Services returns the current routing table.
func (p *Proxy) Services() *Table { return p.table.Load() }

// newRequestID returns a random request id: "req_" and 16 characters of
// rand.Text's alphabet (80 bits), made with one allocation.
func newRequestID() string {
	var b [10]byte
	var enc [16]byte
	rand.Read(b[:])
	base32.StdEncoding.Encode(enc[:], b[:])
	var id strings.Builder
	id.Grow(4 + len(enc))
	id.WriteString("req_")
	id.Write(enc[:])
	return id.String()
}

// Flush waits until the audit events of finished requests are recorded.
func (p *Proxy) Flush() { p.recorded.Wait() }

// Close records the events of finished requests, stops the recorder and
// closes the journal (removing it if every decision in it is recorded).
// Call it after [Proxy.Shutdown]; requests that finish later are recorded
// directly.
func (p *Proxy) Close() error {
	p.recMu.Lock()
	if p.stopped {
		p.recMu.Unlock()
		return nil
	}
	p.stopped = true
	close(p.rec)
	p.recMu.Unlock()
	<-p.recDone
	return p.journal.Close()
}
