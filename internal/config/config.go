// Package config is writ's process configuration (writ.yaml), built in
// stages as SPIRE does: decode the file strictly (an unknown key is an error
// naming file, line and key), merge command-line flags, fill documented
// defaults, and validate everything before any component starts.
//
// The zero [Config] plus [Config.Defaults] is a working all-in-one setup.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/writ-dev/writ/internal/strictyaml"
	"golang.org/x/mod/sumdb/note"
)

// Config is the whole process configuration. Every field has a documented
// default, applied by Defaults.
type Config struct {
	// TrustDomain is the SPIFFE trust domain. Default "writ.local".
	TrustDomain string `yaml:"trust_domain"`
	// DataDir holds the store, the key-encryption key, the admin token and
	// the Workload API socket. Default "./writ-data".
	DataDir string `yaml:"data_dir"`
	// Role is "all" (default), "server" or "node".
	Role string `yaml:"role"`
	// NodeName names this node in policy requests (source.node) and in
	// audit events (node). Default "" (no node); set it to match the
	// source.node conditions of your policies.
	NodeName string `yaml:"node_name"`
	// KEKFile is the key-encryption key file. Default DATA_DIR/kek.
	// The WRIT_KEK environment variable overrides it.
	KEKFile string `yaml:"kek_file"`
	Log     Log    `yaml:"log"`
	Server  Server `yaml:"server"`
	// Workload configures the SPIFFE Workload API.
	Workload Workload `yaml:"workload"`
	CA       CA       `yaml:"ca"`
	Audit    Audit    `yaml:"audit"`
	Store    Store    `yaml:"store"`
	Proxy    Proxy    `yaml:"proxy"`
	// Discovery configures the runtime sensor (see docs/discover.md).
	Discovery Discovery `yaml:"discovery"`
	// Node configures scale-out: how nodes join this server (role all
	// or server) and how this node reaches its server (role node). See
	// docs/scale-out.md.
	Node Node `yaml:"node"`
	// Keys chooses where signing keys and the KEK live (docs/keys.md).
	Keys Keys `yaml:"keys"`
	// Alerts configures the alert rules and webhooks (see docs/alerts.md).
	Alerts Alerts `yaml:"alerts"`
	// Console configures the web console (see docs/console.md).
	Console Console `yaml:"console"`
}

// Alerts configures the alert engine. Rule ids and webhooks are checked
// by the server at start (internal/alert).
type Alerts struct {
	// Disabled lists rule ids not to evaluate (writ alert list shows the
	// catalogue).
	Disabled []string `yaml:"disabled"`
	// DenialThreshold refusals of one caller within DenialWindow raise
	// repeated_denials (default 5 in 5m); AuthFail* the same for
	// admin_auth_failures.
	DenialThreshold   int           `yaml:"denial_threshold"`
	DenialWindow      time.Duration `yaml:"denial_window"`
	AuthFailThreshold int           `yaml:"auth_fail_threshold"`
	AuthFailWindow    time.Duration `yaml:"auth_fail_window"`
	// Interval is how often new events are evaluated and webhooks
	// delivered. Default 5s; at least 100ms.
	Interval time.Duration `yaml:"interval"`
	// AckWithin is the coverage window: an alert counts as covered when
	// acknowledged within it. Default 24h.
	AckWithin time.Duration  `yaml:"ack_within"`
	Webhooks  []AlertWebhook `yaml:"webhooks"`
}

// AlertWebhook is one webhook. The URL (Slack's carries its credential)
// and the signing secret are never logged or served; keep writ.yaml
// private, or give them by environment variable (url_env, secret_env).
type AlertWebhook struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// URLEnv names an environment variable holding the URL instead.
	URLEnv string `yaml:"url_env"`
	// Format is generic (default) or slack.
	Format string `yaml:"format"`
	// SecretFile or SecretEnv hold the HMAC key of the Writ-Signature
	// header (at least 16 bytes); optional.
	SecretFile  string   `yaml:"secret_file"`
	SecretEnv   string   `yaml:"secret_env"`
	MinSeverity string   `yaml:"min_severity"`
	Rules       []string `yaml:"rules"`
}

