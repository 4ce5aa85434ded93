package apitypes

import (
	"encoding/json"
	"time"
)

// DiscoveryReport is one scan of the runtime sensor: POST /v1/discover
// (`writ discover`). It holds no secret value: credentials are
// fingerprints, command lines are redacted. See docs/discover.md.
type DiscoveryReport struct {
	Time        time.Time              `json:"time"`
	Host        string                 `json:"host"`
	Processes   []DiscoveredProcess    `json:"processes"`
	Credentials []DiscoveredCredential `json:"credentials"`
	MCPConfigs  []DeclaredMCPServer    `json:"mcp_configs"`
	Shadows     []Shadow               `json:"shadows"`
	Limits      []string               `json:"limits,omitempty"`
}

// DiscoveredProcess is a process a scan saw; Kind is "agent",
// "mcp_server" or "process".
type DiscoveredProcess struct {
	PID         int          `json:"pid"`
	PPID        int          `json:"ppid"`
	UID         int          `json:"uid"`
	User        string       `json:"user,omitempty"`
	Exe         string       `json:"exe,omitempty"`
	SHA256      string       `json:"sha256,omitempty"`
	Start       time.Time    `json:"start"`
	StartTicks  uint64       `json:"start_ticks"`
	Cgroup      string       `json:"cgroup,omitempty"`
	Container   string       `json:"container,omitempty"`
	Cmdline     []string     `json:"cmdline"`
	Kind        string       `json:"kind"`
	Name        string       `json:"name,omitempty"`
	Confidence  float64      `json:"confidence,omitempty"`
	Evidence    []string     `json:"evidence,omitempty"`
	Selectors   []string     `json:"selectors,omitempty"`
	Identity    string       `json:"identity,omitempty"`
	Connections []Connection `json:"connections,omitempty"`
	Credentials []string     `json:"credentials,omitempty"`
}

// Connection is an outbound TCP connection; Route is "writ" or "direct".
type Connection struct {
	Local   string `json:"local"`
	Remote  string `json:"remote"`
	Route   string `json:"route"`
	Service string `json:"service,omitempty"`
}

// DiscoveredCredential is a credential a process holds or its owner keeps
// in a file; Source is "env", "file" or "mcp_config". Never the value.
type DiscoveredCredential struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	Source      string `json:"source"`
	Name        string `json:"name,omitempty"`
	Path        string `json:"path,omitempty"`
	Line        int    `json:"line,omitempty"`
	Fingerprint string `json:"fingerprint"`
	UID         int    `json:"uid"`
	PIDs        []int  `json:"pids,omitempty"`
}

// DeclaredMCPServer is an MCP server in a client's configuration file.
type DeclaredMCPServer struct {
	Client      string   `json:"client"`
	Path        string   `json:"path"`
	Server      string   `json:"server"`
	Command     string   `json:"command,omitempty"`
	Args        []string `json:"args,omitempty"`
	URL         string   `json:"url,omitempty"`
	Env         []string `json:"env,omitempty"`
	Credentials []string `json:"credentials,omitempty"`
	UID         int      `json:"uid"`
}

// Shadow is something that runs around writ; Kind is "unidentified",
// "static_credential" or "direct_access".
type Shadow struct {
	Kind       string `json:"kind"`
	PID        int    `json:"pid,omitempty"`
	Process    string `json:"process,omitempty"`
	Credential string `json:"credential,omitempty"`
	Service    string `json:"service,omitempty"`
	Remote     string `json:"remote,omitempty"`
	Detail     string `json:"detail"`
}

// Inventory is everything writ knows runs or ran: GET /v1/inventory
// (`writ inventory`). Query parameters filter it: kind (identity,
// instance, agent, mcp_server, process, credential, mcp_config, service,
// host, owner), shadow (true or false), identity (a SPIFFE ID) and host.
type Inventory struct {
	Identities  []InventoryIdentity   `json:"identities"`
	Instances   []InventoryInstance   `json:"instances"`
	Discovered  []InventoryItem       `json:"discovered"`
	Credentials []InventoryCredential `json:"credentials"`
	Services    []InventoryService    `json:"services"`
	MCPServers  []InventoryService    `json:"mcp_servers"`
	Hosts       []InventoryHost       `json:"hosts"`
	Owners      []InventoryOwner      `json:"owners"`
}

// InventoryIdentity is a registration entry with its owner (the "owner"
// label, else "team") and how many instances of it are live.
type InventoryIdentity struct {
	Name      string            `json:"name"`
	SpiffeID  string            `json:"spiffe_id"`
	Selectors []string          `json:"selectors"`
	Owner     string            `json:"owner,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	// Discovered counts the discovered agents and MCP servers that run as
	// this identity, live ones in Live.
	Discovered int `json:"discovered"`
	Live       int `json:"live"`
}

// InventoryInstance is an attested process instance; Live is whether it
// was seen in the last hour.
type InventoryInstance struct {
	ID        string    `json:"id"`
	PID       int       `json:"pid"`
	UID       int       `json:"uid"`
	Exe       string    `json:"exe"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Live      bool      `json:"live"`
}

// InventoryItem is something the runtime sensor saw. Live is whether the
// latest scan of its host saw it. Data is the sensor's record (a
// DiscoveredProcess, DiscoveredCredential or DeclaredMCPServer, or a
// host's scan summary).
type InventoryItem struct {
	Kind      string          `json:"kind"`
	Key       string          `json:"key"`
	Host      string          `json:"host"`
	Name      string          `json:"name"`
	Identity  string          `json:"identity,omitempty"`
	Shadow    bool            `json:"shadow"`
	Live      bool            `json:"live"`
	FirstSeen time.Time       `json:"first_seen"`
	LastSeen  time.Time       `json:"last_seen"`
	Data      json.RawMessage `json:"data,omitempty"`
}

// InventoryCredential is a credential: Source "brokered" (held sealed by
// writ's broker and injected) or "discovered" (a static credential found
// on a host).
type InventoryCredential struct {
	Name        string    `json:"name"`
	Source      string    `json:"source"`
	Kind        string    `json:"kind"`
	Host        string    `json:"host,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	Shadow      bool      `json:"shadow"`
	FirstSeen   time.Time `json:"first_seen,omitzero"`
	LastSeen    time.Time `json:"last_seen,omitzero"`
}

// InventoryService is a Service or MCPServer resource.
type InventoryService struct {
	Name     string `json:"name"`
	Upstream string `json:"upstream,omitempty"`
	Owner    string `json:"owner,omitempty"`
}

// InventoryHost is a host the sensor scanned.
type InventoryHost struct {
	Name      string    `json:"name"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// InventoryOwner is an owner named by identities' labels.
type InventoryOwner struct {
	Owner      string   `json:"owner"`
	Identities []string `json:"identities"`
}
