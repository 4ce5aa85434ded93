package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/secrets"
	"github.com/writ-dev/writ/internal/store"
)

// Config configures a [Gateway]. Pins, Emitter, Identifier and Authorizer
// are required.
type Config struct {
	Pins    PinStore
	Emitter audit.Emitter
	// Credentials gives the upstream credentials MCPServers name.
	Credentials Credentials
	Identifier  Identifier
	Authorizer  Authorizer
	// ResourceMetadata returns the URL of the RFC 9728 protected-resource
	// metadata for the endpoint a request addressed, named in the
	// WWW-Authenticate header of a 401; nil names the gateway's own,
	// /.well-known/oauth-protected-resource/mcp[/NAME] on the host the
	// request addressed.
	ResourceMetadata func(r *http.Request) string
	// AuthorizationServer is the issuer of the access tokens the gateway
	// accepts (writ's token service), named in the metadata.
	AuthorizationServer string
	// Log defaults to discarding.
	Log *slog.Logger
	// Now and After default to the time package's.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// SessionTimeout closes agent sessions idle this long (default 1h).
	SessionTimeout time.Duration
	// Lint, when set, lints each tool when it is first pinned; a high
	// finding quarantines it (see [LintWith]).
	Lint func(Descriptor) (high bool, why string)
	// Redactor, when set, redacts secrets in tool results, resource
	// contents and prompts before they reach the agent
	// ([secrets.Detector]).
	Redactor Redactor
	// Checker, when set, decides the announced tools instead of the
	// gateway's own [Pinner] over Pins (a node's gateway asks its
	// server). [Gateway.Recheck] still reads Pins.
	Checker Checker
	// NoFastPath sends every request through the SDK's server and client
	// (see fast.go); for tests comparing the two paths.
	NoFastPath bool
}

// Redactor redacts the secrets in the strings of a JSON document.
type Redactor interface {
	RedactJSON(data []byte) ([]byte, []secrets.Finding, error)
}

// Gateway serves MCP to agents at /mcp/NAME (one server) and /mcp (every
// server, tools named NAME__tool), relaying to the upstream MCPServers
// over one client session each. It is an http.Handler.
type Gateway struct {
	cfg     Config
	pinner  *Pinner
	checker Checker

	mu       sync.Mutex
	backends map[string]*backend
	agg      *sdk.Server
	aggH     http.Handler

	sessions   sessions     // agents' sessions, for the fast path
	fastServed atomic.Int64 // calls the fast path answered
}

// Separator joins server and tool names on the aggregate endpoint.
const Separator = "__"

// New returns a gateway with no servers; see [Gateway.SetServers].
func New(cfg Config) *Gateway {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = time.Hour
	}
	g := &Gateway{cfg: cfg, backends: map[string]*backend{},
		pinner: &Pinner{Store: cfg.Pins, Emitter: cfg.Emitter, Log: cfg.Log, Lint: cfg.Lint}}
	g.checker = cfg.Checker
	if g.checker == nil {
		g.checker = g.pinner
	}
	g.agg = g.newFront("writ", g.resolveAggregate)
	g.aggH = g.newHandler(g.agg)
	return g
}

// Pinner returns the gateway's pinner (for approvals).
func (g *Gateway) Pinner() *Pinner { return g.pinner }

func (g *Gateway) newFront(name string, resolve resolver) *sdk.Server {
	s := sdk.NewServer(&sdk.Implementation{Name: name, Title: "writ MCP gateway", Version: "1"}, &sdk.ServerOptions{
		Logger: g.cfg.Log,
		Capabilities: &sdk.ServerCapabilities{
			Tools:     &sdk.ToolCapabilities{ListChanged: true},
			Prompts:   &sdk.PromptCapabilities{},
			Resources: &sdk.ResourceCapabilities{},
		},
	})
	s.AddReceivingMiddleware(g.middleware(resolve))
	return s
}

