package store

import (
	"context"
	"encoding/json"
	"time"
)

// Kinds of inventory item. Discovery records processes, agents, MCP
// servers, credentials, MCP servers declared in client configurations, and
// hosts (one item per host, last seen at its latest scan).
const (
	InventoryHost        = "host"
	InventoryProcess     = "process"
	InventoryAgent       = "agent"
	InventoryMCPServer   = "mcp_server"
	InventoryCredential  = "credential"
	InventoryDeclaredMCP = "mcp_config"
)

// InventoryItem is one thing the runtime sensor saw, with when it was first
// and last seen. It never holds a secret value: Data is the sensor's
// record (internal/discover), which carries fingerprints only.
type InventoryItem struct {
	Kind string `json:"kind"`
	// Key is unique within Kind and stable across scans (a process is its
	// host, pid and start time; a credential its id).
	Key  string `json:"key"`
	Host string `json:"host"`
	Name string `json:"name"`
	// Identity is the SPIFFE ID the item runs as; empty when it has none.
	Identity string `json:"identity,omitempty"`
	// Shadow is whether the item runs around writ (an agent without
	// identity, a static credential, a service reached directly).
	Shadow    bool            `json:"shadow"`
	Data      json.RawMessage `json:"data,omitempty"`
	FirstSeen time.Time       `json:"first_seen"`
	LastSeen  time.Time       `json:"last_seen"`
}

// InventoryFilter selects inventory items; zero fields select everything.
type InventoryFilter struct {
	Kind     string
	Host     string
	Identity string
	// Shadow, when set, selects items whose Shadow equals it.
	Shadow *bool
	// SeenSince selects items last seen at or after it.
	SeenSince time.Time
	// Limit bounds the answer; 0 means no bound.
	Limit int
}

// Inventory stores what discovery saw, keyed by Kind and Key.
type Inventory interface {
	// RecordInventory stores items seen at time seen, in one transaction:
	// a new item gets FirstSeen and LastSeen = seen, a known one keeps its
	// FirstSeen, gets LastSeen = seen (never earlier than it was) and its
	// other fields replaced. The items' own FirstSeen and LastSeen are
	// ignored.
	RecordInventory(ctx context.Context, seen time.Time, items []InventoryItem) error
	// ListInventory returns the items f selects, ordered by kind, host,
	// name and key.
	ListInventory(ctx context.Context, f InventoryFilter) ([]InventoryItem, error)
}
