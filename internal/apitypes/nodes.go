package apitypes

import "time"

// JoinTokenRequest is the body of POST /v1/nodes/tokens.
type JoinTokenRequest struct {
	// TTL is how long the token may be used, as a Go duration ("1h");
	// empty for the server's default (1h).
	TTL string `json:"ttl,omitempty"`
	// Node, when set, is the name the node joining with the token gets.
	Node string `json:"node,omitempty"`
}

// JoinToken is a node join token. Token (the secret) is set only in the
// answer to its creation; lists never carry it.
type JoinToken struct {
	ID        string     `json:"id"`
	Token     string     `json:"token,omitempty"`
	Node      string     `json:"node,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	UsedAt    *time.Time `json:"used_at,omitempty"`
	UsedBy    string     `json:"used_by,omitempty"`
}

// Node is an attested writ node.
type Node struct {
	Name     string `json:"name"`
	SpiffeID string `json:"spiffe_id"`
	// ID is the attestation id, carried in the node's SVIDs.
	ID         string     `json:"id"`
	Attestor   string     `json:"attestor"`
	Selectors  []string   `json:"selectors"`
	AttestedAt time.Time  `json:"attested_at"`
	LastSeen   time.Time  `json:"last_seen"`
	AckedSeq   int64      `json:"acked_seq"`
	EvictedAt  *time.Time `json:"evicted_at,omitempty"`
}

// EvictRequest is the body of POST /v1/nodes/{name}/evict.
type EvictRequest struct {
	Reason string `json:"reason,omitempty"`
}
