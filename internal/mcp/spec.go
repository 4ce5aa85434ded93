package mcp

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/store"
)

// ServerSpec is the spec of an MCPServer document: one upstream MCP server
// that agents reach through the gateway. It decodes strictly from YAML and
// is stored as JSON; [Compile] checks it and builds a [Server].
type ServerSpec struct {
	// URL is the upstream's streamable-HTTP endpoint, e.g.
	// https://mcp.example.com/mcp. Exactly one of URL and Command is set.
	URL string `yaml:"url,omitempty" json:"url,omitempty"`
	// Command starts a stdio upstream: the gateway runs it, supervises
	// it and restarts it with backoff. Args are its arguments; Env holds
	// plain (non-secret) environment variables; Dir its working directory.
	Command string            `yaml:"command,omitempty" json:"command,omitempty"`
	Args    []string          `yaml:"args,omitempty" json:"args,omitempty"`
	Env     map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	Dir     string            `yaml:"dir,omitempty" json:"dir,omitempty"`
	// Pin is how tool descriptors are pinned: tofu (the default), signed
	// or off.
	Pin string `yaml:"pin,omitempty" json:"pin,omitempty"`
	// PublisherKey is the publisher's Ed25519 public key for pin: signed,
	// written "ed25519:" followed by the 32-byte key in standard base64.
	PublisherKey string `yaml:"publisher_key,omitempty" json:"publisher_key,omitempty"`
	// Manifest is the path, on the writ server, of the signed tool
	// manifest for pin: signed (see `writ mcp sign`).
	Manifest string `yaml:"manifest,omitempty" json:"manifest,omitempty"`
	// Credential injects a broker credential into every upstream request
	// (URL upstreams) or into the process environment (stdio upstreams).
	Credential *CredentialSpec `yaml:"credential,omitempty" json:"credential,omitempty"`
	// Labels are the flow labels of every tool of the server.
	Labels []string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// Tools holds per-tool settings, keyed by the upstream tool name.
	Tools map[string]ToolSpec `yaml:"tools,omitempty" json:"tools,omitempty"`
	// LogArguments records the raw arguments of each call in the audit
	// log; by default only their digest is recorded.
	LogArguments bool `yaml:"log_arguments,omitempty" json:"log_arguments,omitempty"`
	// Sessions is shared (the default: every agent's calls go over the
	// gateway's one upstream session) or per_agent: each agent session
	// of a revision before 2026-07-28 gets an upstream session of its
	// own (for a stdio server, a process of its own), over which the
	// server may ask that agent for sampling, elicitation and roots
	// during a call the pre-2026 way (see docs/mcp.md).
	Sessions string       `yaml:"sessions,omitempty" json:"sessions,omitempty"`
	Timeouts TimeoutsSpec `yaml:"timeouts,omitempty" json:"timeouts,omitzero"`
	Restart  RestartSpec  `yaml:"restart,omitempty" json:"restart,omitzero"`
}

// CredentialSpec names a broker credential and where it goes.
type CredentialSpec struct {
	Name string `yaml:"name" json:"name"`
	// Header is the request header for URL upstreams (default
	// Authorization).
	Header string `yaml:"header,omitempty" json:"header,omitempty"`
	// Template formats the header value; "{value}" is replaced by the
	// credential. Default "Bearer {value}" for Authorization, "{value}"
	// for any other header.
	Template string `yaml:"template,omitempty" json:"template,omitempty"`
	// Env is the environment variable for stdio upstreams.
	Env string `yaml:"env,omitempty" json:"env,omitempty"`
}

// ToolSpec is the configuration of one tool.
type ToolSpec struct {
	// Labels are the tool's flow labels, added to the server's.
	Labels []string `yaml:"labels,omitempty" json:"labels,omitempty"`
}

// TimeoutsSpec bounds upstream work. Durations are written like "10s".
type TimeoutsSpec struct {
	// Connect bounds starting or connecting to the upstream and its
	// initialisation (default 30s).
	Connect string `yaml:"connect,omitempty" json:"connect,omitempty"`
	// Call bounds one forwarded request (default 2m).
	Call string `yaml:"call,omitempty" json:"call,omitempty"`
}

// RestartSpec is the backoff between restarts of a stdio upstream.
type RestartSpec struct {
	// Initial is the first delay (default 1s); it doubles on each
	// failure up to Max (default 1m), and is reset once the process has
	// run for Max.
	Initial string `yaml:"initial,omitempty" json:"initial,omitempty"`
	Max     string `yaml:"max,omitempty" json:"max,omitempty"`
}

