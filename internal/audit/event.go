// Package audit is the vocabulary of writ's record of who did what: the
// [Event] model and its [Type]s shared by every component, the [Emitter]
// interfaces they send events to, event ids ([NewEventID]) and the
// canonical encoding ([Event.MarshalCanonical]) that is hashed into the log.
//
// The tamper-evident Merkle-tree log that stores events (group commit,
// checkpoints, proofs, verification, search) is package auditlog, which
// implements the emitters defined here. Packages that only emit events
// import audit and never auditlog.
//
// Every event carries the identity it is attributed to (SPIFFE ID and
// instance) when there is one. Events never carry secret values: credential
// fields hold names and ids, never material.
package audit

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Type names what happened. Types are stable strings; add, don't rename.
type Type string

// Event types.
const (
	AttestationOK     Type = "attestation.ok"
	AttestationFailed Type = "attestation.failed"
	SVIDIssued        Type = "svid.issued"
	JWTSVIDIssued     Type = "jwt_svid.issued"
	EntryCreated      Type = "entry.created"
	EntryChanged      Type = "entry.changed"
	EntryDeleted      Type = "entry.deleted"
	ResourceCreated   Type = "resource.created"
	ResourceChanged   Type = "resource.changed"
	ResourceDeleted   Type = "resource.deleted"
	KeyPrepared       Type = "key.prepared"
	KeyActivated      Type = "key.activated"
	KeyRetired        Type = "key.retired"
	KeyRemoved        Type = "key.removed"
	TokenMinted       Type = "token.minted"
	TokenDenied       Type = "token.denied"
	TokenUsed         Type = "token.used"
	TaskOpened        Type = "task.opened"
	TaskClosed        Type = "task.closed"
	// AccessAllowed is one request the access proxy let through, with
	// its outcome (details status, bytes_in, bytes_out; latency). Its
	// decision was journaled before the request was forwarded; after a
	// crash it is recorded with details outcome "unknown".
	AccessAllowed Type = "access.allowed"
	// AccessDenied is one request the access proxy refused.
	AccessDenied      Type = "access.denied"
	ApprovalRequested Type = "approval.requested"
	ApprovalGranted   Type = "approval.granted"
	ApprovalDenied    Type = "approval.denied"
	ApprovalExpired   Type = "approval.expired"
	// ApprovalUsed is an approval bound to one call (an MCP call's
	// server, tool and argument digest) spent by that call; it permits
	// no other.
	ApprovalUsed Type = "approval.used"
	Revocation   Type = "revocation"
	// RevocationLifted is a revocation taken back by an operator.
	RevocationLifted   Type = "revocation.lifted"
	MCPToolPinned      Type = "mcp.tool_pinned"
	MCPToolQuarantined Type = "mcp.tool_quarantined"
	AuditCheckpoint    Type = "audit.checkpoint"
	AdminAuthFailed    Type = "admin.auth_failed"
)

// PolicyPromoted is an AccessPolicy in observe mode made enforcing
// (`writ policy promote`): Policy is the new name@version, details
// from_version, digest (of the observed spec reviewed), replaced (the
// policies deleted with it, comma-separated) and the observed counts
// decisions, would_deny, would_hold, would_allow.
const PolicyPromoted Type = "policy.promoted"

// ScanReported is a `writ scan --report` whose findings were ranked by
// blast radius and recorded: Target is "scan:" and the target scanned,
// details findings and top_score. It holds no fingerprint or value.
const ScanReported Type = "scan.reported"

// MCP gateway events. MCPToolPinned is a tool descriptor the gateway
// trusted (on first sighting, or by a signed manifest); MCPToolQuarantined
// is a tool it hides and refuses because its descriptor changed, it was
// renamed, or it does not match the signed manifest (details say which).
const (
	// MCPToolApproved is a quarantined tool a human approved (writ mcp
	// approve); its current descriptor is trusted from then on.
	MCPToolApproved Type = "mcp.tool_approved"
	// MCPInitialized is an agent's MCP session opened at the gateway
	// (initialize), and MCPListed one tools/list, resources/list,
	// resources/templates/list or prompts/list: with the caller, the
	// server, the protocol revision and the digest of the pinned tools
	// the agent was shown.
	MCPInitialized Type = "mcp.initialized"
	MCPListed      Type = "mcp.listed"
)

