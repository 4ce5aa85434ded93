package store

import (
	"context"
	"errors"
	"time"
)

// ErrTokenUnusable reports that a join token is unknown, expired or used
// already. The three are not told apart to the caller on purpose.
var ErrTokenUnusable = errors.New("join token unknown, expired or used")

// Node is one attested writ node (a host running `writ serve --role
// node`). Name is the node's name, part of its SPIFFE ID
// (spiffe://TD/writ/node/NAME); ID is the attestation's unique id, carried
// as the subject serialNumber of every node SVID issued under it, so that
// SVIDs of an evicted (or re-attested) node stop working although their
// signatures are still good.
type Node struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	// Attestor names how the node proved itself ("join_token",
	// "x509pop", "tpm", ...).
	Attestor string `json:"attestor"`
	// Selectors are what the attestor vouched for, e.g.
	// "x509pop:subject:cn:host-1".
	Selectors  []Selector `json:"selectors"`
	AttestedAt time.Time  `json:"attested_at"`
	// LastSeen is when the node last called the server.
	LastSeen time.Time `json:"last_seen"`
	// AckedSeq is the last change sequence the node acknowledged.
	AckedSeq int64 `json:"acked_seq"`
	// EvictedAt is set once the node is evicted; zero while it is not.
	EvictedAt time.Time `json:"evicted_at"`
}

// Nodes stores attested nodes, keyed by name.
type Nodes interface {
	// PutNode stores n as the node of n.Name, replacing a previous
	// attestation of that name (which clears EvictedAt: a node that
	// attests again with fresh evidence is a new attestation with a new
	// ID).
	PutNode(ctx context.Context, n Node) error
	GetNode(ctx context.Context, name string) (Node, error)
	// ListNodes returns every node ordered by name.
	ListNodes(ctx context.Context) ([]Node, error)
	// TouchNode records that the node of the attestation id was seen at
	// and acknowledged seq (a lower seq than stored is ignored).
	// ErrNotFound if no node has that id.
	TouchNode(ctx context.Context, id string, at time.Time, seq int64) error
	// EvictNode marks the node evicted at at; ErrNotFound if there is
	// none. Evicting twice keeps the first time.
	EvictNode(ctx context.Context, name string, at time.Time) (Node, error)
}

// JoinToken is a single-use node join token. Only the SHA-256 of the
// secret is stored; ID is a public handle shown in lists and events.
type JoinToken struct {
	ID   string `json:"id"`
	Hash []byte `json:"-"`
	// Node, when set, is the name the node joining with the token gets.
	Node      string    `json:"node,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// UsedAt and UsedBy are set when a node joined with the token.
	UsedAt time.Time `json:"used_at"`
	UsedBy string    `json:"used_by,omitempty"`
}

// JoinTokens stores join tokens.
type JoinTokens interface {
	// CreateJoinToken stores a new token; ErrExists if its ID or hash is
	// taken.
	CreateJoinToken(ctx context.Context, t JoinToken) error
	// UseJoinToken marks the token with hash used by node at now, if it
	// exists, is unused and has not expired at now, and returns it. It is
	// atomic: of concurrent uses of one token, exactly one succeeds; the
	// others get ErrTokenUnusable.
	UseJoinToken(ctx context.Context, hash []byte, node string, now time.Time) (JoinToken, error)
	// ListJoinTokens returns every token, oldest first.
	ListJoinTokens(ctx context.Context) ([]JoinToken, error)
	// DeleteJoinToken removes a token (revoking it if unused);
	// ErrNotFound if there is none.
	DeleteJoinToken(ctx context.Context, id string) error
}

// Change is one entry of the change feed: something nodes must learn
// about (an entry, a policy or service document, credential metadata, a
// revocation, a pin, a node eviction) was put or deleted. Body is the
// publisher's encoding of the new state (empty for a delete); the store
// does not interpret it.
type Change struct {
	// Seq is assigned by the store: strictly increasing in commit order,
	// never reused (gaps are allowed).
	Seq  int64  `json:"seq"`
	Kind string `json:"kind"`
	Key  string `json:"key"`
	// Op is ChangePut or ChangeDelete (or ChangeResync, a marker that
	// tells every reader to fetch the full state again).
	Op   string    `json:"op"`
	Body []byte    `json:"body,omitempty"`
	At   time.Time `json:"at"`
}

// Change operations.
const (
	ChangePut    = "put"
	ChangeDelete = "delete"
	// ChangeResync marks that changes may have been committed without a
	// feed entry (a server started, possibly after a crash between a
	// commit and its append): readers behind it resynchronise fully.
	ChangeResync = "resync"
)

// Changes is the change feed that carries state to nodes. Every server
// appends to it after it commits a change nodes must see, and reads it to
// stream changes to its nodes.
//
// Contract (both stores implement it; storetest.RunNodes checks it):
//   - AppendChange assigns Seq; sequences grow in commit order across every
//     writer of the store (every server on a shared PostgreSQL), so a reader
//     that has seen Seq N and reads ChangesSince(N) misses nothing that was
//     committed before its read. (PostgreSQL: a sequence column, with the
//     append serialised so that a lower Seq never commits after a higher
//     one is visible.)
//   - ChangesSince(after, limit) returns changes with Seq > after in order,
//     at most limit of them.
//   - PruneChanges removes changes with Seq <= upTo; OldestChange tells
//     readers what is still retained (a reader further behind resyncs).
//   - Wake-ups between processes are not part of this interface: a
//     server's in-process fan-out is woken by its own appends, and on
//     PostgreSQL by LISTEN/NOTIFY on the channel "writ_changes" whose
//     payload is the new Seq; the notification only hints, the feed is
//     the truth (read ChangesSince after a wake-up).
type Changes interface {
	AppendChange(ctx context.Context, c Change) (int64, error)
	ChangesSince(ctx context.Context, after int64, limit int) ([]Change, error)
	// LastChange returns the highest Seq (0 when the feed is empty).
	LastChange(ctx context.Context) (int64, error)
	// OldestChange returns the lowest retained Seq (0 when empty).
	OldestChange(ctx context.Context) (int64, error)
	PruneChanges(ctx context.Context, upTo int64) (int, error)
}

// NodeStore is what the server side of the node link needs: nodes, join
// tokens and the change feed. It is not part of [Store] yet so that each
// backend adds it on its own schedule; store/sqlite implements it.
type NodeStore interface {
	Nodes
	JoinTokens
	Changes
}
