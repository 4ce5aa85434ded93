package proxy

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/writ-dev/writ/internal/access"
	"github.com/writ-dev/writ/internal/broker"
	"github.com/writ-dev/writ/internal/dbcreds"
	"github.com/writ-dev/writ/internal/policy"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/store"
)

// ServiceSpec is the spec of a Service document: an upstream HTTP service
// that agents reach through the proxy. It decodes strictly from YAML and
// is stored as JSON. Durations are kept as written ("5s") and parsed by
// [CompileService].
type ServiceSpec struct {
	// Upstream is the base URL requests are sent to, e.g.
	// https://api.github.com or http://127.0.0.1:9000/v2.
	Upstream string `yaml:"upstream" json:"upstream"`
	Match    Match  `yaml:"match,omitempty" json:"match,omitzero"`
	// Credential injects a broker credential into allowed requests.
	Credential *CredentialSpec `yaml:"credential,omitempty" json:"credential,omitempty"`
	// Token injects a freshly minted writ access token instead, for
	// internal services that trust writ's JWKS.
	Token *TokenSpec `yaml:"token,omitempty" json:"token,omitempty"`
	// Audience is the audience a caller's writ access token must carry
	// to be accepted here. Default: the service name.
	Audience string       `yaml:"audience,omitempty" json:"audience,omitempty"`
	Timeouts TimeoutsSpec `yaml:"timeouts,omitempty" json:"timeouts,omitzero"`
	// Intercept makes CONNECT tunnels to this service terminate TLS at the
	// proxy (with a leaf from the proxy CA) so that full L7 policy and
	// injection apply; the proxy re-originates verified TLS upstream.
	Intercept bool    `yaml:"intercept,omitempty" json:"intercept,omitempty"`
	TLS       TLSSpec `yaml:"tls,omitempty" json:"tls,omitzero"`
	// Labels are the flow labels of the service (private_data, ...).
	Labels []string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// Postgres makes this a PostgreSQL Service: agents reach it through
	// the PostgreSQL wire proxy (proxy.postgres_listen), each task as a
	// role of its own (package dbcreds); the HTTP proxy does not route it.
	Postgres *dbcreds.Spec `yaml:"postgres,omitempty" json:"postgres,omitempty"`
}

// Match says which requests reach the service.
type Match struct {
	// Host matches forward-proxy requests, CONNECT tunnels and reverse
	// requests by Host header: "api.example.com" (any port) or
	// "api.example.com:8443".
	Host string `yaml:"host,omitempty" json:"host,omitempty"`
	// PathPrefix routes reverse requests; default "/svc/NAME/". The prefix
	// is stripped before the request is sent upstream.
	PathPrefix string `yaml:"path_prefix,omitempty" json:"path_prefix,omitempty"`
}

// CredentialSpec names a broker credential and how to inject it.
type CredentialSpec struct {
	Name string `yaml:"name" json:"name"`
	// Inject is bearer, basic, header or query; default the credential's
	// type.
	Inject string `yaml:"inject,omitempty" json:"inject,omitempty"`
	// Header is the header for header injection (default Authorization).
	Header string `yaml:"header,omitempty" json:"header,omitempty"`
	// Template formats a header value; "{value}" is replaced by the
	// credential (default "{value}").
	Template string `yaml:"template,omitempty" json:"template,omitempty"`
	// Query is the parameter for query injection.
	Query string `yaml:"query,omitempty" json:"query,omitempty"`
}

// TokenSpec mints a writ access token per request.
type TokenSpec struct {
	// Audience defaults to the service name.
	Audience string   `yaml:"audience,omitempty" json:"audience,omitempty"`
	Scopes   []string `yaml:"scopes,omitempty" json:"scopes,omitempty"`
	// TTL is the token's life, default 5m, at most 1h.
	TTL string `yaml:"ttl,omitempty" json:"ttl,omitempty"`
}

// TimeoutsSpec bounds upstream calls.
type TimeoutsSpec struct {
	// Connect bounds dialing and the TLS handshake (default 5s).
	Connect string `yaml:"connect,omitempty" json:"connect,omitempty"`
	// Response bounds the wait for response headers (default 30s); a
	// timeout answers 504.
	Response string `yaml:"response,omitempty" json:"response,omitempty"`
	// Idle bounds how long an idle upstream connection is kept (default 90s).
	Idle string `yaml:"idle,omitempty" json:"idle,omitempty"`
}