// Runtime discovery events (internal/discover), raised when a scan finds
// something the previous scans did not: an agent or MCP server process, a
// credential a process holds or its owner keeps in a file (fingerprint
// only, never the value), or shadow access (an agent without identity, a
// static credential writ could broker, a connection around writ).
const (
	DiscoveryAgentFound      Type = "discovery.agent_found"
	DiscoveryCredentialFound Type = "discovery.credential_found"
	DiscoveryShadowAccess    Type = "discovery.shadow_access"
)

// PostureFinding records a posture finding of high or critical severity
// the first time the server sees it (after a discovery scan): Target is
// the finding's id; details check, severity, title, reaches, fix.
const PostureFinding Type = "posture.finding"

// Alert events (internal/alert): a human acknowledged or resolved an
// alert (Actor is who; details alert, rule, severity, dwell_seconds).
const (
	AlertAcknowledged Type = "alert.acknowledged"
	AlertResolved     Type = "alert.resolved"
)

// Scale-out events (internal/node/nodeserver): a join token created or
// deleted (its id, never the secret), a node attested (details: attestor,
// attestation id) or refused, a node evicted, a broker credential handed
// to a node's MCP gateway for an upstream (its name and version, never the
// value).
const (
	NodeTokenCreated       Type = "node.token_created"
	NodeTokenDeleted       Type = "node.token_deleted"
	NodeAttested           Type = "node.attested"
	NodeRefused            Type = "node.refused"
	NodeEvicted            Type = "node.evicted"
	NodeCredentialReleased Type = "node.credential_released"
)

// Dynamic database credentials (internal/dbcreds): a PostgreSQL role
// created for one task's access to a Service, or dropped (details: the
// role, the reason: closed, revoked, expired, reaped). Never the password.
const (
	DBRoleCreated Type = "dbcreds.role_created"
	DBRoleDropped Type = "dbcreds.role_dropped"
)

