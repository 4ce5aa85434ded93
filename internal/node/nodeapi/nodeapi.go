// Package nodeapi is the wire format of the link between a writ node and
// its server: the paths of the node API (HTTPS on the server's
// tls_listen address; every call but the join requires the node's
// X.509-SVID), the request and answer bodies, and the messages of the
// change stream. Node and server are built from the same release; the
// link is not a public API.
//
// The stream (GET [PathStream]?after=SEQ) is one long HTTP/2 answer of
// JSON objects, one per line ([Message]): first a snapshot of the full
// state when the node is new, was away longer than the server retains
// changes, or the server restarted since the node's sequence; then every
// change in sequence order, and a heartbeat when nothing changed for a
// while, so that the node knows its server is alive. The node
// acknowledges what it applied ([PathAck]).
package nodeapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/writ-dev/writ/internal/store"
)

// Paths of the node API.
const (
	PathChallenge = "/node/v1/challenge"
	PathAttest    = "/node/v1/attest"
	// PathActivate is the first round of a two-round attestor (tpm): the
	// body is an AttestRequest with the first payload, the answer an
	// ActivateAnswer; the second payload goes to PathAttest with the
	// same nonce and public key.
	PathActivate = "/node/v1/attest/activate"
	PathRenew    = "/node/v1/renew"
	PathX509SVID = "/node/v1/x509svid"
	PathJWTSVID  = "/node/v1/jwtsvid"
	PathStream   = "/node/v1/stream"
	PathAck      = "/node/v1/ack"
	PathAudit    = "/node/v1/audit"
)

// Challenge is the answer of PathChallenge.
type Challenge struct {
	Nonce []byte `json:"nonce"`
}

// AttestRequest is the body of PathAttest.
type AttestRequest struct {
	Nonce []byte `json:"nonce"`
	// PublicKey is the PKIX DER of the key the node SVID is for.
	PublicKey []byte `json:"public_key"`
	Attestor  string `json:"attestor"`
	Payload   []byte `json:"payload"`
	// Name is the name the node asks for.
	Name string `json:"name,omitempty"`
}

// ActivateAnswer is the answer of PathActivate: the attestor's challenge
// (for tpm: the credential to activate and the PCR banks to quote).
type ActivateAnswer struct {
	Challenge []byte `json:"challenge"`
}

// SVIDAnswer carries a node SVID (answer of PathAttest and PathRenew) or a
// workload X.509-SVID (answer of PathX509SVID): the leaf first, DER.
type SVIDAnswer struct {
	Name  string   `json:"name,omitempty"`
	Chain [][]byte `json:"chain"`
	// Bundle is the SPIFFE bundle document of the trust domain (JWKS),
	// with PathAttest and PathRenew.
	Bundle json.RawMessage `json:"bundle,omitempty"`
}

// RenewRequest is the body of PathRenew.
type RenewRequest struct {
	PublicKey []byte `json:"public_key"`
}

// X509SVIDRequest asks the server to sign a workload's X.509-SVID.
type X509SVIDRequest struct {
	SpiffeID  string        `json:"spiffe_id"`
	PublicKey []byte        `json:"public_key"`
	TTL       time.Duration `json:"ttl,omitempty"`
	Instance  string        `json:"instance,omitempty"`
}

// JWTSVIDRequest asks the server to sign a workload's JWT-SVID.
type JWTSVIDRequest struct {
	SpiffeID string        `json:"spiffe_id"`
	Audience []string      `json:"audience"`
	TTL      time.Duration `json:"ttl,omitempty"`
	Instance string        `json:"instance,omitempty"`
}

// JWTSVIDAnswer is the answer of PathJWTSVID.
type JWTSVIDAnswer struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// AckRequest is the body of PathAck.
type AckRequest struct {
	Seq int64 `json:"seq"`
}

// Message types of the stream.
const (
	MsgSnapshot  = "snapshot"
	MsgChange    = "change"
	MsgHeartbeat = "heartbeat"
)

// Change kinds carried by the stream.
const (
	KindEntry      = "entry"      // Body: store.Entry
	KindRevocation = "revocation" // Body: Revocation; delete = lifted
	KindBundle     = "bundle"     // Body: SPIFFE bundle document
	KindResource   = "resource"   // Body: store.Resource (Key kind/name)
	KindNode       = "node_evicted"
)