// Node configures scale-out.
type Node struct {
	// Server is the server's node API, the https:// URL of its
	// tls_listen address (role node; required); several servers on one
	// store separated by commas, used in turn when one is unreachable.
	Server string `yaml:"server"`
	// ServerBundle is a file holding the trust domain's bundle: the
	// SPIFFE bundle document of the server's /bundle endpoint, or PEM CA
	// certificates (role node; required to join; afterwards the node
	// keeps the bundle the server sends).
	ServerBundle string `yaml:"server_bundle"`
	// Grace is how long a node keeps serving from its last state while
	// its server is unreachable; after it, it fails closed (no SVIDs, no
	// access). Default 5m.
	Grace time.Duration `yaml:"grace"`
	// X509PoPCert and X509PoPKey are the node's machine certificate and
	// key, to join by x509pop instead of a join token (role node).
	X509PoPCert string `yaml:"x509pop_cert"`
	X509PoPKey  string `yaml:"x509pop_key"`
	// X509PoPCA is the CA bundle (PEM) machine certificates must chain to
	// for x509pop joins (role all or server); unset: x509pop is off.
	X509PoPCA string `yaml:"x509pop_ca"`
	// Attest is the attestor a node joins with (role node): join_token
	// (the default with --join-token), x509pop (the default with
	// x509pop_cert) or tpm.
	Attest string `yaml:"attest"`
	// TPM is the node's TPM 2.0 for attest: tpm (role node): a device
	// (/dev/tpmrm0) or a simulator over TCP (swtpm).
	TPM KeyTPM `yaml:"tpm"`
	// TPMAttestation admits TPM-attested nodes (role all or server);
	// unset: the tpm attestor is off.
	TPMAttestation TPMAttestation `yaml:"tpm_attestation"`
}

// TPMAttestation configures the server's TPM node attestor.
type TPMAttestation struct {
	// EKHashes are the allowed endorsement keys: hex SHA-256 of the
	// PKIX DER of the EK public key (`writ node tpm-ek` prints a
	// host's).
	EKHashes []string `yaml:"ek_hashes"`
	// EKCA is a PEM bundle of TPM manufacturer CAs: a TPM whose EK
	// certificate chains to one is admitted.
	EKCA string `yaml:"ek_ca"`
	// PCRs is the PCR allow list: bank (sha1, sha256, sha384, sha512) ->
	// PCR index -> allowed hex digests. A node whose quoted PCR is not
	// listed is refused.
	PCRs map[string]map[int][]string `yaml:"pcrs"`
}

// Enabled reports whether the server admits TPM-attested nodes.
func (t TPMAttestation) Enabled() bool { return len(t.EKHashes) > 0 || t.EKCA != "" }

// Console configures the web console at /ui/.
type Console struct {
	// OIDC, when its issuer is set, lets humans log in through an
	// external OpenID Connect provider (authorization code with PKCE).
	OIDC ConsoleOIDC `yaml:"oidc"`
}

// ConsoleOIDC configures console login through an OpenID Connect
// provider. The provider's accounts become console accounts at their
// first login, with the role their claim maps to.
type ConsoleOIDC struct {
	// Issuer is the provider's issuer URL (discovery at
	// ISSUER/.well-known/openid-configuration). Empty: OIDC login is off.
	Issuer   string `yaml:"issuer"`
	ClientID string `yaml:"client_id"`
	// ClientSecretFile holds the client secret (a public client with PKCE
	// needs none). The WRIT_OIDC_CLIENT_SECRET environment variable
	// overrides it.
	ClientSecretFile string `yaml:"client_secret_file"`
	// RedirectURL is this console's callback as registered at the
	// provider. Default server.public_url + "/ui/oidc/callback".
	RedirectURL string `yaml:"redirect_url"`
	// UsernameClaim names the human. Default "email".
	UsernameClaim string `yaml:"username_claim"`
	// RoleClaim is the claim (a string or a list of strings) whose values
	// map to roles. Default "groups".
	RoleClaim string `yaml:"role_claim"`
	// GroupsClaim is the claim (a string or a list of strings) whose
	// values are the human's groups, for approval rules naming
	// group:NAME; they replace the account's groups at every login.
	// Default "groups"; "-" takes no groups from the provider.
	GroupsClaim string `yaml:"groups_claim"`
	// Roles maps each role to the claim values that grant it; the
	// highest role granted wins, and a human granted none is refused.
	Roles struct {
		Admin    []string `yaml:"admin"`
		Approver []string `yaml:"approver"`
		Viewer   []string `yaml:"viewer"`
	} `yaml:"roles"`
}