// Session modes (ServerSpec.Sessions).
const (
	SessionsShared   = "shared"
	SessionsPerAgent = "per_agent"
)

// Pin modes.
const (
	PinTOFU   = "tofu"
	PinSigned = "signed"
	PinOff    = "off"
)

// Server is a compiled MCPServer: checked and ready to connect.
type Server struct {
	Name    string
	Version int64
	Spec    ServerSpec
	// URL is the parsed upstream URL; nil for stdio upstreams.
	URL *url.URL
	// Pin is the pin mode (never empty).
	Pin string
	// PublisherKey is set for pin: signed.
	PublisherKey ed25519.PublicKey
	// Header and Template say how a URL upstream's credential is sent.
	Header, Template string
	Connect, Call    time.Duration
	RestartInitial   time.Duration
	RestartMax       time.Duration
}

// Target is how the server appears in policy and audit: "MCPServer/NAME".
func (s *Server) Target() string { return resource.KindMCPServer + "/" + s.Name }

// Stdio reports whether the upstream is a process the gateway runs.
func (s *Server) Stdio() bool { return s.URL == nil }

// ToolLabels returns the flow labels of tool: the server's and the tool's
// own, without duplicates, sorted.
func (s *Server) ToolLabels(tool string) []string {
	out := slices.Clone(s.Spec.Labels)
	out = append(out, s.Spec.Tools[tool].Labels...)
	slices.Sort(out)
	return slices.Compact(out)
}

// StoredSpec validates an MCPServer document and returns its spec as the
// JSON the server stores. Errors name file, line and field.
func StoredSpec(d resource.Document) ([]byte, error) {
	var spec ServerSpec
	if err := d.DecodeSpec(&spec); err != nil {
		return nil, err
	}
	if _, err := compile(d.Name, 0, spec, false, func(field string, format string, args ...any) error {
		if strings.HasPrefix(field, "metadata.") {
			return d.Errorf(d.Find("metadata", "name"), field, format, args...)
		}
		path := append([]string{"spec"}, strings.Split(field, ".")...)
		n := d.Find(path...)
		for n == nil && len(path) > 1 {
			path = path[:len(path)-1]
			n = d.Find(path...)
		}
		return d.Errorf(n, "spec."+field, format, args...)
	}); err != nil {
		return nil, err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encode spec of %s: %w", d.Ref(), err)
	}
	return b, nil
}

// Compile builds a Server from a stored MCPServer resource.
func Compile(r store.Resource) (*Server, error) { return compileResource(r, false) }

// CompileRemote is [Compile] for a gateway whose tools are checked by
// another process (a node's gateway, checked by its server): a signed
// server's manifest is a file on that server, so it is not looked for
// here.
func CompileRemote(r store.Resource) (*Server, error) { return compileResource(r, true) }

func compileResource(r store.Resource, remote bool) (*Server, error) {
	var spec ServerSpec
	if err := json.Unmarshal(r.Spec, &spec); err != nil {
		return nil, fmt.Errorf("load MCPServer/%s: stored spec is not valid: %w", r.Name, err)
	}
	return compile(r.Name, r.Version, spec, remote, func(field string, format string, args ...any) error {
		if !strings.HasPrefix(field, "metadata.") {
			field = "spec." + field
		}
		return fmt.Errorf("load MCPServer/%s@%d: %s: %s", r.Name, r.Version, field, fmt.Sprintf(format, args...))
	})
}