// Revocation is a revocation on the wire.
type Revocation struct {
	Kind      string    `json:"kind"`
	Value     string    `json:"value"`
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// RevocationKey is the change key of a revocation.
func RevocationKey(kind, value string) string { return kind + "/" + value }

// Snapshot is the full state a node serves from.
type Snapshot struct {
	Entries     []store.Entry    `json:"entries"`
	Revocations []Revocation     `json:"revocations"`
	Resources   []store.Resource `json:"resources"`
	// Pins are the MCP tool pins (KindPin).
	Pins   []store.Pin     `json:"pins"`
	Bundle json.RawMessage `json:"bundle"`
}

// Message is one line of the stream.
type Message struct {
	Type string `json:"type"`
	// Seq is the change sequence the message brings the node to.
	Seq      int64         `json:"seq"`
	Snapshot *Snapshot     `json:"snapshot,omitempty"`
	Change   *store.Change `json:"change,omitempty"`
	// Time is the server's time (heartbeats).
	Time time.Time `json:"time,omitzero"`
}

// MaxMessage bounds one stream line (a snapshot of a large registry).
const MaxMessage = 64 << 20

// Reader reads stream messages.
type Reader struct {
	sc *bufio.Scanner
}

// NewReader reads messages from r.
func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxMessage)
	return &Reader{sc: sc}
}

// Next returns the next message, io.EOF at the end of the stream, or an
// error naming what was malformed.
func (r *Reader) Next() (Message, error) {
	if !r.sc.Scan() {
		if err := r.sc.Err(); err != nil {
			return Message{}, fmt.Errorf("read change stream: %w", err)
		}
		return Message{}, io.EOF
	}
	return DecodeMessage(r.sc.Bytes())
}

// DecodeMessage decodes and checks one stream line.
func DecodeMessage(line []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(line, &m); err != nil {
		return Message{}, fmt.Errorf("change stream message: %w", err)
	}
	if m.Seq < 0 {
		return Message{}, fmt.Errorf("change stream message: negative sequence %d", m.Seq)
	}
	switch m.Type {
	case MsgSnapshot:
		if m.Snapshot == nil {
			return Message{}, errors.New("change stream message: snapshot without state")
		}
	case MsgChange:
		c := m.Change
		if c == nil || c.Seq != m.Seq || c.Kind == "" {
			return Message{}, errors.New("change stream message: change without kind or with a mismatched sequence")
		}
		switch c.Op {
		case store.ChangePut, store.ChangeDelete, store.ChangeResync:
		default:
			return Message{}, fmt.Errorf("change stream message: unknown operation %q", c.Op)
		}
	case MsgHeartbeat:
	default:
		return Message{}, fmt.Errorf("change stream message: unknown type %q", m.Type)
	}
	return m, nil
}

// Paths of the runtime sensor on a node (internal/discover): what it
// needs from the server, and where it reports each scan.
const (
	PathDiscovery = "/node/v1/discovery"
	PathInventory = "/node/v1/inventory"
)

// DiscoveryConfig is the answer of GET PathDiscovery: what a node's sensor
// needs to classify what it finds the way the server's does.
type DiscoveryConfig struct {
	// FingerprintKey is the deployment's key for secret fingerprints, so
	// that a credential found on a node has the fingerprint it would have
	// anywhere else in the deployment. It is never written to disk.
	FingerprintKey []byte `json:"fingerprint_key"`
	// Upstreams are the upstream addresses of the writ Services: a direct
	// connection to one is shadow access.
	Upstreams []Upstream `json:"upstreams"`
	// WritAddrs are writ's listeners (access proxy, MCP gateway, API) as
	// the server has them: a connection to one is through writ.
	WritAddrs []string `json:"writ_addrs"`
}

// Upstream is a Service's upstream address (HOST:PORT, an IP).
type Upstream struct {
	Service string `json:"service"`
	Addr    string `json:"addr"`
}

// InventoryReport is the body of POST PathInventory: the inventory items
// of one scan of the node's host (discover.InventoryItems). Every item's
// Host is the node's name; the server records them as seen when they
// arrive.
type InventoryReport struct {
	Items []store.InventoryItem `json:"items"`
}

// MaxInventoryItems bounds one report.
const MaxInventoryItems = 100_000