// Discovery configures the runtime sensor that `writ serve` runs.
type Discovery struct {
	// Disabled turns continuous discovery off (`writ discover` still
	// scans on demand). Default false: writ scans its host.
	Disabled bool `yaml:"disabled"`
	// Interval is the time between scans. Default 30s; at least 1s.
	Interval time.Duration `yaml:"interval"`
}

// Proxy configures the access proxy (see docs/proxy.md).
type Proxy struct {
	// Listen is the plain HTTP listener for reverse routes, forward
	// requests and CONNECT. Default "127.0.0.1:8181"; "off" disables it.
	Listen string `yaml:"listen"`
	// TLSListen, when set, is a TLS listener (certificate from the proxy
	// CA) that also accepts mTLS callers with X.509-SVIDs.
	TLSListen string `yaml:"tls_listen"`
	// PostgresListen, when set, is the PostgreSQL wire-protocol listener
	// for Services with a postgres: block (dynamic database roles, see
	// docs/dynamic-credentials.md), e.g. "127.0.0.1:6432". Default off.
	PostgresListen string `yaml:"postgres_listen"`
	// ReadHeaderTimeout bounds reading request headers. Default 10s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request. Default 5m.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing a response. Default 5m.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout bounds keep-alive idleness. Default 2m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ApprovalWait bounds how long a request waits for a human approval.
	// Default 5m.
	ApprovalWait time.Duration `yaml:"approval_wait"`
	// MaxHeaderBytes bounds request headers. Default 65536.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxBodyBytes bounds request bodies. Default 67108864 (64 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// LogQueryValues records query values in audit events (default: only
	// parameter names).
	LogQueryValues bool `yaml:"log_query_values"`
	// DecisionDurability is how far an allowed request's decision gets
	// in the proxy's decision journal before the request is forwarded:
	// "written" (default; one write, which survives a crash of writ) or
	// "synced" (fdatasync'd too, shared by concurrent decisions, which
	// survives a power loss).
	DecisionDurability string `yaml:"decision_durability"`
}

// Log configures process logging.
type Log struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
	// Format is text (default) or json.
	Format string `yaml:"format"`
}

// Server configures the control plane's HTTP listener.
type Server struct {
	// Listen is the HTTP address. Default "127.0.0.1:8080".
	Listen string `yaml:"listen"`
	// PublicURL is the issuer URL in tokens and discovery documents.
	// Default "http://" + Listen, or the bound address when Listen's
	// port is 0.
	// Default "http://" + Listen.
	PublicURL string `yaml:"public_url"`
	// TLSListen is the HTTPS address serving the same API to agents that
	// authenticate with an X.509-SVID (mutual TLS, RFC 8705); its
	// certificate is writ's own SVID spiffe://TRUST_DOMAIN/writ/server.
	// Default: server.listen's host with port 8443 (port 0 when
	// server.listen uses port 0). "off" disables it.
	TLSListen string `yaml:"tls_listen"`
}

// Workload configures the SPIFFE Workload API.
type Workload struct {
	// Socket is the unix socket path. Default DATA_DIR/workload.sock,
	// which only writ's user can reach (the data directory is 0700); to
	// serve workloads of other users, put it in a directory they can
	// enter, such as /run/writ/workload.sock.
	Socket string `yaml:"socket"`
	// SocketMode is the socket file's mode, in octal. Default "0600" for
	// a socket in the data directory and "0666" for one elsewhere: the
	// Workload API decides what a caller gets by attestation, not by who
	// may connect.
	SocketMode string `yaml:"socket_mode"`
}

// SocketFileMode returns Workload.SocketMode as a file mode. It is valid
// after Validate.
func (w Workload) SocketFileMode() os.FileMode {
	m, _ := strconv.ParseUint(w.SocketMode, 8, 32)
	return os.FileMode(m) & os.ModePerm
}