// newHandler serves s over streamable HTTP for every protocol revision:
// requests of revision 2026-07-28 and later are stateless (no session;
// the revision is in the Mcp-Protocol-Version header of each), earlier
// ones go through sessions opened by initialize.
func (g *Gateway) newHandler(s *sdk.Server) http.Handler {
	get := func(*http.Request) *sdk.Server { return s }
	stateful := sdk.NewStreamableHTTPHandler(get, &sdk.StreamableHTTPOptions{Logger: g.cfg.Log, SessionTimeout: g.cfg.SessionTimeout})
	stateless := sdk.NewStreamableHTTPHandler(get, &sdk.StreamableHTTPOptions{Logger: g.cfg.Log, Stateless: true, PropagateRequestCancellation: true})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get("Mcp-Protocol-Version"); v >= statelessRevision && r.Header.Get("Mcp-Session-Id") == "" {
			stateless.ServeHTTP(w, r)
			return
		}
		stateful.ServeHTTP(w, r)
	})
}

// statelessRevision is the first MCP revision without sessions.
const statelessRevision = "2026-07-28"

// SetServers makes the gateway serve exactly servers: new ones are
// started, removed ones stopped (their agent sessions closed), changed
// ones (another version) restarted.
func (g *Gateway) SetServers(servers []*Server) {
	g.mu.Lock()
	want := map[string]*Server{}
	for _, s := range servers {
		want[s.Name] = s
	}
	var stop []*backend
	var start []*backend
	for name, b := range g.backends {
		if s, ok := want[name]; !ok || s.Version != b.srv.Version || s.Version == 0 {
			stop = append(stop, b)
			delete(g.backends, name)
		}
	}
	for name, s := range want {
		if _, ok := g.backends[name]; ok {
			continue
		}
		b := g.newBackend(s)
		g.backends[name] = b
		start = append(start, b)
	}
	g.mu.Unlock()
	for _, b := range stop {
		b.close(g)
	}
	for _, b := range start {
		b.up.start()
	}
}

// Close stops every upstream.
func (g *Gateway) Close() error {
	g.SetServers(nil)
	return nil
}

func (g *Gateway) backend(name string) *backend {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.backends[name]
}

// Server returns the compiled MCPServer served under name, or nil.
func (g *Gateway) Server(name string) *Server {
	if b := g.backend(name); b != nil {
		return b.srv
	}
	return nil
}

const metadataPrefix = "/.well-known/oauth-protected-resource"

// ServeHTTP serves /mcp, /mcp/NAME and their RFC 9728 protected-resource
// metadata.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if res, ok := strings.CutPrefix(r.URL.Path, metadataPrefix); ok {
		g.serveMetadata(w, r, res)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/mcp")
	if !ok {
		http.NotFound(w, r)
		return
	}
	var (
		h      http.Handler
		server string
	)
	switch {
	case rest == "" || rest == "/":
		h = g.aggH
	case strings.HasPrefix(rest, "/") && !strings.Contains(rest[1:], "/"):
		server = rest[1:]
		b := g.backend(server)
		if b == nil {
			http.Error(w, fmt.Sprintf("no MCP server %q: see `writ get MCPServer`", server), http.StatusNotFound)
			return
		}
		h = b.handler
	default:
		http.NotFound(w, r)
		return
	}
	caller, err := g.cfg.Identifier.Identify(r, server)
	if err != nil {
		if errors.Is(err, ErrForbidden) {
			http.Error(w, "forbidden: "+err.Error(), http.StatusForbidden)
			return
		}
		if errors.Is(err, ErrUnauthenticated) {
			meta := scheme(r) + "://" + r.Host + metadataPrefix + strings.TrimSuffix(r.URL.Path, "/")
			if g.cfg.ResourceMetadata != nil {
				meta = g.cfg.ResourceMetadata(r)
			}
			v := fmt.Sprintf(`Bearer error="invalid_token", resource_metadata=%q`, meta)
			w.Header().Set("WWW-Authenticate", v)
			http.Error(w, "unauthenticated: "+err.Error(), http.StatusUnauthorized)
			return
		}
		g.cfg.Log.ErrorContext(r.Context(), "identify MCP caller", "error", err)
		http.Error(w, "cannot identify the caller", http.StatusInternalServerError)
		return
	}
	if g.fast(w, r, caller, server) {
		return
	}
	// The SDK binds sessions to TokenInfo.UserID and passes TokenInfo to
	// every request's handler: carry the caller there. The agent's own
	// credential has been used and goes no further.
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer writ-caller")
	bearer := auth.RequireBearerToken(func(context.Context, string, *http.Request) (*auth.TokenInfo, error) {
		return &auth.TokenInfo{UserID: caller.Key, Extra: map[string]any{callerKey: caller}}, nil
	}, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})
	bearer(h).ServeHTTP(w, r)
}