// TLSSpec configures TLS to the upstream.
type TLSSpec struct {
	// CAFile is a PEM file of CA certificates that sign the upstream's
	// certificate, instead of the system roots.
	CAFile string `yaml:"ca_file,omitempty" json:"ca_file,omitempty"`
	// ServerName overrides the name verified in the upstream certificate.
	ServerName string `yaml:"server_name,omitempty" json:"server_name,omitempty"`
}

// Service is a compiled Service: ready to route and forward.
type Service struct {
	Name     string
	Version  int64
	Spec     ServiceSpec
	Upstream *url.URL
	// Host and Port are Match.Host split; Port is "" for any port.
	Host, Port string
	Prefix     string
	Audience   string
	Inject     broker.Type // injection mode of Spec.Credential
	TokenTTL   time.Duration
	Connect    time.Duration
	Response   time.Duration
	Idle       time.Duration
	RootCAs    *x509.CertPool // nil: system roots
	// Postgres is set for a PostgreSQL Service (spec.postgres).
	Postgres *dbcreds.Service

	target string        // Target, made once by CompileService
	access access.Target // the service as enforcement sees it
}

// accessTarget is the service as enforcement sees it; nil for no service.
func (s *Service) accessTarget() *access.Target {
	if s == nil {
		return nil
	}
	return &s.access
}

// Target is how the service appears in policy and audit: "Service/NAME".
func (s *Service) Target() string {
	if s.target != "" {
		return s.target
	}
	return resource.KindService + "/" + s.Name
}