// SocketInDataDir reports whether the Workload API socket is directly in
// the data directory.
func (c *Config) SocketInDataDir() bool {
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return filepath.Clean(p)
	}
	return filepath.Dir(abs(c.Workload.Socket)) == abs(c.DataDir)
}

// CA configures the signing authorities.
type CA struct {
	// TTL is the lifetime of a self-signed CA certificate. Default 24h.
	TTL time.Duration `yaml:"ttl"`
	// X509SVIDTTL is the default X.509-SVID lifetime. Default 1h.
	X509SVIDTTL time.Duration `yaml:"x509_svid_ttl"`
	// JWTSVIDTTL is the default JWT-SVID lifetime. Default 5m.
	JWTSVIDTTL time.Duration `yaml:"jwt_svid_ttl"`
	// JWTKeyTTL is how long one JWT signing key signs. Default 24h.
	JWTKeyTTL time.Duration `yaml:"jwt_key_ttl"`
	// UpstreamCert and UpstreamKey name PEM files of an upstream CA that
	// signs writ's intermediate instead of a self-signed root.
	UpstreamCert string `yaml:"upstream_cert"`
	UpstreamKey  string `yaml:"upstream_key"`
}

// Audit configures the audit log.
type Audit struct {
	// CheckpointEvery signs a checkpoint after this many events. Default 1000.
	CheckpointEvery int `yaml:"checkpoint_every"`
	// CheckpointInterval signs a checkpoint at least this often when there
	// are new events. Default 10s.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// Witnesses receive every checkpoint the log signs, so that a
	// rollback of the log shows outside the data directory (see
	// docs/audit.md). Default: none.
	Witnesses []Witness `yaml:"witnesses"`
}

// Witness is an external party that keeps the audit log's signed
// checkpoints. Exactly one of File, URL and Command is set.
type Witness struct {
	// Name names the witness in logs and metrics. Default "witness-N",
	// N counting from 1 in the order of the list.
	Name string `yaml:"name"`
	// File is a file each signed checkpoint is appended to.
	File string `yaml:"file"`
	// URL receives each signed checkpoint as the body of an HTTP POST.
	URL string `yaml:"url"`
	// Command is a program and its arguments, run with each signed
	// checkpoint on its standard input.
	Command []string `yaml:"command"`
	// Key is the witness's signed-note verifier key (NAME+HASH+KEY).
	// When set, a URL or command witness may answer with the checkpoint
	// cosigned by this key; the cosignature is checked and stored with
	// the checkpoint.
	Key string `yaml:"key"`
	// Timeout bounds one delivery. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// Store configures persistence (docs/store.md).
type Store struct {
	// Driver is "sqlite" (default, DATA_DIR/writ.db) or "postgres".
	Driver string `yaml:"driver"`
	// DSN is the connection string for postgres (a postgres:// URL or
	// libpq key=value pairs), or a file path for sqlite. A postgres DSN
	// may hold a password; it is never printed (the store describes
	// itself as postgres://USER@HOST:PORT/DATABASE).
	DSN string `yaml:"dsn"`
}

// maxDSN bounds store.dsn.
const maxDSN = 4096

// checkPostgresDSN returns what is wrong with a postgres connection
// string's shape, or "". The full parse happens when the store opens;
// neither says what the string holds, since it may hold a password.
func checkPostgresDSN(dsn string) string {
	const example = "e.g. postgres://writ@127.0.0.1:5432/writ"
	switch {
	case strings.TrimSpace(dsn) == "":
		return "required for the postgres driver, " + example
	case len(dsn) > maxDSN:
		return fmt.Sprintf("%d bytes, over the limit of %d", len(dsn), maxDSN)
	case !utf8.ValidString(dsn):
		return "not valid UTF-8"
	case strings.ContainsFunc(dsn, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }):
		return "contains a control character (a line break in the YAML value?)"
	}
	if scheme, _, ok := strings.Cut(dsn, "://"); ok {
		if scheme != "postgres" && scheme != "postgresql" {
			if len(scheme) > 16 || strings.ContainsFunc(scheme, func(r rune) bool { return (r < 'a' || r > 'z') && r != '+' }) {
				return "not a postgres:// URL, " + example
			}
			return fmt.Sprintf("a URL with scheme %q; use postgres:// or postgresql://, %s", scheme, example)
		}
		if _, err := url.Parse(dsn); err != nil {
			return "not a valid URL (percent-encode special characters in the user and password), " + example
		}
		return ""
	}
	if !strings.Contains(dsn, "=") {
		return "neither a postgres:// URL nor key=value pairs, " + example
	}
	return ""
}

