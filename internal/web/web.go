// Package web is writ's console: server-rendered pages at /ui/ on the
// server's HTTP listener for named humans (see internal/account), built
// with html/template from files embedded in the binary. Our own script
// and style files are the only ones loaded; the Content-Security-Policy
// allows nothing else and no inline script. Every state change (an
// approval decision, an MCP tool approval) is a POST carrying the
// session's CSRF token, behind net/http's cross-origin protection, and is
// made as the human ("user:NAME").
//
// Like internal/api, the console holds no state and no business rules:
// it calls the services the server hands to [New] through the small
// interfaces defined here.
package web

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/writ-dev/writ/internal/account"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Accounts logs humans in and finds their sessions.
type Accounts interface {
	Login(ctx context.Context, name, password, source string) (string, account.Session, error)
	LoginOIDC(ctx context.Context, name, role string, groups []string, source string) (string, account.Session, error)
	Session(ctx context.Context, secret string) (account.Session, error)
	Logout(ctx context.Context, secret, user string) error
}

// Approvals is the approval queue.
type Approvals interface {
	List(ctx context.Context, state string) ([]store.Approval, error)
	Get(ctx context.Context, id string) (store.Approval, error)
	Decide(ctx context.Context, id string, approve bool, actor, comment string) (store.Approval, error)
	// Changed returns a channel closed at the next request or decision.
	Changed() <-chan struct{}
}

// Audit reads the audit log.
type Audit interface {
	AuditSearch(ctx context.Context, q apitypes.AuditQuery) (apitypes.AuditSearchResult, error)
	AuditEvent(ctx context.Context, id string) (apitypes.AuditEntry, error)
	AuditProof(ctx context.Context, id string) (apitypes.InclusionProof, error)
	// AuditStatus is the log's size and latest signed checkpoint.
	AuditStatus() (size int64, cp apitypes.Checkpoint, signed bool)
}

// MCP administers the MCP gateway's tool pins.
type MCP interface {
	Pins(ctx context.Context, server string) ([]store.Pin, error)
	Approve(ctx context.Context, server, tool, actor string) (store.Pin, error)
	Servers() []apitypes.MCPServer
}

// Resources lists stored declarative documents.
type Resources interface {
	ListResources(ctx context.Context, kind string) ([]apitypes.Resource, error)
}

// Tasks lists tasks.
type Tasks interface {
	List(ctx context.Context, f store.TaskFilter) ([]store.Task, error)
}

// Config holds the services the console shows. Every field is required
// unless its comment says otherwise.
type Config struct {
	Log *slog.Logger
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time

	Accounts  Accounts
	Approvals Approvals
	Audit     Audit
	Resources Resources
	Tasks     Tasks
	// Inventory assembles the inventory (as GET /v1/inventory does).
	Inventory func(ctx context.Context) (apitypes.Inventory, error)
	// MCP is optional: without it the MCP page says the gateway is off.
	MCP MCP
	// OIDC is optional: without it only local accounts log in.
	OIDC *OIDC
	// Lineage is optional: without it the lineage map says so.
	Lineage Lineage
	// Alerts is optional: without it the Alerts page says so and the
	// Overview shows no alerts.
	Alerts Alerts
	// Posture is optional: without it the Posture page says so and the
	// Overview shows no tier verdict.
	Posture Posture
	// Policies and History are optional: without them the Policies page
	// shows the current versions only.
	Policies Policies
	History  History
}

// Console is the /ui/ handler.
type Console struct {
	c     Config
	pages map[string]*template.Template
	mux   *http.ServeMux
	h     http.Handler
	// streams ends the live approval streams at shutdown.
	done chan struct{}
}

// New returns the console over c's services.
func New(c Config) (*Console, error) {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Accounts == nil || c.Approvals == nil || c.Audit == nil || c.Resources == nil || c.Tasks == nil || c.Inventory == nil {
		return nil, errors.New("web: accounts, approvals, audit, resources, tasks and inventory are required")
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	w := &Console{c: c, pages: pages, mux: http.NewServeMux(), done: make(chan struct{})}
	w.routes()
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.c.Log.WarnContext(r.Context(), "console refused a cross-origin request", "path", r.URL.Path, "source", r.RemoteAddr)
		w.errorPage(rw, r, http.StatusForbidden, "This request came from another site and was refused.")
	}))
	w.h = securityHeaders(cop.Handler(w.mux))
	return w, nil
}

// ServeHTTP serves /ui/...
func (w *Console) ServeHTTP(rw http.ResponseWriter, r *http.Request) { w.h.ServeHTTP(rw, r) }

// Close ends the live streams (for a graceful shutdown).
func (w *Console) Close() {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
}

// pageNames are the templates, each rendered inside layout.html.
var pageNames = []string{"login", "overview", "approvals", "inventory", "audit", "event", "policies", "mcp", "error",
	"lineage", "node", "alerts", "posture"}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"when":  formatTime,
		"since": since,
		"short": shorten,
		"join":  joinStrings,
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// staticFiles is the /ui/static/ tree.
func staticFiles() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	return http.StripPrefix("/ui/static/", http.FileServerFS(sub))
}

// csp is the console's Content-Security-Policy: our own files only, no
// inline script or style, no framing, forms only to ourselves.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// securityHeaders sets strict headers on every console answer.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		if r.TLS != nil {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if hd.Get("Cache-Control") == "" {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}
