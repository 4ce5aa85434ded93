package discover

import (
	"net/netip"
	"time"
)

// Kind is what a discovered process is.
type Kind string

// Kinds of process.
const (
	KindProcess   Kind = "process"    // nothing agent-like was seen
	KindAgent     Kind = "agent"      // an AI agent (a known CLI, or a program using an LLM SDK)
	KindMCPServer Kind = "mcp_server" // a Model Context Protocol server
)

// Route says how a connection reaches its destination.
type Route string

// Routes of a connection.
const (
	RouteWrit   Route = "writ"   // to one of writ's listeners (proxy or gateway)
	RouteDirect Route = "direct" // anywhere else
)

// Report is the result of one scan. It holds no secret value.
type Report struct {
	Time time.Time `json:"time"`
	Host string    `json:"host"`
	// Processes lists every process the scan could read, agents and MCP
	// servers included, in pid order.
	Processes []Process `json:"processes"`
	// Credentials lists the credentials found in processes' environments
	// and in their owners' credential files.
	Credentials []Credential `json:"credentials"`
	// MCPConfigs lists the MCP servers that client configuration files
	// (Claude Desktop, Cursor, VS Code, Windsurf, ...) declare.
	MCPConfigs []MCPDeclared `json:"mcp_configs"`
	// Shadows lists what runs around writ: agents and MCP servers without a
	// writ identity, static credentials writ could broker instead, and
	// connections to a Service's upstream that bypass writ.
	Shadows []Shadow `json:"shadows"`
	// Limits says what this scan could not see (processes of other users
	// without privilege, files it could not read).
	Limits []string `json:"limits,omitempty"`
}

// Process is one running process.
type Process struct {
	PID  int    `json:"pid"`
	PPID int    `json:"ppid"`
	UID  int    `json:"uid"`
	User string `json:"user,omitempty"`
	// Exe is the executable as /proc/PID/exe names it; SHA256 its digest
	// (empty when it could not be read).
	Exe    string `json:"exe,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Start is when the process started; StartTicks the kernel's start
	// time in clock ticks after boot (with the pid, it names the process
	// uniquely until reboot).
	Start      time.Time `json:"start"`
	StartTicks uint64    `json:"start_ticks"`
	// Cgroup is the process's cgroup v2 path; Container the container id
	// found in it, if any.
	Cgroup    string `json:"cgroup,omitempty"`
	Container string `json:"container,omitempty"`
	// Cmdline is the argument vector with secret-looking arguments
	// replaced by "[REDACTED]" markers.
	Cmdline []string `json:"cmdline"`

	Kind Kind `json:"kind"`
	// Name is what the process was recognised as ("claude",
	// "@modelcontextprotocol/server-filesystem"); empty for a plain process.
	Name string `json:"name,omitempty"`
	// Confidence is between 0 and 1; Evidence says why.
	Confidence float64  `json:"confidence,omitempty"`
	Evidence   []string `json:"evidence,omitempty"`

	// Selectors are the process's unix selectors as attestation would
	// derive them; Identity is the SPIFFE ID of the registration entry they
	// match, empty when none does.
	Selectors []string `json:"selectors,omitempty"`
	Identity  string   `json:"identity,omitempty"`

	Connections []Connection `json:"connections,omitempty"`
	// Credentials are the ids of the credentials the process holds (its
	// environment) or can read (its owner's files).
	Credentials []string `json:"credentials,omitempty"`
}

// Interesting reports whether the process is an agent or MCP server.
func (p *Process) Interesting() bool { return p.Kind == KindAgent || p.Kind == KindMCPServer }

// Connection is one outbound TCP connection of a process.
type Connection struct {
	Local  netip.AddrPort `json:"local"`
	Remote netip.AddrPort `json:"remote"`
	Route  Route          `json:"route"`
	// Service is the writ Service whose upstream Remote is, if any; a
	// direct connection to it is shadow access.
	Service string `json:"service,omitempty"`
}

// Credential is a credential found on the host. It never holds the value.
type Credential struct {
	// ID is stable across scans: it is derived from Source, Path, Name and
	// Fingerprint.
	ID string `json:"id"`
	// Kind is the detector's rule id ("openai-api-key",
	// "aws-access-token"), or what the file is ("kubeconfig") or the name
	// pattern that matched ("api-key-variable").
	Kind string `json:"kind"`
	// Source is "env" (a process's environment), "file" (a credential
	// file) or "mcp_config" (the env block of a declared MCP server).
	Source string `json:"source"`
	// Name is the environment variable's name, or the name in the file
	// (an AWS profile, a kubeconfig user, a host).
	Name string `json:"name,omitempty"`
	// Path and Line locate a file credential.
	Path string `json:"path,omitempty"`
	Line int    `json:"line,omitempty"`
	// Fingerprint is the keyed HMAC of the value ([secrets.Detector.Fingerprint]):
	// comparable with the broker's values and across scans, useless for
	// guessing the value without the key.
	Fingerprint string `json:"fingerprint"`
	// UID owns the process or file; PIDs are the processes holding it.
	UID  int   `json:"uid"`
	PIDs []int `json:"pids,omitempty"`
}

// MCPDeclared is an MCP server declared in a client's configuration file.
type MCPDeclared struct {
	Client  string   `json:"client"` // "claude-desktop", "claude-code", "cursor", "vscode", "windsurf"
	Path    string   `json:"path"`
	Server  string   `json:"server"`
	Command string   `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"` // redacted
	URL     string   `json:"url,omitempty"`  // redacted
	// Env lists the names of the environment variables it declares;
	// Credentials the ids of those that hold secrets.
	Env         []string `json:"env,omitempty"`
	Credentials []string `json:"credentials,omitempty"`
	UID         int      `json:"uid"`
}

// ShadowKind is a kind of shadow finding.
type ShadowKind string

// Kinds of shadow.
const (
	// ShadowUnidentified is an agent or MCP server with no writ identity.
	ShadowUnidentified ShadowKind = "unidentified"
	// ShadowStaticCredential is a static credential an agent or MCP server
	// holds, or that its owner keeps in a file, which writ could broker.
	ShadowStaticCredential ShadowKind = "static_credential"
	// ShadowDirectAccess is a connection to a writ Service's upstream that
	// does not go through writ.
	ShadowDirectAccess ShadowKind = "direct_access"
)

// Shadow is one thing that runs around writ.
type Shadow struct {
	Kind       ShadowKind `json:"kind"`
	PID        int        `json:"pid,omitempty"`
	Process    string     `json:"process,omitempty"` // what the process is (Name, or the exe's base name)
	Credential string     `json:"credential,omitempty"`
	Service    string     `json:"service,omitempty"`
	Remote     string     `json:"remote,omitempty"`
	Detail     string     `json:"detail"`
}