// StoredSpec validates a Service document and returns its spec as the JSON
// the server stores. Errors name file, line and field.
func StoredSpec(d resource.Document) ([]byte, error) {
	var spec ServiceSpec
	if err := d.DecodeSpec(&spec); err != nil {
		return nil, err
	}
	if _, err := compile(d.Name, 0, spec, func(field string, format string, args ...any) error {
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

// CompileService builds a Service from a stored resource.
func CompileService(r store.Resource) (*Service, error) {
	var spec ServiceSpec
	if err := json.Unmarshal(r.Spec, &spec); err != nil {
		return nil, fmt.Errorf("load Service/%s: stored spec is not valid: %w", r.Name, err)
	}
	return compile(r.Name, r.Version, spec, func(field string, format string, args ...any) error {
		return fmt.Errorf("load Service/%s@%d: spec.%s: %s", r.Name, r.Version, field, fmt.Sprintf(format, args...))
	})
}

func compile(name string, version int64, spec ServiceSpec, bad func(field, format string, args ...any) error) (*Service, error) {
	s := &Service{Name: name, Version: version, Spec: spec}
	if spec.Postgres != nil {
		return compilePostgres(s, bad)
	}
	u, err := url.Parse(spec.Upstream)
	switch {
	case spec.Upstream == "":
		return nil, bad("upstream", "missing; the base URL of the service, e.g. https://api.example.com")
	case err != nil:
		return nil, bad("upstream", "%q is not a URL: %v", spec.Upstream, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, bad("upstream", "%q: the scheme must be http or https", spec.Upstream)
	case u.Host == "":
		return nil, bad("upstream", "%q has no host", spec.Upstream)
	case u.User != nil:
		return nil, bad("upstream", "the URL holds user information; put credentials in the broker (writ credential put) and name them under credential")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, bad("upstream", "%q: a base URL takes no query or fragment", spec.Upstream)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	s.Upstream = u

	if h := spec.Match.Host; h != "" {
		host, port := h, ""
		if strings.Contains(h, ":") {
			if host, port, err = net.SplitHostPort(h); err != nil {
				return nil, bad("match.host", "%q is not host or host:port: %v", h, err)
			}
		}
		if host == "" || strings.ContainsAny(host, "/ *") {
			return nil, bad("match.host", "%q is not a host name", h)
		}
		s.Host, s.Port = strings.ToLower(host), port
	}
	s.target = resource.KindService + "/" + name
	s.Prefix = spec.Match.PathPrefix
	if s.Prefix == "" {
		s.Prefix = "/svc/" + name + "/"
	}
	if !strings.HasPrefix(s.Prefix, "/") || !strings.HasSuffix(s.Prefix, "/") || strings.Contains(s.Prefix, "..") {
		return nil, bad("match.path_prefix", "%q must start and end with / (e.g. /svc/%s/)", s.Prefix, name)
	}
	if spec.Intercept && s.Host == "" {
		return nil, bad("intercept", "interception needs match.host: it applies to CONNECT tunnels to that host")
	}
	s.Audience = spec.Audience
	if s.Audience == "" {
		s.Audience = name
	}

	if spec.Credential != nil && spec.Token != nil {
		return nil, bad("token", "a service injects either a broker credential or a minted token, not both")
	}
	if c := spec.Credential; c != nil {
		if !resource.ValidName(c.Name) {
			return nil, bad("credential.name", "%q is not a credential name; list them with `writ credential list`", c.Name)
		}
		if c.Inject != "" {
			t, err := broker.ParseType(c.Inject)
			if err != nil {
				return nil, bad("credential.inject", "%v", err)
			}
			s.Inject = t
		}
		if c.Header != "" && !validHeaderName(c.Header) {
			return nil, bad("credential.header", "%q is not a header name", c.Header)
		}
		if c.Template != "" && !strings.Contains(c.Template, "{value}") {
			return nil, bad("credential.template", "%q does not contain {value}", c.Template)
		}
		if strings.ContainsAny(c.Template, "\r\n") {
			return nil, bad("credential.template", "must be one line")
		}
		if s.Inject == broker.Query && c.Query == "" {
			return nil, bad("credential.query", "missing; query injection names the parameter, e.g. api_key")
		}
	}
	if t := spec.Token; t != nil {
		s.TokenTTL = 5 * time.Minute
		if t.TTL != "" {
			if s.TokenTTL, err = time.ParseDuration(t.TTL); err != nil || s.TokenTTL <= 0 || s.TokenTTL > broker.MaxMintTTL {
				return nil, bad("token.ttl", "%q: write a duration between 1s and 1h, such as 5m", t.TTL)
			}
		}
	}
	dur := func(field, v string, def time.Duration) (time.Duration, error) {
		if v == "" {
			return def, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return 0, bad("timeouts."+field, "%q: write a positive duration such as 5s", v)
		}
		return d, nil
	}
	if s.Connect, err = dur("connect", spec.Timeouts.Connect, 5*time.Second); err != nil {
		return nil, err
	}
	if s.Response, err = dur("response", spec.Timeouts.Response, 30*time.Second); err != nil {
		return nil, err
	}
	if s.Idle, err = dur("idle", spec.Timeouts.Idle, 90*time.Second); err != nil {
		return nil, err
	}
	if f := spec.TLS.CAFile; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, bad("tls.ca_file", "read %s: %v", f, err)
		}
		s.RootCAs = x509.NewCertPool()
		if !s.RootCAs.AppendCertsFromPEM(pem) {
			return nil, bad("tls.ca_file", "%s holds no PEM certificate", f)
		}
	}
	for i, l := range spec.Labels {
		if l == "" || strings.ContainsAny(l, " ,") {
			return nil, bad(fmt.Sprintf("labels.%d", i), "%q is not a label", l)
		}
	}
	s.access = access.Target{Kind: policy.KindHTTP, Name: name, Ref: s.target, Labels: spec.Labels, Audience: s.Audience}
	if c := spec.Credential; c != nil {
		s.access.Credential = &access.CredentialSpec{Name: c.Name, Inject: s.Inject, Header: c.Header, Template: c.Template, Query: c.Query}
	}
	if t := spec.Token; t != nil {
		aud := t.Audience
		if aud == "" {
			aud = name
		}
		s.access.Mint = &access.MintSpec{Audience: aud, Scopes: t.Scopes, TTL: s.TokenTTL}
	}
	return s, nil
}

// compilePostgres compiles a Service with a postgres: block: none of the
// HTTP fields apply to it.
func compilePostgres(s *Service, bad func(field, format string, args ...any) error) (*Service, error) {
	spec := s.Spec
	switch {
	case spec.Match != (Match{}):
		return nil, bad("match", "a postgres Service is reached through proxy.postgres_listen with its name as the database; remove match")
	case spec.Credential != nil || spec.Token != nil:
		return nil, bad("credential", "a postgres Service gets a role per task from postgres.admin; remove credential and token")
	case spec.Intercept || spec.TLS != (TLSSpec{}) || spec.Timeouts != (TimeoutsSpec{}):
		return nil, bad("intercept", "intercept, tls and timeouts do not apply to a postgres Service (put sslmode in the upstream URL)")
	}
	for i, l := range spec.Labels {
		if l == "" || strings.ContainsAny(l, " ,") {
			return nil, bad(fmt.Sprintf("labels.%d", i), "%q is not a label", l)
		}
	}
	s.Audience = spec.Audience
	if s.Audience == "" {
		s.Audience = s.Name
	}
	s.target = resource.KindService + "/" + s.Name
	pg, err := dbcreds.Compile(s.Name, spec.Upstream, s.Audience, spec.Labels, *spec.Postgres, bad)
	if err != nil {
		return nil, err
	}
	s.Postgres = pg
	s.access = *pg.Target()
	// Upstream names the database server for those who read it (the
	// discovery sensor's direct-access check, the scanner), with
	// PostgreSQL's default port filled in.
	u, _ := url.Parse(spec.Upstream) // parsed by dbcreds.Compile
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), "5432")
	}
	u.RawQuery = ""
	s.Upstream = u
	return s, nil
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

// Table is an immutable routing table of services.
type Table struct {
	byName   map[string]*Service
	byHost   map[string][]*Service // host -> services, exact-port ones first
	prefixes []*Service            // longest prefix first
}

// NewTable indexes services. Two services may not claim the same host and
// port or the same path prefix.
func NewTable(svcs []*Service) (*Table, error) {
	t := &Table{byName: map[string]*Service{}, byHost: map[string][]*Service{}}
	var errs []error
	prefixes := map[string]string{}
	hosts := map[string]string{}
	for _, s := range svcs {
		if s.Postgres != nil {
			continue // reached through the PostgreSQL wire proxy, not routed here
		}
		t.byName[s.Name] = s
		if prev, dup := prefixes[s.Prefix]; dup {
			errs = append(errs, fmt.Errorf("route Service/%s: path prefix %s is also used by Service/%s", s.Name, s.Prefix, prev))
		}
		prefixes[s.Prefix] = s.Name
		t.prefixes = append(t.prefixes, s)
		if s.Host != "" {
			k := s.Host + ":" + s.Port
			if prev, dup := hosts[k]; dup {
				errs = append(errs, fmt.Errorf("route Service/%s: host %s is also matched by Service/%s", s.Name, s.Spec.Match.Host, prev))
			}
			hosts[k] = s.Name
			t.byHost[s.Host] = append(t.byHost[s.Host], s)
		}
	}
	for _, l := range t.byHost {
		slices.SortStableFunc(l, func(a, b *Service) int {
			if (a.Port != "") == (b.Port != "") {
				return 0
			}
			if a.Port != "" {
				return -1
			}
			return 1
		})
	}
	slices.SortFunc(t.prefixes, func(a, b *Service) int { return len(b.Prefix) - len(a.Prefix) })
	return t, errors.Join(errs...)
}

// Len returns the number of services.
func (t *Table) Len() int { return len(t.byName) }

// Get returns the service named name.
func (t *Table) Get(name string) *Service { return t.byName[name] }

// ByHost returns the service matching host and port (port "" matches only
// services without a port).
func (t *Table) ByHost(host, port string) *Service {
	for _, s := range t.byHost[strings.ToLower(strings.TrimSuffix(host, "."))] {
		if s.Port == "" || s.Port == port {
			return s
		}
	}
	return nil
}

// ByPath returns the service whose prefix starts path, and the rest of the
// path (starting with /).
func (t *Table) ByPath(path string) (*Service, string) {
	for _, s := range t.prefixes {
		if strings.HasPrefix(path, s.Prefix) {
			return s, path[len(s.Prefix)-1:]
		}
		if path == strings.TrimSuffix(s.Prefix, "/") {
			return s, "/"
		}
	}
	return nil, ""
}

// CompileServices compiles stored Service documents. A document that no
// longer compiles (it was valid when applied) is left out and reported to
// skipped.
func CompileServices(rs []store.Resource, skipped func(name string, err error)) []*Service {
	var svcs []*Service
	for _, r := range rs {
		svc, err := CompileService(r)
		if err != nil {
			skipped(r.Name, err)
			continue
		}
		svcs = append(svcs, svc)
	}
	return svcs
}
