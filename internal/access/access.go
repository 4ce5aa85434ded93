package access

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"sync"
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
	// WatchImage binds res, the attestation of p, to the executable p
	// runs, so that an exec is seen with one system call per request.
	WatchImage(p attest.Peer, res attest.Result) (*attest.ImageWatch, error)
}

// Registry maps attested selectors to identities (registry.Registry).
type Registry interface {
	Match(attested []store.Selector) []store.Entry
	List() []store.Entry
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
// approval; Wait blocks until it is decided or expires, or ctx ends; Use
// spends an approved request on the one call it is bound to (an error
// wrapping approval.ErrNotUsable says why it cannot be).
type Approvals interface {
	Request(ctx context.Context, sp approval.Spec) (store.Approval, error)
	Wait(ctx context.Context, id string) (store.Approval, error)
	Use(ctx context.Context, id, binding, caller string) (store.Approval, error)
}

// ErrNotWritToken is returned by a [TokenVerifier] for a credential that
// is not a writ access token at all (an upstream key the agent carries);
// the caller is then identified another way, and the front end strips
// the credential all the same.
var ErrNotWritToken = errors.New("not a writ access token")

// TokenClaims is what a verified writ access token says about its caller.
type TokenClaims struct {
	ID       string // jti
	SpiffeID string
	Instance string
	Task     string
	Scopes   []string
}

// TokenProof is a writ access token as a request presents it, with what
// its binding is checked against.
type TokenProof struct {
	// Authorization is the credential: "Bearer TOKEN" or "DPoP TOKEN".
	Authorization string
	// DPoP is the DPoP proof, if any.
	DPoP string
	// Method and URL are the call the proof must name (htm, htu).
	Method string
	URL    string
	// PeerCert is the client certificate of the connection, for
	// certificate-bound tokens; nil without one.
	PeerCert *x509.Certificate
}

// TokenVerifier verifies a writ access token for audience. It returns an
// error wrapping [ErrNotWritToken] for a credential that is not a writ
// token at all.
type TokenVerifier interface {
	VerifyToken(ctx context.Context, p TokenProof, audience string) (TokenClaims, error)
}

// Target is what an access reaches: a Service (or, next, an MCP server),
// with what enforcement needs to know of it. Front ends build one per
// target when their configuration is loaded, not per request.
type Target struct {
	// Kind is the policy kind of calls to the target (policy.KindHTTP).
	Kind policy.Kind
	// Name is the target's name as policy rules name it.
	Name string
	// Ref is how audit events and approvals name it: "Service/NAME".
	Ref string
	// Labels are its flow labels.
	Labels []string
	// Audience is the audience a caller's writ access token must carry.
	Audience string
	// Credential, when set, is the broker credential injected into
	// allowed calls; Mint, when set, a writ access token minted per call.
	Credential *CredentialSpec
	Mint       *MintSpec
}

// CredentialSpec names a broker credential and how it is injected.
type CredentialSpec struct {
	Name string
	// Inject is the injection mode; empty means the credential's type.
	Inject broker.Type
	// Header is the header of header injection (default Authorization);
	// Template formats its value ("{value}" is replaced).
	Header   string
	Template string
	// Query is the parameter of query injection.
	Query string
}

// MintSpec is a writ access token minted for each allowed call.
type MintSpec struct {
	Audience string
	Scopes   []string
	TTL      time.Duration
}

// Request is one access as a front end received it.
type Request struct {
	// ID names the request in answers, logs and its event (req_...).
	ID string
	// Start is when the request arrived; latency is measured from it.
	Start time.Time
	// Target is what the request is for; nil when none was found.
	Target *Target
	// Caller is who makes it, from [Enforcer.Identify]; nil when not
	// identified.
	Caller *Caller
	// Method and Path are the action: for an HTTP target the method and
	// the decoded path the upstream is sent; for an MCP target Method is
	// the JSON-RPC method (tools/call, resources/read, prompts/get).
	Method string
	Path   string
	// Tool, Resource and Prompt name the object of an MCP call (one of
	// them), Args its arguments; policy sees them for an MCP target.
	Tool     string
	Resource string
	Prompt   string
	Args     map[string]any
	// ArgsDigest is the digest of the canonical arguments of an MCP call
	// ("sha256:..."); an approval of the call is bound to it.
	ArgsDigest string
	// Approval is the id of an approval the caller presents for this
	// call (granted after an earlier attempt stopped waiting): when
	// policy asks for approval, the call goes ahead if that approval is
	// approved, unused, unexpired, the caller's, and for this exact call.
	Approval string
	// Query is the request's query; policy sees each parameter's first
	// value, the audit event the names (or, with LogQueryValues, all).
	Query url.Values
	// Headers are the header fields policy sees: lower-case names,
	// repeated values joined with ", ", credentials left out.
	Headers map[string]string
	// Task is the task the request names itself (a Writ-Task header);
	// a token's task is the caller's.
	Task string
	// Session is the MCP session the access was made in, if any: outside
	// a task, the flow labels it touched are counted per session (and per
	// caller instance).
	Session string
	// Source is the client's address, "ip:port".
	Source string
	// Opaque marks an access whose content enforcement cannot see (a
	// spliced tunnel): policy sees no headers or query and no credential
	// is injected.
	Opaque bool
	// Details are facts the front end adds to the access's audit event
	// (an MCP call's argument digest and session, say).
	Details map[string]string

	// question is the policy question, kept here to save an allocation.
	question policy.Request
}

// Effect is what happens to an access.
type Effect uint8

const (
	// Deny is the zero Effect: an access nothing allowed is denied.
	Deny Effect = iota
	Allow
)

func (e Effect) String() string {
	if e == Allow {
		return "allow"
	}
	return "deny"
}

// Class says how a front end answers an outcome, without naming a
// protocol's status codes.
type Class uint8

const (
	// OK: the access goes ahead.
	OK Class = iota
	// Unidentified: the caller is not identified, or its credential was
	// refused (HTTP 401, or 407 from a forward proxy).
	Unidentified
	// TokenRefused: the caller's writ access token was refused (invalid,
	// expired, revoked, unbound): HTTP 401 whichever way the request came.
	TokenRefused
	// Forbidden: policy, the kill switch, a task or an approval refused
	// the access, or the caller is ambiguous (HTTP 403).
	Forbidden
	// RateLimited: a rate limit refused it; Outcome.RetryAfter says when
	// to try again (HTTP 429).
	RateLimited
	// Invalid: the request is malformed (HTTP 400).
	Invalid
	// NoRoute: nothing the front end routes to matches it (HTTP 404).
	NoRoute
	// NoCredential: allowed, but the upstream credential could not be
	// had (HTTP 502).
	NoCredential
	// Unavailable: allowed, but the decision could not be put on record,
	// so the access must not happen (writ fails closed; HTTP 503). Such
	// an outcome is not recorded.
	Unavailable
	// Internal: enforcement failed (HTTP 500).
	Internal
)

// Outcome is what enforcement decided about an access.
type Outcome struct {
	Effect Effect
	Class  Class
	// Message is the human-readable answer to a refusal; Reason the
	// policy's (or the kill switch's, a task's, ...) reason.
	Message string
	Reason  string
	// Reasons are all of the policy decision's reasons.
	Reasons []string
	// Policy is "name@version" of the deciding policy, Rule its rule.
	Policy string
	Rule   string
	// Obligations are what policy asks of the enforcement point.
	Obligations policy.Obligations
	// Observed is what policies in observe mode would have decided, when
	// it differs; it is recorded, never enforced.
	Observed *policy.Observation
	// RetryAfter is set for RateLimited.
	RetryAfter time.Duration
	// Approval is the id of the approval the access waited for.
	Approval string
	// Task is the task the access belongs to, as charged.
	Task store.Task
	// Credential is the upstream credential to inject into an allowed
	// access (zero when the target has none).
	Credential Credential
	// EventID is the id of the access's audit event, known once the
	// decision is journaled.
	EventID string

	decided   bool // the decision to allow is in the journal, under ticket
	journaled bool // a refusal's event is in the journal, under ticket
	ticket    journal.Ticket
}

// Refusal is an access refused before or outside policy (no caller, a
// malformed request, no route) or by it; [Refused] turns it into an
// [Outcome].
type Refusal struct {
	Class Class
	// Message is the answer's error text; Reason the reason recorded.
	Message    string
	Reason     string
	RetryAfter time.Duration
}

func (r *Refusal) Error() string {
	if r.Message != "" {
		return r.Message
	}
	return r.Reason
}

// Refused is the outcome of an access refused with err: a [Refusal]'s
// class and texts, or Internal for any other error (whose text is not
// shown to the caller).
func Refused(err error) Outcome {
	var rf *Refusal
	if !errors.As(err, &rf) {
		return Outcome{Class: Internal, Message: "internal error; see the writ log"}
	}
	out := Outcome{Class: rf.Class, Message: rf.Message, Reason: rf.Reason, RetryAfter: rf.RetryAfter}
	if out.Message == "" {
		switch rf.Class {
		case RateLimited:
			out.Message = "rate limit exceeded"
		default:
			out.Message = "access denied by policy"
		}
	}
	return out
}

// deny refuses an access with the class and reason given.
func deny(class Class, format string, args ...any) *Refusal {
	return &Refusal{Class: class, Reason: fmt.Sprintf(format, args...)}
}

// Result is how an access ended, for its audit event.
type Result struct {
	// Status is the status answered (an HTTP status code for the proxy).
	Status int
	// In and Out are the bytes sent upstream and back.
	In, Out int64
	// Reason, when set, replaces the outcome's reason in the event.
	Reason string
}

// Config configures an [Enforcer]. Policy, Emitter and Journal are
// required; the others enable features: without Attestor no process
// attribution, without Bundle no mTLS callers, without Tokens no token
// callers, without Approvals approval-required calls are refused.
type Config struct {
	Attestor    Attestor
	Registry    Registry
	Policy      Decider
	Credentials Credentials
	Tasks       Tasks
	Revocations Revocations
	Tokens      TokenVerifier
	Approvals   Approvals
	// Flows keeps the flow labels tasks touched; without it a task's
	// labels are not tracked (those of sessions, kept in memory, are).
	Flows Flows
	// Bundle verifies client X.509-SVIDs.
	Bundle x509bundle.Source
	// Signer and Issuer mint access tokens for targets with a MintSpec.
	Signer broker.JWTSigner
	Issuer string
	// Emitter receives one event per access once it is finished
	// (access.allowed with its outcome, or access.denied), in batches if
	// it is an audit.BatchEmitter. Required.
	Emitter audit.Emitter
	// Journal is the file where an allowed access's decision is written
	// before Enforce returns, and kept until its event is in the audit
	// log; at start, decisions a crash left there are recorded first (see
	// package journal). Required.
	Journal string
	// DecisionDurability is how far a decision must get before Enforce
	// allows: audit.Synced (the zero value) waits for the journal's
	// fdatasync, so the access is on record even after a power loss;
	// audit.Written for the write, which survives a crash of writ.
	DecisionDurability audit.Durability
	// Recorded reports whether the audit log holds the event with id; at
	// start it keeps decisions whose outcome was recorded just before a
	// crash from being recorded twice. Default: every decision left in
	// the journal is recorded.
	Recorded func(ctx context.Context, id string) (bool, error)
	// AuditFailed returns why the audit log refuses events, or nil; while
	// it does, nothing is allowed (fail closed). Optional.
	AuditFailed func() error
	Log         *slog.Logger
	Now         func() time.Time
	// ApprovalWait bounds how long an access waits for a human decision
	// (default 5m; also bounded by the rule's approval timeout).
	ApprovalWait time.Duration
	// LogQueryValues records query values in audit events; by default
	// only parameter names are recorded.
	LogQueryValues bool
	// Node is recorded as the source node of policy requests and events.
	Node string
}

// Enforcer decides and records accesses. It is safe for concurrent use.
type Enforcer struct {
	c Config

	journal  *journal.Journal
	flows    sessionFlows
	rec      chan finished // finished accesses for the recorder
	recDone  chan struct{} // closed when the recorder stops
	recorded sync.WaitGroup
	recMu    sync.RWMutex // guards stopped and the send on rec
	stopped  bool
}

// New returns an Enforcer. It first records the decisions a crash left in
// the journal, and fails if it cannot: accesses must not be allowed while
// accesses that happened are missing from the audit log. Stop it with
// [Enforcer.Close].
func New(ctx context.Context, c Config) (*Enforcer, error) {
	if c.Policy == nil || c.Emitter == nil || c.Journal == "" {
		return nil, errors.New("create access enforcer: a policy decider, an audit emitter and a journal are required")
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
	e := &Enforcer{c: c, rec: make(chan finished, maxRecording), recDone: make(chan struct{})}
	if err := e.recover(ctx); err != nil {
		return nil, err
	}
	var err error
	e.journal, err = journal.Open(journal.Config{Path: c.Journal, Sync: c.DecisionDurability == audit.Synced})
	if err != nil {
		return nil, fmt.Errorf("create access enforcer: %w", err)
	}
	go e.recordLoop()
	return e, nil
}

// Flush waits until the audit events of finished accesses are recorded.
func (e *Enforcer) Flush() { e.recorded.Wait() }

// Close records the events of finished accesses, stops the recorder and
// closes the journal (removing it if every decision in it is recorded).
// Accesses that finish later are recorded directly.
func (e *Enforcer) Close() error {
	e.recMu.Lock()
	if e.stopped {
		e.recMu.Unlock()
		return nil
	}
	e.stopped = true
	close(e.rec)
	e.recMu.Unlock()
	<-e.recDone
	return e.journal.Close()
}

// Pending returns the number of decisions in the journal whose event is
// not yet recorded.
func (e *Enforcer) Pending() int { return e.journal.Pending() }

// Binding is what an approval of req is bound to: its target, action and
// object and, for a call with arguments, their digest.
func (r *Request) Binding() string {
	b := r.Target.Ref + " " + r.Method + " " + r.object()
	if r.ArgsDigest != "" {
		b += " " + r.ArgsDigest
	}
	return b
}

// object is what the access acts on, as events and approvals name it: the
// path, or an MCP call's tool, resource or prompt.
func (r *Request) object() string {
	switch {
	case r.Tool != "":
		return r.Tool
	case r.Resource != "":
		return r.Resource
	case r.Prompt != "":
		return r.Prompt
	}
	return r.Path
}