// Load reads and strictly decodes a writ.yaml file. It does not apply
// defaults or validate; call Defaults and Validate after merging flags.
func Load(path string) (Config, error) {
	var c Config
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	if err := strictyaml.Unmarshal(path, data, &c); err != nil {
		return c, err
	}
	return c, nil
}

// Defaults fills every unset field with its documented default.
func (c *Config) Defaults() {
	set := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	setD := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	set(&c.TrustDomain, "writ.local")
	set(&c.DataDir, "./writ-data")
	set(&c.Role, "all")
	set(&c.KEKFile, filepath.Join(c.DataDir, "kek"))
	set(&c.Log.Level, "info")
	set(&c.Log.Format, "text")
	set(&c.Server.Listen, "127.0.0.1:8080")
	// With port 0 the address is known only once bound; the server
	// then sets the public URL from it.
	if _, port, err := net.SplitHostPort(c.Server.Listen); err != nil || port != "0" {
		set(&c.Server.PublicURL, "http://"+c.Server.Listen)
	}
	set(&c.Server.TLSListen, defaultTLSListen(c.Server.Listen))
	set(&c.Workload.Socket, filepath.Join(c.DataDir, "workload.sock"))
	if c.SocketInDataDir() {
		set(&c.Workload.SocketMode, "0600")
	} else {
		set(&c.Workload.SocketMode, "0666")
	}
	setD(&c.CA.TTL, 24*time.Hour)
	setD(&c.CA.X509SVIDTTL, time.Hour)
	setD(&c.CA.JWTSVIDTTL, 5*time.Minute)
	setD(&c.CA.JWTKeyTTL, 24*time.Hour)
	if c.Audit.CheckpointEvery == 0 {
		c.Audit.CheckpointEvery = 1000
	}
	setD(&c.Audit.CheckpointInterval, 10*time.Second)
	for i := range c.Audit.Witnesses {
		w := &c.Audit.Witnesses[i]
		set(&w.Name, fmt.Sprintf("witness-%d", i+1))
		setD(&w.Timeout, 10*time.Second)
	}
	set(&c.Store.Driver, "sqlite")
	set(&c.Proxy.Listen, "127.0.0.1:8181")
	setD(&c.Proxy.ReadHeaderTimeout, 10*time.Second)
	setD(&c.Proxy.ReadTimeout, 5*time.Minute)
	setD(&c.Proxy.WriteTimeout, 5*time.Minute)
	setD(&c.Proxy.IdleTimeout, 2*time.Minute)
	setD(&c.Proxy.ApprovalWait, 5*time.Minute)
	if c.Proxy.MaxHeaderBytes == 0 {
		c.Proxy.MaxHeaderBytes = 64 << 10
	}
	if c.Proxy.MaxBodyBytes == 0 {
		c.Proxy.MaxBodyBytes = 64 << 20
	}
	set(&c.Proxy.DecisionDurability, "written")
	setD(&c.Discovery.Interval, 30*time.Second)
	setD(&c.Node.Grace, 5*time.Minute)
	c.Keys.defaults()
	setD(&c.Alerts.Interval, 5*time.Second)
	setD(&c.Alerts.AckWithin, 24*time.Hour)
	if c.Console.OIDC.Issuer != "" {
		set(&c.Console.OIDC.UsernameClaim, "email")
		set(&c.Console.OIDC.RoleClaim, "groups")
		set(&c.Console.OIDC.GroupsClaim, "groups")
	}
	if c.Store.Driver == "sqlite" {
		set(&c.Store.DSN, filepath.Join(c.DataDir, "writ.db"))
	}
}