// Event is one audited fact. Empty fields are omitted from every encoding.
type Event struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	Type       Type      `json:"type"`
	SpiffeID   string    `json:"spiffe_id,omitempty"`
	Instance   string    `json:"instance,omitempty"`
	Task       string    `json:"task,omitempty"`
	OnBehalfOf string    `json:"on_behalf_of,omitempty"`
	Actor      string    `json:"actor,omitempty"` // the admin or human who caused it
	Target     string    `json:"target,omitempty"`
	Action     string    `json:"action,omitempty"`
	Decision   string    `json:"decision,omitempty"`
	Policy     string    `json:"policy,omitempty"` // name@version
	Rule       string    `json:"rule,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Credential string    `json:"credential,omitempty"` // id or name, never a value
	Source     string    `json:"source,omitempty"`     // address
	Node       string    `json:"node,omitempty"`
	RequestID  string    `json:"request_id,omitempty"`
	LatencyUS  int64     `json:"latency_us,omitempty"`
	// Details holds type-specific string facts (key ids, selectors, ...).
	Details map[string]string `json:"details,omitempty"`
}

// Emitter receives events. Emit returns only once the event is recorded as
// durably as the emitter promises; an error means it was not recorded, and
// enforcement paths must then fail closed.
type Emitter interface {
	Emit(ctx context.Context, e Event) error
}

// EmitterFunc adapts a function to [Emitter].
type EmitterFunc func(ctx context.Context, e Event) error

// Emit calls f.
func (f EmitterFunc) Emit(ctx context.Context, e Event) error { return f(ctx, e) }

// SlogEmitter writes events to a structured logger. It is the fallback when
// no durable log is configured and a convenient tee for operators.
type SlogEmitter struct {
	Log *slog.Logger
	// Level is the level events are logged at; the zero value is info.
	Level slog.Level
}

// Emit logs e at s.Level with constant attribute keys.
func (s SlogEmitter) Emit(ctx context.Context, e Event) error {
	if !s.Log.Enabled(ctx, s.Level) {
		return nil
	}
	attrs := []slog.Attr{slog.String("type", string(e.Type))}
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	add("event_id", e.ID)
	add("spiffe_id", e.SpiffeID)
	add("instance", e.Instance)
	add("task", e.Task)
	add("on_behalf_of", e.OnBehalfOf)
	add("actor", e.Actor)
	add("target", e.Target)
	add("action", e.Action)
	add("decision", e.Decision)
	add("policy", e.Policy)
	add("rule", e.Rule)
	add("reason", e.Reason)
	add("credential", e.Credential)
	add("source", e.Source)
	add("request_id", e.RequestID)
	for k, v := range e.Details {
		add("detail."+k, v)
	}
	s.Log.LogAttrs(ctx, s.Level, "event", attrs...)
	return nil
}

// Durability is how far an append gets before it returns.
type Durability uint8

const (
	// Synced returns once the event is on disk: the store's commit was
	// fsynced, so the event survives a power loss. The default.
	Synced Durability = iota
	// Written returns once the event is committed to the store in its
	// place in the log, while the fsync of its group commit may still be
	// running: the event survives a crash of writ (the commit is in the
	// operating system's hands) and reaches the disk with that fsync,
	// typically within a millisecond; only a power loss or kernel crash
	// in between can lose it. If that fsync fails the log refuses every
	// later event, so enforcement fails closed from then on. For hot
	// enforcement paths such as the access proxy's decisions; with a
	// log backend that cannot write and sync separately (see
	// auditlog.Pipeliner) it is the same as Synced.
	Written
)

// String returns "synced" or "written".
func (d Durability) String() string {
	if d == Written {
		return "written"
	}
	return "synced"
}

// DurabilityEmitter is an [Emitter] that can return before an event is
// synced to disk (see [Durability]); auditlog.Log and auditlog.Tee are.
type DurabilityEmitter interface {
	Emitter
	EmitWith(ctx context.Context, e Event, d Durability) error
}

// EmitWith emits e through em with durability d if em supports it, and
// with em's own durability otherwise.
func EmitWith(ctx context.Context, em Emitter, e Event, d Durability) error {
	if de, ok := em.(DurabilityEmitter); ok {
		return de.EmitWith(ctx, e, d)
	}
	return em.Emit(ctx, e)
}

// BatchEmitter is an [Emitter] that can record several events at once, so
// that they share one commit; auditlog.Log and auditlog.Tee are. An error
// means some of the events may not be recorded.
type BatchEmitter interface {
	Emitter
	EmitBatch(ctx context.Context, es []Event) error
}

// EmitBatch emits es through em, in one batch if em is a [BatchEmitter]
// and one by one otherwise. It returns the errors of the events that
// failed, joined.
func EmitBatch(ctx context.Context, em Emitter, es []Event) error {
	if be, ok := em.(BatchEmitter); ok {
		return be.EmitBatch(ctx, es)
	}
	var errs []error
	for _, e := range es {
		if err := em.Emit(ctx, e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Discard drops every event. For tests only.
var Discard Emitter = EmitterFunc(func(context.Context, Event) error { return nil })

// Human account and console events (internal/account, internal/web).
// Actor names who did it: "admin:ID" for the admin credential, "user:NAME"
// for a human.
const (
	UserAdded        Type = "user.added"
	UserRemoved      Type = "user.removed"
	UserChanged      Type = "user.changed" // password or role
	UserLogin        Type = "user.login"
	UserLoginFailed  Type = "user.login_failed"
	UserLogout       Type = "user.logout"
	ConsoleCSRFBlock Type = "console.csrf_refused"
)