var (
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	labelRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_.:-]{0,62}$`)
	// toolNameRE is the MCP tool-name grammar (1-128 of A-Z a-z 0-9 _ - .),
	// with '/' also allowed as some servers use it.
	toolNameRE = regexp.MustCompile(`^[A-Za-z0-9_.\-/]{1,128}$`)
)

// badf reports a problem with one field of the spec.
type badf func(field, format string, args ...any) error

func compile(name string, version int64, spec ServerSpec, remoteManifest bool, bad badf) (*Server, error) {
	s := &Server{Name: name, Version: version, Spec: spec}
	if strings.Contains(name, "__") {
		return nil, bad("metadata.name", "the name %q contains \"__\", which separates server and tool names on the aggregate endpoint /mcp; rename the server", name)
	}
	switch {
	case spec.URL == "" && spec.Command == "":
		return nil, bad("url", "missing; set url (a streamable-HTTP endpoint) or command (a stdio server writ runs)")
	case spec.URL != "" && spec.Command != "":
		return nil, bad("command", "set url or command, not both")
	}
	if spec.URL != "" {
		if err := s.compileURL(bad); err != nil {
			return nil, err
		}
	} else if err := s.compileCommand(bad); err != nil {
		return nil, err
	}
	if err := s.compilePin(remoteManifest, bad); err != nil {
		return nil, err
	}
	if err := s.compileCredential(bad); err != nil {
		return nil, err
	}
	for i, l := range spec.Labels {
		if !labelRE.MatchString(l) {
			return nil, bad(fmt.Sprintf("labels.%d", i), "%q is not a label: use lower-case letters, digits, '_', '.', ':' or '-', such as private_data", l)
		}
	}
	for _, tool := range slices.Sorted(maps.Keys(spec.Tools)) {
		if !toolNameRE.MatchString(tool) {
			return nil, bad("tools."+tool, "%q is not a tool name", tool)
		}
		for i, l := range spec.Tools[tool].Labels {
			if !labelRE.MatchString(l) {
				return nil, bad(fmt.Sprintf("tools.%s.labels.%d", tool, i), "%q is not a label: use lower-case letters, digits, '_', '.', ':' or '-', such as untrusted_content", l)
			}
		}
	}
	switch spec.Sessions {
	case "", SessionsShared, SessionsPerAgent:
	default:
		return nil, bad("sessions", "%q: write shared (the default) or per_agent", spec.Sessions)
	}
	var err error
	dur := func(field, v string, def, max time.Duration) (time.Duration, error) {
		if v == "" {
			return def, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > max {
			return 0, bad(field, "%q: write a positive duration up to %s, such as 10s", v, max)
		}
		return d, nil
	}
	if s.Connect, err = dur("timeouts.connect", spec.Timeouts.Connect, 30*time.Second, 10*time.Minute); err != nil {
		return nil, err
	}
	if s.Call, err = dur("timeouts.call", spec.Timeouts.Call, 2*time.Minute, time.Hour); err != nil {
		return nil, err
	}
	if spec.URL != "" && (spec.Restart != RestartSpec{}) {
		return nil, bad("restart", "only a stdio server (command) is restarted; remove restart")
	}
	if s.RestartInitial, err = dur("restart.initial", spec.Restart.Initial, time.Second, time.Hour); err != nil {
		return nil, err
	}
	if s.RestartMax, err = dur("restart.max", spec.Restart.Max, time.Minute, 24*time.Hour); err != nil {
		return nil, err
	}
	if s.RestartMax < s.RestartInitial {
		return nil, bad("restart.max", "%s is shorter than restart.initial (%s)", s.RestartMax, s.RestartInitial)
	}
	return s, nil
}

func (s *Server) compileURL(bad badf) error {
	spec := s.Spec
	u, err := url.Parse(spec.URL)
	switch {
	case err != nil:
		return bad("url", "%q is not a URL: %v", spec.URL, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("url", "%q: the scheme must be http or https (for a local program, use command)", spec.URL)
	case u.Host == "":
		return bad("url", "%q has no host", spec.URL)
	case u.User != nil:
		return bad("url", "the URL holds user information; put credentials in the broker (writ credential put) and name them under credential")
	case u.Fragment != "":
		return bad("url", "%q: an endpoint takes no fragment", spec.URL)
	}
	for field, set := range map[string]bool{"args": len(spec.Args) > 0, "env": len(spec.Env) > 0, "dir": spec.Dir != ""} {
		if set {
			return bad(field, "only a stdio server (command) takes %s; remove it or use command instead of url", field)
		}
	}
	s.URL = u
	return nil
}

func (s *Server) compileCommand(bad badf) error {
	spec := s.Spec
	if strings.ContainsAny(spec.Command, "\x00\n") {
		return bad("command", "must be one line")
	}
	for i, a := range spec.Args {
		if strings.ContainsRune(a, 0) {
			return bad(fmt.Sprintf("args.%d", i), "contains a NUL byte")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		if !envNameRE.MatchString(k) {
			return bad("env."+k, "%q is not an environment variable name", k)
		}
		if strings.ContainsRune(spec.Env[k], 0) {
			return bad("env."+k, "contains a NUL byte")
		}
		if looksSecret(k) {
			return bad("env."+k, "looks like a secret; put it in the broker (writ credential put) and name it under credential with env: %s, so it is sealed at rest and never shown", k)
		}
	}
	if spec.Dir != "" && !strings.HasPrefix(spec.Dir, "/") {
		return bad("dir", "%q must be an absolute path", spec.Dir)
	}
	return nil
}

// looksSecret reports whether an environment variable's name suggests it
// holds a secret, which belongs in the broker instead of the spec.
func looksSecret(name string) bool {
	n := strings.ToUpper(name)
	for _, w := range []string{"TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY", "APIKEY", "PRIVATE_KEY", "ACCESS_KEY", "CREDENTIAL"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

func (s *Server) compilePin(remoteManifest bool, bad badf) error {
	spec := s.Spec
	s.Pin = spec.Pin
	if s.Pin == "" {
		s.Pin = PinTOFU
	}
	switch s.Pin {
	case PinTOFU, PinOff:
		if spec.PublisherKey != "" {
			return bad("publisher_key", "only pin: signed takes a publisher key")
		}
		if spec.Manifest != "" {
			return bad("manifest", "only pin: signed takes a manifest")
		}
	case PinSigned:
		if spec.PublisherKey == "" {
			return bad("publisher_key", "missing; pin: signed needs the publisher's Ed25519 public key, written ed25519:BASE64 (writ mcp sign prints it)")
		}
		k, err := ParsePublicKey(spec.PublisherKey)
		if err != nil {
			return bad("publisher_key", "%v", err)
		}
		s.PublisherKey = k
		if spec.Manifest == "" {
			return bad("manifest", "missing; pin: signed needs the path of the signed manifest on the writ server (writ mcp sign writes it)")
		}
		if !strings.HasPrefix(spec.Manifest, "/") {
			return bad("manifest", "%q must be an absolute path on the writ server", spec.Manifest)
		}
		if _, err := os.Stat(spec.Manifest); err != nil && !remoteManifest {
			return bad("manifest", "read %s: %v", spec.Manifest, err)
		}
	default:
		return bad("pin", "%q is not a pin mode; use tofu, signed or off", spec.Pin)
	}
	return nil
}

func (s *Server) compileCredential(bad badf) error {
	c := s.Spec.Credential
	if c == nil {
		return nil
	}
	if !resource.ValidName(c.Name) {
		return bad("credential.name", "%q is not a credential name; list them with `writ credential list`", c.Name)
	}
	if s.URL == nil {
		switch {
		case c.Env == "":
			return bad("credential.env", "missing; a stdio server receives its credential in an environment variable, e.g. env: GITHUB_TOKEN")
		case !envNameRE.MatchString(c.Env):
			return bad("credential.env", "%q is not an environment variable name", c.Env)
		case c.Header != "" || c.Template != "":
			return bad("credential.header", "a stdio server receives its credential in env, not a header")
		}
		if _, dup := s.Spec.Env[c.Env]; dup {
			return bad("credential.env", "%s is also set under env; the credential would replace it", c.Env)
		}
		return nil
	}
	if c.Env != "" {
		return bad("credential.env", "a URL upstream receives its credential in a header; use header (default Authorization)")
	}
	s.Header = c.Header
	if s.Header == "" {
		s.Header = "Authorization"
	}
	if !validHeaderName(s.Header) {
		return bad("credential.header", "%q is not a header name", c.Header)
	}
	s.Template = c.Template
	if s.Template == "" {
		s.Template = "{value}"
		if strings.EqualFold(s.Header, "Authorization") {
			s.Template = "Bearer {value}"
		}
	}
	if !strings.Contains(s.Template, "{value}") {
		return bad("credential.template", "%q does not contain {value}", c.Template)
	}
	if strings.ContainsAny(s.Template, "\r\n") {
		return bad("credential.template", "must be one line")
	}
	return nil
}

func validHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for _, c := range []byte(h) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ParsePublicKey parses a publisher key written "ed25519:BASE64".
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b64, ok := strings.CutPrefix(s, "ed25519:")
	if !ok {
		return nil, fmt.Errorf("%q is not written ed25519:BASE64", s)
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%q is not a 32-byte Ed25519 public key in standard base64", s)
	}
	return ed25519.PublicKey(b), nil
}

// FormatPublicKey writes k as ParsePublicKey reads it.
func FormatPublicKey(k ed25519.PublicKey) string {
	return "ed25519:" + base64.StdEncoding.EncodeToString(k)
}