// Validate reports every problem in c, one per line, naming the key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if _, err := spiffeid.TrustDomainFromString(c.TrustDomain); err != nil {
		bad("trust_domain", "%q is not a valid trust domain (lower-case letters, digits, '.', '-', '_'): %v", c.TrustDomain, err)
	}
	if c.Alerts.Interval < 100*time.Millisecond {
		bad("alerts.interval", "%v is too short; use at least 100ms (default 5s)", c.Alerts.Interval)
	}
	if c.Alerts.AckWithin < time.Minute {
		bad("alerts.ack_within", "%v is too short; use at least 1m (default 24h)", c.Alerts.AckWithin)
	}
	if o := c.Console.OIDC; o.Issuer != "" {
		if u, err := url.Parse(o.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("console.oidc.issuer", "%q is not an http(s) URL", o.Issuer)
		}
		if o.ClientID == "" {
			bad("console.oidc.client_id", "required when console.oidc.issuer is set")
		}
		if len(o.Roles.Admin)+len(o.Roles.Approver)+len(o.Roles.Viewer) == 0 {
			bad("console.oidc.roles", "map at least one claim value to a role (admin, approver, viewer), or nobody can log in")
		}
	}
	if c.Discovery.Interval < time.Second {
		bad("discovery.interval", "%v is too short; use at least 1s (default 30s)", c.Discovery.Interval)
	}
	switch c.Role {
	case "all", "server", "node":
	default:
		bad("role", "%q is not a role; use all, server or node", c.Role)
	}
	if len(c.NodeName) > 253 || strings.ContainsFunc(c.NodeName, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		bad("node_name", "%q: use at most 253 printable characters without spaces, e.g. the host name", c.NodeName)
	}
	if c.Role == "node" {
		// Several servers on one store: separated by commas.
		for _, srv := range strings.Split(c.Node.Server, ",") {
			if u, err := url.Parse(strings.TrimSpace(srv)); err != nil || u.Scheme != "https" || u.Host == "" {
				bad("node.server", "%q: role node needs the server's node API as an https:// URL (its tls_listen address), e.g. https://writ.example:8443, or several separated by commas", srv)
				break
			}
		}
		if (c.Node.X509PoPCert == "") != (c.Node.X509PoPKey == "") {
			bad("node.x509pop_cert", "set both x509pop_cert and x509pop_key, or neither")
		}
		switch c.Node.Attest {
		case "", "join_token", "x509pop":
		case "tpm":
			if (c.Node.TPM.Device == "") == (c.Node.TPM.TCP == "") {
				bad("node.tpm", "attest: tpm needs the node's TPM: set exactly one of node.tpm.device (/dev/tpmrm0; --tpm-device) and node.tpm.tcp (a swtpm's host:port; --tpm-swtpm)")
			}
		default:
			bad("node.attest", "%q is not an attestor; use join_token, x509pop or tpm", c.Node.Attest)
		}
	}
	if c.Node.TPMAttestation.Enabled() || len(c.Node.TPMAttestation.PCRs) > 0 {
		if !c.Node.TPMAttestation.Enabled() {
			bad("node.tpm_attestation", "pcrs without ek_hashes or ek_ca admits no node; list the allowed EKs")
		}
	}
	if c.Node.Grace < time.Second {
		bad("node.grace", "%v is too short; use at least 1s (default 5m)", c.Node.Grace)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not a level; use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not a format; use text or json", c.Log.Format)
	}
	if _, _, err := net.SplitHostPort(c.Server.Listen); err != nil {
		bad("server.listen", "%q is not host:port: %v", c.Server.Listen, err)
	}
	if _, _, err := net.SplitHostPort(c.Server.TLSListen); err != nil && c.Server.TLSListen != "off" {
		bad("server.tls_listen", "%q is not host:port or off: %v", c.Server.TLSListen, err)
	}
	positive := func(key string, d time.Duration) {
		if d < 0 {
			bad(key, "must be positive, got %v", d)
		}
	}
	positive("ca.ttl", c.CA.TTL)
	positive("ca.x509_svid_ttl", c.CA.X509SVIDTTL)
	positive("ca.jwt_svid_ttl", c.CA.JWTSVIDTTL)
	positive("ca.jwt_key_ttl", c.CA.JWTKeyTTL)
	positive("audit.checkpoint_interval", c.Audit.CheckpointInterval)
	if c.CA.UpstreamCert == "" && c.CA.X509SVIDTTL >= c.CA.TTL {
		bad("ca.x509_svid_ttl", "%v must be shorter than ca.ttl (%v) so SVIDs fit inside the CA's life", c.CA.X509SVIDTTL, c.CA.TTL)
	}
	if c.CA.JWTSVIDTTL >= c.CA.JWTKeyTTL {
		bad("ca.jwt_svid_ttl", "%v must be shorter than ca.jwt_key_ttl (%v)", c.CA.JWTSVIDTTL, c.CA.JWTKeyTTL)
	}
	if (c.CA.UpstreamCert == "") != (c.CA.UpstreamKey == "") {
		bad("ca.upstream_cert", "upstream_cert and upstream_key must be set together")
	}
	if c.Audit.CheckpointEvery < 1 {
		bad("audit.checkpoint_every", "must be at least 1, got %d", c.Audit.CheckpointEvery)
	}
	names := map[string]bool{}
	for i, w := range c.Audit.Witnesses {
		key := fmt.Sprintf("audit.witnesses[%d]", i)
		n := 0
		for _, set := range []bool{w.File != "", w.URL != "", len(w.Command) > 0} {
			if set {
				n++
			}
		}
		if n != 1 {
			bad(key, "set exactly one of file, url and command (%d are set)", n)
		}
		if w.URL != "" {
			if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(key+".url", "%q is not an http:// or https:// URL", w.URL)
			}
		}
		if len(w.Command) > 0 && w.Command[0] == "" {
			bad(key+".command", "the program name is empty")
		}
		if w.Key != "" {
			if _, err := note.NewVerifier(w.Key); err != nil {
				bad(key+".key", "%q is not a signed-note verifier key (NAME+HASH+KEY): %v", w.Key, err)
			}
		}
		if w.Key != "" && w.File != "" {
			bad(key+".key", "a file witness cannot cosign; remove key or use url or command")
		}
		positive(key+".timeout", w.Timeout)
		if names[w.Name] {
			bad(key+".name", "%q is the name of another witness", w.Name)
		}
		names[w.Name] = true
	}
	switch c.Store.Driver {
	case "sqlite":
	case "postgres":
		if problem := checkPostgresDSN(c.Store.DSN); problem != "" {
			bad("store.dsn", "%s", problem)
		}
	default:
		bad("store.driver", "%q is not a driver; use sqlite or postgres", c.Store.Driver)
	}
	switch c.Proxy.DecisionDurability {
	case "written", "synced":
	default:
		bad("proxy.decision_durability", "%q is not a durability; use written or synced", c.Proxy.DecisionDurability)
	}
	for key, addr := range map[string]string{"proxy.listen": c.Proxy.Listen, "proxy.tls_listen": c.Proxy.TLSListen, "proxy.postgres_listen": c.Proxy.PostgresListen} {
		if addr == "" || addr == "off" && key != "proxy.tls_listen" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(key, "%q is not host:port: %v", addr, err)
		}
	}
	for key, d := range map[string]time.Duration{"proxy.read_header_timeout": c.Proxy.ReadHeaderTimeout, "proxy.read_timeout": c.Proxy.ReadTimeout,
		"proxy.write_timeout": c.Proxy.WriteTimeout, "proxy.idle_timeout": c.Proxy.IdleTimeout, "proxy.approval_wait": c.Proxy.ApprovalWait} {
		positive(key, d)
	}
	if c.Proxy.MaxHeaderBytes < 1024 || c.Proxy.MaxBodyBytes < 0 {
		bad("proxy.max_header_bytes", "must be at least 1024 (and proxy.max_body_bytes not negative)")
	}
	if m, err := strconv.ParseUint(c.Workload.SocketMode, 8, 32); err != nil || m > 0o777 {
		bad("workload.socket_mode", "%q is not a file mode; write it in octal, e.g. \"0666\"", c.Workload.SocketMode)
	}
	c.Keys.validate(bad)
	if len(c.Workload.Socket) > 100 {
		bad("workload.socket", "path is %d bytes; unix socket paths must be under 108 bytes, choose a shorter --socket", len(c.Workload.Socket))
	}
	return errors.Join(errs...)
}

// defaultTLSListen is listen's host with port 8443, or port 0 when listen
// asks for any free port.
func defaultTLSListen(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "127.0.0.1:8443"
	}
	if port == "0" {
		return net.JoinHostPort(host, "0")
	}
	return net.JoinHostPort(host, "8443")
}
