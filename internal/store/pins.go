package store

import (
	"context"
	"time"
)

// Pin states.
const (
	// PinPinned is a tool trusted on first sighting (or by a signed
	// manifest).
	PinPinned = "pinned"
	// PinQuarantined is a tool whose descriptor changed (or that does not
	// match its manifest): hidden from agents and refused until approved.
	PinQuarantined = "quarantined"
	// PinApproved is a tool whose current descriptor a human approved.
	PinApproved = "approved"
)

// Pin is the trusted descriptor of one tool of one MCP server. Digests are
// "sha256:" and the hex SHA-256 of a canonical JSON encoding (see
// internal/mcp).
type Pin struct {
	Server string `json:"server"`
	Tool   string `json:"tool"`
	// Digest is the trusted digest of the tool's descriptor. For a tool
	// quarantined on first sighting it is empty.
	Digest string `json:"digest,omitempty"`
	// Observed is the digest the upstream announced last; it differs from
	// Digest while the tool is quarantined for a change.
	Observed string `json:"observed"`
	// Shape is the digest of the descriptor without its name, by which a
	// renamed tool is recognised.
	Shape  string `json:"shape"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Actor is who approved the tool; empty for the gateway's own pins.
	Actor string `json:"actor,omitempty"`
	// Revision starts at 1 and grows with every update.
	Revision  int64     `json:"revision"`
	FirstSeen time.Time `json:"first_seen"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Pins stores tool pins, keyed by server and tool.
type Pins interface {
	// CreatePin stores a new pin at revision 1; ErrExists if the tool is
	// pinned already (another gateway goroutine or process won the race).
	CreatePin(ctx context.Context, p Pin) (Pin, error)
	// UpdatePin replaces the pin of p.Server/p.Tool if its stored revision
	// is p.Revision, and bumps the revision. It returns ErrNotFound if
	// there is none and ErrPrecondition, with the stored pin, if it was
	// changed since p was read. FirstSeen is kept.
	UpdatePin(ctx context.Context, p Pin) (Pin, error)
	GetPin(ctx context.Context, server, tool string) (Pin, error)
	// ListPins returns the pins of server, or of every server when server
	// is "", ordered by server and tool.
	ListPins(ctx context.Context, server string) ([]Pin, error)
	DeletePin(ctx context.Context, server, tool string) error
}