const callerKey = "writ.caller"

func callerOf(req sdk.Request) (Caller, bool) {
	ex := req.GetExtra()
	if ex == nil || ex.TokenInfo == nil {
		return Caller{}, false
	}
	c, ok := ex.TokenInfo.Extra[callerKey].(Caller)
	return c, ok
}

// Approve trusts the descriptor a quarantined tool of server announced
// last (see [Pinner.Approve]) and, if the server is served, re-checks its
// tools so the approved tool appears at once.
func (g *Gateway) Approve(ctx context.Context, server, tool, actor string) (store.Pin, error) {
	pin, err := g.pinner.Approve(ctx, server, tool, actor)
	if err != nil {
		return pin, err
	}
	if b := g.backend(server); b != nil {
		if cs, err := b.up.session(ctx); err == nil {
			g.refresh(ctx, b, cs)
		}
	}
	return pin, nil
}

// serveMetadata serves the protected-resource metadata (RFC 9728) of the
// endpoint res names (/mcp or /mcp/NAME).
func (g *Gateway) serveMetadata(w http.ResponseWriter, r *http.Request, res string) {
	if res != "/mcp" && (!strings.HasPrefix(res, "/mcp/") || g.backend(strings.TrimPrefix(res, "/mcp/")) == nil) {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	doc := map[string]any{
		"resource":                 scheme(r) + "://" + r.Host + res,
		"bearer_methods_supported": []string{"header"},
		"resource_name":            "writ MCP gateway " + res,
	}
	if g.cfg.AuthorizationServer != "" {
		doc["authorization_servers"] = []string{g.cfg.AuthorizationServer}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(doc)
}

// ServerStatus is what the gateway knows of one MCPServer it serves.
type ServerStatus struct {
	Name    string
	Version int64
	// Upstream is the URL, or the command of a stdio server.
	Upstream    string
	Pin         string
	Connected   bool
	Starts      int
	Tools       int // usable
	Quarantined int // announced but refused
}

// Status describes the servers the gateway serves, by name.
func (g *Gateway) Status() []ServerStatus {
	g.mu.Lock()
	bs := make([]*backend, 0, len(g.backends))
	for _, b := range g.backends {
		bs = append(bs, b)
	}
	g.mu.Unlock()
	out := make([]ServerStatus, 0, len(bs))
	for _, b := range bs {
		st := ServerStatus{Name: b.srv.Name, Version: b.srv.Version, Pin: b.srv.Pin, Upstream: b.srv.Spec.URL}
		if b.srv.Stdio() {
			st.Upstream = b.srv.Spec.Command
		}
		b.up.mu.Lock()
		st.Connected, st.Starts = b.up.cs != nil, b.up.starts
		b.up.mu.Unlock()
		b.mu.Lock()
		st.Tools = len(b.tools)
		st.Quarantined = len(b.verdicts) - len(b.tools)
		b.mu.Unlock()
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b ServerStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// ErrNoServer reports a name the gateway serves no MCPServer under.
var ErrNoServer = errors.New("no such MCP server")

// Tools lists the tools of the MCPServer served under name afresh from its
// upstream, exactly as the upstream announces them, quarantined ones
// included (for `writ mcp lint --server`). Listing pins them as any
// re-check does: a changed or poisoned tool is quarantined by it.
func (g *Gateway) Tools(ctx context.Context, name string) ([]*sdk.Tool, error) {
	b := g.backend(name)
	if b == nil {
		return nil, fmt.Errorf("%w %q: see `writ mcp servers`", ErrNoServer, name)
	}
	cctx, cancel := context.WithTimeout(ctx, b.srv.Connect)
	defer cancel()
	cs, err := b.up.session(cctx)
	if err != nil {
		return nil, err
	}
	if err := g.refresh(ctx, b, cs); err != nil {
		return nil, fmt.Errorf("list the tools of %s: %w", b.srv.Target(), err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.listed), nil
}
