package apitypes

import (
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// AuditEvent is one audited fact on the wire. Its fields and their JSON
// names are those of the log's own event encoding (internal/audit.Event),
// so that an event read from the API hashes to its leaf; a test in
// internal/api holds the two encodings equal.
type AuditEvent struct {
	ID         string            `json:"id"`
	Time       time.Time         `json:"time"`
	Type       string            `json:"type"`
	SpiffeID   string            `json:"spiffe_id,omitempty"`
	Instance   string            `json:"instance,omitempty"`
	Task       string            `json:"task,omitempty"`
	OnBehalfOf string            `json:"on_behalf_of,omitempty"`
	Actor      string            `json:"actor,omitempty"`
	Target     string            `json:"target,omitempty"`
	Action     string            `json:"action,omitempty"`
	Decision   string            `json:"decision,omitempty"`
	Policy     string            `json:"policy,omitempty"`
	Rule       string            `json:"rule,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	Credential string            `json:"credential,omitempty"`
	Source     string            `json:"source,omitempty"`
	Node       string            `json:"node,omitempty"`
	RequestID  string            `json:"request_id,omitempty"`
	LatencyUS  int64             `json:"latency_us,omitempty"`
	Details    map[string]string `json:"details,omitempty"`
}

// AuditEntry is an event with its index in the log; in JSON the index sits
// next to the event's fields: GET /v1/audit/events/{id}, the elements of
// a search, one tail event and one export line.
type AuditEntry struct {
	Index int64 `json:"index"`
	AuditEvent
}

// AuditKey is the answer of GET /v1/audit/key.
type AuditKey struct {
	// Origin is the log's name, the first line of its checkpoints.
	Origin string `json:"origin"`
	// VerifierKey is the signed-note verifier key
	// ("<name>+<hash>+<key>") that checks the log's checkpoints.
	VerifierKey string `json:"verifier_key"`
}

// Checkpoint is a tree head: the log's origin, size and root hash
// (standard base64 in JSON).
type Checkpoint struct {
	Origin string    `json:"origin"`
	Size   int64     `json:"size"`
	Hash   tlog.Hash `json:"root"`
}

// SignedCheckpoint is the answer of GET /v1/audit/checkpoint: a checkpoint
// and its signed note.
type SignedCheckpoint struct {
	Checkpoint
	Note string `json:"note"`
}

// AuditSearchResult is the answer of GET /v1/audit/events.
type AuditSearchResult struct {
	Events []AuditEntry `json:"events"`
	// NextBefore, when set, is the Before value that fetches the next
	// (older) page.
	NextBefore int64 `json:"next_before,omitempty"`
}

// InclusionProof is the answer of GET /v1/audit/events/{id}/proof, and the
// file `writ audit verify-proof` checks: event Index of the log whose
// signed checkpoint is Checkpoint.
type InclusionProof struct {
	Index int64      `json:"index"`
	Event AuditEvent `json:"event"`
	// Leaf is the event's canonical encoding, the exact bytes hashed into
	// the tree.
	Leaf       string      `json:"leaf"`
	Checkpoint string      `json:"checkpoint"`
	Proof      []tlog.Hash `json:"proof"`
}

// ConsistencyProof is the answer of GET /v1/audit/consistency?from=N: the
// log at checkpoint New extends the log at checkpoint Old. The server
// leaves Old empty; the caller fills in its own saved checkpoint.
type ConsistencyProof struct {
	Old   string      `json:"old"`
	New   string      `json:"new"`
	Proof []tlog.Hash `json:"proof"`
}
